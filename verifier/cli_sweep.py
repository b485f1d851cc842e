"""``catalog-verifier sweep start|pause|resume|cancel|status SLUG`` and ``catalog-verifier status``.

These change or read rows only, so they work with or without the daemon: a running daemon's
sweep scheduler notices a started, paused, resumed or cancelled sweep within its poll interval.
``sweep status --watch`` follows the sweep until it is no longer running or waiting for its
window, redrawing a progress bar in place on a terminal (one line every few seconds otherwise).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from verifier.config import load_config
from verifier.database import Database
from verifier.merchants import MerchantStore
from verifier.sweeps import SweepStore, render_sweep

if TYPE_CHECKING:
    from verifier.cli import Output

EXIT_OK = 0
BAR_WIDTH = 30
WATCH_INTERVAL_S = 1.0
PLAIN_WATCH_EVERY_S = 5.0
_FOLLOWED = ("running", "waiting_window")


def progress_line(sweep: Mapping[str, Any]) -> str:
    """One line: state, a progress bar, counters, rate and ETA."""
    total, checked = sweep["total"], sweep["checked"]
    share = min(1.0, checked / total) if total else (1.0 if sweep["state"] == "done" else 0.0)
    filled = round(share * BAR_WIDTH)
    bar = "#" * filled + "." * (BAR_WIDTH - filled)
    parts = [
        f"{sweep['state']:<14}",
        f"[{bar}] {100 * share:5.1f}%",
        f"{checked:,}/{total:,}",
        f"changed {sweep['changed']:,}",
        f"discontinued {sweep['discontinued']:,}",
        f"errors {sweep['errors']:,}",
    ]
    if sweep.get("rate_per_s"):
        parts.append(f"{sweep['rate_per_s']:.1f}/s")
    if sweep.get("eta_seconds") is not None and sweep["state"] in _FOLLOWED:
        parts.append(f"ETA {_clock(sweep['eta_seconds'])}")
    return "  ".join(parts)


def _clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def describe_sweep(sweep: Mapping[str, Any]) -> str:
    """Several lines for a sweep object: id, trigger, times, progress, warnings."""
    lines = [
        f"sweep {sweep['sweep_id']} ({sweep['trigger']}), started {sweep['started_at']}",
        f"  {progress_line(sweep)}",
    ]
    if sweep["finished_at"]:
        lines.append(f"  finished {sweep['finished_at']}")
    if sweep["window_end"] and sweep["state"] in _FOLLOWED:
        lines.append(f"  window closes {sweep['window_end']}")
    if sweep["warning"]:
        lines.append(f"  warning: {sweep['warning']}")
    if sweep["halted_reason"]:
        lines.append(f"  halted: {sweep['halted_reason']} (resume it once the site is fine)")
    return "\n".join(lines)


async def sweep(args: argparse.Namespace, db: Database, out: Output) -> int:
    """Start, pause, resume or cancel a merchant's sweep, or show it."""
    merchant = await MerchantStore(db).get(args.slug)
    store = SweepStore(db)
    if args.action == "start":
        config = load_config(args.config)
        row = await store.start_manual(config, merchant.id, merchant.slug, merchant.hosts)
    elif args.action == "pause":
        row = await store.pause(merchant.id)
    elif args.action == "resume":
        row = await store.resume(merchant.id)
    elif args.action == "cancel":
        row = await store.cancel(merchant.id)
    else:
        return await _status(args, store, merchant.id, out)
    body = render_sweep(row)
    out.record(body, text=describe_sweep(body))
    return EXIT_OK


async def _status(
    args: argparse.Namespace, store: SweepStore, merchant_id: int, out: Output
) -> int:
    row = await store.current(merchant_id) or await store.latest(merchant_id)
    if row is None:
        out.record({"sweep": None}, text=f"{args.slug}: no sweep yet")
        return EXIT_OK
    body = render_sweep(row)
    if not args.watch or body["state"] not in _FOLLOWED:
        out.record(body, text=describe_sweep(body))
        return EXIT_OK
    live = sys.stdout.isatty() and not out.as_json
    last_line = 0.0
    while True:
        if live:
            sys.stdout.write("\r\x1b[2K" + progress_line(body))
            sys.stdout.flush()
        elif time.monotonic() - last_line >= PLAIN_WATCH_EVERY_S:
            out.record(body, text=progress_line(body))
            last_line = time.monotonic()
        if body["state"] not in _FOLLOWED:
            break
        await asyncio.sleep(WATCH_INTERVAL_S)
        fresh = await store.get(merchant_id, row["id"])
        body = render_sweep(fresh)
    if live:
        sys.stdout.write("\n")
    out.record(body, text=describe_sweep(body))
    return EXIT_OK


async def status(args: argparse.Namespace, db: Database, out: Output) -> int:
    """Products by status and availability, lane backlogs and active sweeps."""
    q = db.queries
    async with db.pool.acquire() as conn:
        products = await conn.fetch(q["status_products"])
        lanes = await conn.fetchrow(q["lane_backlog"])
        sweeps = await conn.fetch(q["status_sweeps"])
    rendered = [{"merchant": s["slug"], **render_sweep(s)} for s in sweeps]
    remaining = sum(max(0, s["total"] - s["checked"]) for s in sweeps)
    body = {
        "products": [
            {
                "merchant": r["slug"],
                "status": r["status"],
                "availability": r["availability"],
                "count": r["products"],
            }
            for r in products
        ],
        "lanes": {
            "on_demand": lanes["on_demand"],
            "changed": lanes["changed"],
            "sweep": remaining,
        },
        "sweeps": rendered,
    }
    out.record(body, text=_status_text(body))
    return EXIT_OK


def _status_text(body: Mapping[str, Any]) -> str:
    lines = ["products"]
    if not body["products"]:
        lines.append("  none")
    for row in body["products"]:
        availability = row["availability"] or "-"
        lines.append(
            f"  {row['merchant']:<24} {row['status']:<11} {availability:<13} {row['count']:>10,}"
        )
    lanes = body["lanes"]
    lines += [
        "lanes",
        f"  on_demand  {lanes['on_demand']:>10,} requests open",
        f"  changed    {lanes['changed']:>10,} products marked",
        f"  sweep      {lanes['sweep']:>10,} products left in active sweeps",
        "sweeps",
    ]
    if not body["sweeps"]:
        lines.append("  none active")
    for item in body["sweeps"]:
        lines.append(f"  {item['merchant']:<24} {progress_line(item)}")
    return "\n".join(lines)
