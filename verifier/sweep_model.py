"""Value types of a running sweep: why a driver stops, its knobs, its merchant, its rows."""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from verifier.sweep_progress import BreakerPolicy


class Stop(enum.Enum):
    """Why a driver stops feeding."""

    DONE = "done"  # the catalog is exhausted
    WINDOW = "window"  # the schedule's window closed
    HALTED = "halted"  # the circuit breaker tripped
    EXTERNAL = "external"  # paused or cancelled by hand (the row says which)
    DRAIN = "drain"  # the daemon stops: hand the sweep to the next daemon
    LEASE_LOST = "lease_lost"  # another daemon took the sweep over
    STALLED = "stalled"  # no check finished for stall_s: restart from the checkpoint


@dataclass(frozen=True, slots=True)
class DriverSettings:
    """Knobs of a driver (the runner passes its own)."""

    owner: str
    lease_s: float = 30.0
    checkpoint_s: float = 1.0
    page_size: int = 1000
    wind_down_s: float = 30.0
    stall_s: float = 900.0
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    # Unfinished products at a time: the work left in flight when a window closes.
    in_flight_s: float = 2.0
    min_in_flight: int = 32
    max_in_flight: int = 2000


@dataclass(frozen=True, slots=True)
class SweepMerchant:
    """The merchant a sweep belongs to, as jobs need it."""

    id: int
    slug: str
    hosts: tuple[str, ...]
    currency: str


class ProductRow(Mapping[str, Any]):
    """A product row seen with its merchant's columns, as ``job_from_row`` reads it."""

    __slots__ = ("_extra", "_row")

    def __init__(self, row: asyncpg.Record, extra: Mapping[str, Any]) -> None:
        self._row = row
        self._extra = extra

    def __getitem__(self, key: str) -> Any:
        extra = self._extra
        return extra[key] if key in extra else self._row[key]

    def __iter__(self) -> Iterator[str]:
        yield from self._row.keys()
        yield from self._extra

    def __len__(self) -> int:
        return len(self._row) + len(self._extra)
