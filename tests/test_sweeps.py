"""Sweep bookkeeping (cursor, breaker, ETA), the sweep store and the sweep CLI commands."""

from __future__ import annotations

import argparse
import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.daemon_process import run_cli
from verifier.cli import Output
from verifier.cli_sweep import progress_line, status, sweep
from verifier.config import Config
from verifier.database import Database
from verifier.exceptions import Conflict, InvalidInput, NotFound
from verifier.merchants import Merchant, MerchantStore
from verifier.outcomes import Change, Decision
from verifier.sweep_progress import (
    BreakerPolicy,
    CircuitBreaker,
    RateMeter,
    SweepCursor,
    Verdict,
    eta_seconds,
    spill_warning,
    verdict_of,
)
from verifier.sweep_schedules import effective, merge_override
from verifier.sweeps import SweepStore, render_sweep

# -- pure bookkeeping ----------------------------------------------------------------------


def test_checkpoint_advances_only_over_the_finished_prefix() -> None:
    """A product finishing early does not move the checkpoint past an unfinished one."""
    cursor = SweepCursor()
    for product_id in ("a", "b", "c", "d"):
        cursor.fed(product_id)
    cursor.finished("c", Verdict.CHANGED)
    cursor.finished("b", Verdict.UNCHANGED)
    assert cursor.checkpoint is None and cursor.tally.checked == 0
    cursor.finished("a", Verdict.FAILED)
    assert cursor.checkpoint == "c" and cursor.outstanding == 1
    assert (cursor.tally.checked, cursor.tally.changed, cursor.tally.errors) == (3, 1, 1)
    assert not cursor.finished("a", Verdict.CHANGED)  # already behind the checkpoint
    cursor.finished("d", Verdict.DISCONTINUED)
    assert cursor.checkpoint == "d" and cursor.tally.discontinued == 1


@given(st.permutations(list(range(60))), st.integers(min_value=0, max_value=60))
def test_checkpoint_never_passes_an_unfinished_product(order: list[int], done: int) -> None:
    """Whatever order products finish in, every product up to the checkpoint has finished."""
    cursor = SweepCursor()
    ids = [f"{i:03d}" for i in range(60)]
    for product_id in ids:
        cursor.fed(product_id)
    finished = {ids[i] for i in order[:done]}
    for product_id in (ids[i] for i in order[:done]):
        cursor.finished(product_id, Verdict.UNCHANGED)
    behind = [p for p in ids if cursor.checkpoint is not None and p <= cursor.checkpoint]
    assert set(behind) <= finished
    assert len(behind) == cursor.tally.checked
    first_missing = next((p for p in ids if p not in finished), None)
    if first_missing is not None:
        assert cursor.checkpoint is None or cursor.checkpoint < first_missing


def _decision(**fields: Any) -> Decision:
    return Decision(
        outcome=fields.pop("outcome", "verified"), http_status=200, error=None, **fields
    )


def test_verdicts_count_flips_not_repeated_discontinuations() -> None:
    """Discontinuing an in-stock product is a flip; a discontinued one staying so is not."""
    gone = _decision(outcome="not_found", availability="discontinued")
    assert verdict_of(gone, was_discontinued=False) is Verdict.DISCONTINUED
    assert verdict_of(gone, was_discontinued=True) is Verdict.UNCHANGED
    assert verdict_of(_decision(counts_as_failure=True), False) is Verdict.FAILED
    changed = _decision(changes=(Change("unit_price", "1.00", "2.00"),))
    assert verdict_of(changed, False) is Verdict.CHANGED
    assert verdict_of(_decision(), False) is Verdict.UNCHANGED


def test_breaker_waits_for_the_minimum_sample() -> None:
    """Suspect verdicts do not trip the breaker before min_sample products."""
    breaker = CircuitBreaker(BreakerPolicy(min_sample=10, window=20, max_suspect_share=0.2))
    for _ in range(9):
        breaker.observe(True)
    assert not breaker.tripped
    breaker.observe(True)
    assert breaker.tripped


def test_breaker_tolerates_a_share_at_the_limit_and_judges_recent_products() -> None:
    """20% suspect is fine, more trips it; old good products leave the judged window."""
    breaker = CircuitBreaker(BreakerPolicy(min_sample=10, window=10, max_suspect_share=0.2))
    for i in range(1000):
        breaker.observe(i % 5 == 0)
    assert not breaker.tripped and breaker.suspect_share == pytest.approx(0.2)
    for _ in range(3):
        breaker.observe(True)
    assert breaker.tripped


def test_held_verdicts_are_vindicated_after_a_healthy_window() -> None:
    """A held flip is applied only once a whole window of later products looked healthy."""
    breaker = CircuitBreaker(BreakerPolicy(min_sample=5, window=10, max_suspect_share=0.2))
    breaker.observe(True)
    held_at = breaker.observed
    for _ in range(9):
        breaker.observe(False)
    assert not breaker.vindicated(held_at)
    breaker.observe(False)
    assert breaker.vindicated(held_at)


def test_eta_and_spill_over_warning() -> None:
    """The ETA is the work left at the rate; a warning when it exceeds the window left."""
    assert eta_seconds(1000, 10.0) == 100.0
    assert eta_seconds(0, None) == 0.0 and eta_seconds(5, None) is None
    assert spill_warning(100.0, 200.0, 10.0) is None
    assert spill_warning(100.0, None, 10.0) is None
    warning = spill_warning(7200.0, 3600.0, 10.0)
    assert warning is not None and "will not finish inside the window" in warning


def test_rate_meter_measures_products_per_second() -> None:
    """Two samples a second apart give the rate; later ones are smoothed."""
    meter = RateMeter(half_life_s=1e-9)
    assert meter.sample(0.0, 0) is None
    assert meter.sample(2.0, 100) == pytest.approx(50.0)
    assert meter.sample(3.0, 300) == pytest.approx(200.0)


def test_override_merge_removes_keys_sent_as_null() -> None:
    """null clears a key; an empty override is no override."""
    merged = merge_override({"enabled": False, "window": "2h"}, {"enabled": None})
    assert merged == {"window": "2h"}
    assert merge_override({"window": "2h"}, {"window": None}) is None
    with pytest.raises(InvalidInput):
        merge_override(None, {"every": 3})


def test_override_wins_over_the_config_file_key_by_key() -> None:
    """The file's [merchants.SLUG.sweep] applies, the merchant's own keys win over it."""
    config = Config.model_validate(
        {"merchants": {"shop-a": {"sweep": {"start_time": "04:00", "window": "2h"}}}}
    )
    schedule = effective(config, "shop-a", {"window": "0"})
    assert schedule.source == "override"
    assert schedule.schedule.start_time.hour == 4 and schedule.schedule.window == timedelta(0)


# -- the store -------------------------------------------------------------------------------


async def _merchant(database: Database, slug: str = "shop-a") -> Merchant:
    return await MerchantStore(database).create(slug, ["shop.example"])


async def test_database_allows_one_active_sweep_per_merchant(database: Database) -> None:
    """The unique index refuses a second active sweep even to a raw INSERT."""
    merchant = await _merchant(database)
    store = SweepStore(database)
    await store.start_manual(Config(), merchant.id, merchant.slug, merchant.hosts)
    with pytest.raises(asyncpg.UniqueViolationError):
        await database.pool.execute(
            "INSERT INTO sweeps (id, merchant_id, state, trigger) VALUES ($1, $2, 'paused', "
            "'manual')",
            uuid.uuid4(),
            merchant.id,
        )
    with pytest.raises(Conflict):
        await store.start_manual(Config(), merchant.id, merchant.slug, merchant.hosts)


async def test_scheduled_insert_skips_a_window_that_already_had_a_sweep(
    database: Database,
) -> None:
    """A scheduled start is refused when a sweep began or finished since the window opened."""
    merchant = await _merchant(database)
    store = SweepStore(database)
    window_start = datetime(2030, 1, 1, 2, tzinfo=UTC)
    first = await store.insert(
        merchant.id, trigger="schedule", now=window_start, total=0, unless_since=window_start
    )
    assert first is not None
    await store.cancel(merchant.id)
    again = await store.insert(
        merchant.id,
        trigger="schedule",
        now=window_start + timedelta(minutes=5),
        total=0,
        unless_since=window_start,
    )
    assert again is None


async def test_transitions_are_idempotent_and_refuse_impossible_moves(database: Database) -> None:
    """Pausing a paused sweep is a no-op; nothing to pause is NotFound."""
    merchant = await _merchant(database)
    store = SweepStore(database)
    with pytest.raises(NotFound):
        await store.pause(merchant.id)
    await store.start_manual(Config(), merchant.id, merchant.slug, merchant.hosts)
    assert (await store.pause(merchant.id))["state"] == "paused"
    assert (await store.pause(merchant.id))["state"] == "paused"
    assert (await store.resume(merchant.id))["state"] == "running"
    assert (await store.cancel(merchant.id))["state"] == "cancelled"
    with pytest.raises(NotFound):
        await store.resume(merchant.id)


async def test_manual_start_estimates_the_time_to_finish(database: Database) -> None:
    """The start estimate is the catalog size at the merchant's per-host rate."""
    merchant = await _merchant(database)
    await database.pool.execute(
        "INSERT INTO products (merchant_id, product_id, source, url, data) "
        "SELECT $1, 'p' || g, 'tag', 'https://shop.example/p', '{}' FROM generate_series(1, 50) g",
        merchant.id,
    )
    config = Config.model_validate({"crawler": {"per_host_rate": 5.0}})
    row = await SweepStore(database).start_manual(config, merchant.id, "shop-a", ["shop.example"])
    body = render_sweep(row)
    assert body["total"] == 50 and body["eta_seconds"] == pytest.approx(10.0)


# -- the command line ------------------------------------------------------------------------


def _args(action: str, slug: str = "shop-a", **extra: Any) -> argparse.Namespace:
    return argparse.Namespace(action=action, slug=slug, watch=False, config=None, **extra)


async def test_cli_starts_pauses_resumes_and_cancels_a_sweep(
    database: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sweep start|pause|resume|cancel|status SLUG` change and show the row (--json)."""
    await _merchant(database)
    out = Output(as_json=True)
    states = []
    for action in ("start", "pause", "resume", "status", "cancel", "status"):
        assert await sweep(_args(action), database, out) == 0
        states.append(orjson.loads(capsys.readouterr().out)["state"])
    assert states == ["running", "paused", "running", "running", "cancelled", "cancelled"]


async def test_cli_start_twice_fails(database: Database) -> None:
    """A second start while one is active is an error (exit 1 via the CLI's handler)."""
    await _merchant(database)
    out = Output(as_json=True)
    await sweep(_args("start"), database, out)
    with pytest.raises(Conflict):
        await sweep(_args("start"), database, out)


async def test_cli_status_lists_products_lanes_and_active_sweeps(
    database: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """`status` counts products by status/availability, lane backlogs and active sweeps."""
    merchant = await _merchant(database)
    await database.pool.execute(
        "INSERT INTO products (merchant_id, product_id, source, url, data, changed_due_at) "
        "SELECT $1, 'p' || g, 'tag', 'https://shop.example/p', '{}', now() "
        "FROM generate_series(1, 3) g",
        merchant.id,
    )
    await sweep(_args("start"), database, Output(as_json=True))
    capsys.readouterr()
    assert await status(argparse.Namespace(), database, Output(as_json=True)) == 0
    body = orjson.loads(capsys.readouterr().out)
    assert body["products"] == [
        {"merchant": "shop-a", "status": "unverified", "availability": None, "count": 3}
    ]
    assert body["lanes"] == {"on_demand": 0, "changed": 3, "sweep": 3}
    assert [(s["merchant"], s["state"]) for s in body["sweeps"]] == [("shop-a", "running")]
    await status(argparse.Namespace(), database, Output(as_json=False))
    text = capsys.readouterr().out
    assert "changed" in text and "shop-a" in text and "running" in text


def test_progress_line_draws_a_bar() -> None:
    """The progress line shows the share done, counts and the ETA."""
    line = progress_line(
        {
            "state": "running",
            "total": 200,
            "checked": 50,
            "changed": 3,
            "discontinued": 1,
            "errors": 0,
            "rate_per_s": 10.0,
            "eta_seconds": 15.0,
        }
    )
    assert "25.0%" in line and "50/200" in line and "ETA 0:00:15" in line
    assert "#" * 7 + "." in line


async def test_cli_sweep_commands_work_without_a_daemon(db_dsn: str, tmp_path: Path) -> None:
    """The real command line starts and cancels a sweep on the database, no daemon running."""
    env = {"CATALOG_VERIFIER_DATABASE__DSN": db_dsn, "CATALOG_VERIFIER_DATA_DIR": str(tmp_path)}
    await asyncio.to_thread(_cli_round_trip, env)


def _cli_round_trip(env: dict[str, str]) -> None:
    added = run_cli("merchant", "add", "shop-a", "--host", "shop.example", env=env)
    assert added.returncode == 0, added.stderr
    started = run_cli("sweep", "start", "shop-a", "--json", env=env)
    assert started.returncode == 0, started.stderr
    assert orjson.loads(started.stdout)["state"] == "running"
    again = run_cli("sweep", "start", "shop-a", env=env)
    assert again.returncode == 1 and b"already running" in again.stderr
    cancelled = run_cli("sweep", "cancel", "shop-a", env=env)
    assert cancelled.returncode == 0 and b"cancelled" in cancelled.stdout
    shown = run_cli("status", env=env)
    assert shown.returncode == 0 and b"none active" in shown.stdout
