"""Sweep rows and their manual state transitions (API and CLI), shared by daemon and CLI.

States: ``running`` -> ``paused`` / ``waiting_window`` / ``halted`` (active, at most one per
merchant: the database's unique index ``sweeps_one_active`` enforces it) -> ``done`` /
``cancelled``. Manual actions only change the row; the runner of whichever daemon holds the
sweep's lease notices within its poll interval. A manual start or resume runs at once and until
done: windows govern only sweeps the schedule started and nobody resumed by hand.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

from verifier.config import Config
from verifier.database import Database
from verifier.exceptions import Conflict, InvalidInput, NotFound
from verifier.sweep_progress import eta_seconds, expected_rate_per_s, spill_warning

_Rows = list[asyncpg.Record]
ACTIVE_STATES = ("running", "paused", "waiting_window", "halted")
FINAL_STATES = ("done", "cancelled")
NO_ACTIVE_SWEEP = "no sweep is running, waiting for its window, paused or halted"


def render_sweep(row: Mapping[str, Any]) -> dict[str, Any]:
    """The public sweep object."""
    total, checked = row["total"], row["checked"]
    eta = row["eta_seconds"]
    return {
        "sweep_id": str(row["id"]),
        "state": row["state"],
        "trigger": row["trigger"],
        "total": total,
        "checked": checked,
        "changed": row["changed"],
        "discontinued": row["discontinued"],
        "errors": row["errors"],
        "progress": round(min(1.0, checked / total), 4) if total else None,
        "started_at": _iso(row["started_at"]),
        "finished_at": _iso(row["finished_at"]),
        "updated_at": _iso(row["updated_at"]),
        "eta_seconds": round(eta, 1) if eta is not None else None,
        "rate_per_s": round(row["rate_per_s"], 2) if row["rate_per_s"] is not None else None,
        "window_end": _iso(row["window_end"]),
        "warning": row["warning"],
        "halted_reason": row["halted_reason"],
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def start_estimate(
    config: Config, slug: str, hosts: int, total: int, now: datetime, window_end: datetime | None
) -> tuple[float | None, str | None]:
    """(eta_seconds, warning) before a sweep starts, at the merchant's politeness rate."""
    rate = expected_rate_per_s(config.host_rate_for(slug)[0], hosts)
    eta = eta_seconds(total, rate)
    left = (window_end - now).total_seconds() if window_end is not None else None
    return eta, spill_warning(eta, left, rate)


def encode_list_cursor(row: Mapping[str, Any]) -> str:
    """The opaque keyset cursor after one sweep of a list."""
    raw = f"{row['started_at'].isoformat()}|{row['id']}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_list_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The (started_at, id) inside a list cursor; raises InvalidInput otherwise."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        started, _, sweep_id = raw.partition("|")
        moment = datetime.fromisoformat(started)
        key = uuid.UUID(sweep_id)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidInput("after: not a cursor returned by this API") from None
    if moment.tzinfo is None:
        raise InvalidInput("after: not a cursor returned by this API")
    return moment, key


class SweepStore:
    """Reads and manual transitions of sweep rows, always scoped to one merchant."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def count_products(self, merchant_id: int) -> int:
        """The merchant's catalog size."""
        total: int = await self.db.pool.fetchval(
            self.db.queries["sweep_count_products"], merchant_id
        )
        return total

    async def insert(
        self,
        merchant_id: int,
        *,
        trigger: str,
        now: datetime,
        total: int,
        windowed: bool = False,
        window_end: datetime | None = None,
        eta: float | None = None,
        warning: str | None = None,
        unless_since: datetime | None = None,
    ) -> asyncpg.Record | None:
        """Insert a running sweep; None when one is active or (with unless_since) already ran."""
        row: asyncpg.Record | None = await self.db.pool.fetchrow(
            self.db.queries["sweep_start"],
            uuid.uuid4(),
            merchant_id,
            trigger,
            windowed,
            total,
            window_end,
            eta,
            warning,
            now,
            unless_since,
        )
        return row

    async def start_manual(
        self, config: Config, merchant_id: int, slug: str, hosts: Sequence[str]
    ) -> asyncpg.Record:
        """Start a sweep now, whatever the schedule; raises Conflict when one is active."""
        now = datetime.now(UTC)
        total = await self.count_products(merchant_id)
        eta, warning = start_estimate(config, slug, len(hosts), total, now, None)
        row = await self.insert(
            merchant_id, trigger="manual", now=now, total=total, eta=eta, warning=warning
        )
        if row is None:
            current = await self.current(merchant_id)
            state = current["state"] if current is not None else "active"
            raise Conflict(f"a sweep is already {state.replace('_', ' ')}; one at a time")
        return row

    async def current(self, merchant_id: int) -> asyncpg.Record | None:
        """The active sweep (running, paused, waiting_window or halted), if any."""
        row: asyncpg.Record | None = await self.db.pool.fetchrow(
            self.db.queries["sweep_current"], merchant_id
        )
        return row

    async def latest(self, merchant_id: int) -> asyncpg.Record | None:
        """The most recent sweep, whatever its state."""
        row: asyncpg.Record | None = await self.db.pool.fetchrow(
            self.db.queries["sweep_latest"], merchant_id
        )
        return row

    async def get(self, merchant_id: int, sweep_id: uuid.UUID) -> asyncpg.Record:
        """One sweep of this merchant; raises NotFound."""
        row: asyncpg.Record | None = await self.db.pool.fetchrow(
            self.db.queries["sweep_get"], merchant_id, sweep_id
        )
        if row is None:
            raise NotFound(f"no sweep {sweep_id}")
        return row

    async def list(
        self, merchant_id: int, limit: int, after: str | None = None
    ) -> tuple[_Rows, str | None]:
        """One page of sweeps, newest first, and the cursor of the next page."""
        started, key = decode_list_cursor(after) if after else (None, None)
        rows: _Rows = await self.db.pool.fetch(
            self.db.queries["sweep_list"], merchant_id, started, key, limit + 1
        )
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, encode_list_cursor(rows[-1]) if more else None

    async def changes(
        self, merchant_id: int, sweep_id: uuid.UUID, limit: int, after: int = 0
    ) -> tuple[_Rows, int | None]:
        """One page of a sweep's sync log (raises NotFound) and the id to continue after."""
        await self.get(merchant_id, sweep_id)
        rows: _Rows = await self.db.pool.fetch(
            self.db.queries["sweep_changes"], sweep_id, after, limit + 1
        )
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, rows[-1]["id"] if more else None

    async def pause(self, merchant_id: int) -> asyncpg.Record:
        """Pause the active sweep (idempotent); raises NotFound when there is none."""
        return await self._transition(
            merchant_id, ("running", "waiting_window", "halted"), "paused"
        )

    async def resume(self, merchant_id: int) -> asyncpg.Record:
        """Run the active sweep now and until done (idempotent); raises NotFound."""
        return await self._transition(
            merchant_id, ("paused", "halted", "waiting_window"), "running"
        )

    async def cancel(self, merchant_id: int) -> asyncpg.Record:
        """Cancel the active sweep; raises NotFound when there is none."""
        return await self._transition(merchant_id, ACTIVE_STATES, "cancelled")

    async def _transition(
        self, merchant_id: int, sources: Sequence[str], target: str
    ) -> asyncpg.Record:
        row: asyncpg.Record | None = await self.db.pool.fetchrow(
            self.db.queries["sweep_transition"],
            merchant_id,
            list(sources),
            target,
            datetime.now(UTC),
        )
        if row is not None:
            return row
        current = await self.current(merchant_id)
        if current is None:
            raise NotFound(NO_ACTIVE_SWEEP)
        if current["state"] == target:
            return current
        raise Conflict(f"the sweep is {current['state']}; cannot make it {target}")
