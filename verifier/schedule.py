"""Sweep schedule arithmetic: when a scheduled sweep starts and when its window closes.

Pure functions of a schedule and a clock passed in; no IO, no state.

Run starts lie on a grid of local wall-clock times in the schedule's zone: ``start_time`` plus
whole multiples of ``every``, stepped in wall-clock time, so "1d" at 02:00 stays at 02:00 local
across DST changes and "6h" from 02:00 keeps 02:00, 08:00, 14:00 and 20:00.

Where the grid is anchored:

* ``every`` a whole number of days ("2d", "1w", also "48h"): on the last run, precisely on the
  latest daily ``start_time`` at or before ``last_run_start``. "2d" and "1w" count from the day
  the last sweep began, and a manual sweep moves the cadence too. With no last run every day's
  ``start_time`` is a candidate, so a schedule that never ran starts in the first window that is
  open now or opens next.
* otherwise (hours): on ``start_time`` of a fixed reference day, so the grid never moves; for N
  dividing 24 this is simply ``start_time`` + k*N hours every day.

A period runs from one run start to the next; at most one scheduled sweep starts per period
(`is_due` is False while ``last_run_start`` lies in the current period). A period whose start was
missed (daemon down) is still run if its window is open when the clock gets there.

A window is [start, start + window) in real elapsed time: a "4h" window is four real hours even
across a DST change. It is cut at the next period's start so windows never overlap (a window at
least as long as ``every`` covers the whole period). A zero window means "until done":
``Window.end`` is None and a running sweep is never paused.

DST: a wall-clock start that does not exist (spring-forward gap) starts at the first instant
after the gap (02:30 on 2026-03-29 in Europe/Madrid starts at 03:00 CEST); one that occurs twice
(fall-back) starts at its first occurrence (fold=0). Both are "the earliest instant whose local
time is at or after the wall-clock start", which is monotonic, so a daily schedule starts exactly
once on every local day. Grid points that collapse onto one instant (possible only when ``every``
is not longer than a DST gap) make one period.

Every datetime argument must be timezone-aware (ValueError otherwise); results are in UTC.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_T = TypeVar("_T")

_DURATION_RE = re.compile(r"([1-9][0-9]*)([mhdw])")
_START_TIME_RE = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")
# Largest first: format_duration picks the largest unit that divides exactly.
_UNITS: tuple[tuple[str, timedelta], ...] = (
    ("w", timedelta(weeks=1)),
    ("d", timedelta(days=1)),
    ("h", timedelta(hours=1)),
    ("m", timedelta(minutes=1)),
)
# Far beyond any useful schedule, and keeps grid arithmetic clear of datetime's year 9999.
_MAX_DURATION = timedelta(weeks=520)
_ONE_HOUR = timedelta(hours=1)
_ONE_DAY = timedelta(days=1)
_ZERO = timedelta(0)
_REFERENCE_DAY = date(1970, 1, 1)


def parse_duration(text: str) -> timedelta:
    """Parse "0" or N followed by m, h, d or w (N a positive integer; at most 520w)."""
    if not isinstance(text, str):
        raise ValueError(f"expected a string such as 4h, 1d or 1w, got {text!r}")
    if text == "0":
        return _ZERO
    match = _DURATION_RE.fullmatch(text)
    if match is None:
        raise ValueError(
            f'expected "0" or N followed by m, h, d or w (e.g. 4h, 1d, 1w), got {text!r}'
        )
    unit = dict(_UNITS)[match[2]]
    count = int(match[1])
    if count > _MAX_DURATION // unit:
        raise ValueError(f"{text!r} is longer than the maximum of 520w")
    return count * unit


def format_duration(duration: timedelta) -> str:
    """Render a duration as parse_duration reads it, in the largest exact unit ("24h" -> "1d")."""
    if duration == _ZERO:
        return "0"
    if duration > _ZERO:
        for suffix, unit in _UNITS:
            if duration % unit == _ZERO:
                return f"{duration // unit}{suffix}"
    raise ValueError(f"{duration!r} is not a positive whole number of minutes")


def parse_start_time(text: str) -> time:
    """Parse a wall-clock "HH:MM" between 00:00 and 23:59."""
    match = _START_TIME_RE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"expected HH:MM between 00:00 and 23:59, got {text!r}")
    return time(int(match[1]), int(match[2]))


def _load_zone(name: str) -> ZoneInfo:
    if not isinstance(name, str):
        raise ValueError(f"expected an IANA time zone name, got {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(f"unknown IANA time zone {name!r}") from exc


@dataclass(frozen=True, slots=True)
class SweepSchedule:
    """When scheduled sweeps of one merchant start, and how long each may run per period."""

    enabled: bool
    every: timedelta
    start_time: time
    window: timedelta  # timedelta(0): until done
    timezone: ZoneInfo

    def __post_init__(self) -> None:
        if self.every <= _ZERO or self.every % _ONE_HOUR or self.every > _MAX_DURATION:
            raise ValueError("every: must be a whole number of hours between 1h and 520w")
        if self.window < _ZERO or self.window > _MAX_DURATION:
            raise ValueError("window: must be between 0 and 520w")
        if (
            self.start_time.tzinfo is not None
            or self.start_time.second
            or self.start_time.microsecond
        ):
            raise ValueError("start_time: must be a naive HH:MM wall-clock time")

    @classmethod
    def from_strings(
        cls, *, enabled: bool, every: str, start_time: str, window: str, timezone: str
    ) -> SweepSchedule:
        """Build a schedule from its config strings; a ValueError names the bad field."""
        if not isinstance(enabled, bool):
            raise ValueError(f"enabled: expected true or false, got {enabled!r}")
        every_duration = _field("every", parse_duration, every)
        if every_duration == _ZERO or every_duration % _ONE_HOUR:
            raise ValueError(f"every: expected Nh, Nd or Nw with N >= 1, got {every!r}")
        return cls(
            enabled=enabled,
            every=every_duration,
            start_time=_field("start_time", parse_start_time, start_time),
            window=_field("window", parse_duration, window),
            timezone=_field("timezone", _load_zone, timezone),
        )


def _field(name: str, parse: Callable[[str], _T], text: str) -> _T:
    try:
        return parse(text)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from exc


def describe(schedule: SweepSchedule) -> dict[str, object]:
    """The schedule in its config string form (the keys of [sweep]), for JSON output."""
    return {
        "enabled": schedule.enabled,
        "every": format_duration(schedule.every),
        "start_time": schedule.start_time.strftime("%H:%M"),
        "window": format_duration(schedule.window),
        "timezone": schedule.timezone.key,
    }


@dataclass(frozen=True, slots=True)
class Window:
    """A span in which a scheduled sweep may run: [start, end); end None means until done."""

    start: datetime  # aware, UTC
    end: datetime | None

    def contains(self, moment: datetime) -> bool:
        """Whether `moment` lies in [start, end)."""
        return self.start <= moment and (self.end is None or moment < self.end)


def local_to_utc(wall: datetime, zone: ZoneInfo) -> datetime:
    """The earliest instant (UTC) whose local time in `zone` is at or after naive `wall`.

    A time in a spring-forward gap gives the instant the gap ends (to the second); a repeated
    fall-back time gives its first occurrence.
    """
    if wall.tzinfo is not None or wall.fold:
        wall = datetime.combine(wall.date(), wall.time())
    # ZoneInfo reads only the wall-clock fields and fold of its argument; with fold=0 it gives
    # the offset before a transition at `wall`, with fold=1 the offset after it.
    before = _offset(zone, wall)
    after = _offset(zone, _fold_one(wall))
    if before >= after:
        # A unique time, or a repeated one whose first occurrence is the fold=0 reading.
        return _utc(wall - before)

    # `wall` is in a gap that opens at some g0 <= wall: with fold=1 ZoneInfo reads wall times
    # from g0 on with the later offset, earlier ones with the earlier offset. Bisect the whole
    # seconds back from `wall` for g0; the gap opens (and the day resumes) at instant g0 - before.
    def opened(seconds_back: int) -> bool:
        return _offset(zone, _fold_one(wall - timedelta(seconds=seconds_back))) == after

    inside, outside = 0, int((after - before).total_seconds())
    # Nearly every gap opens on the hour: try that before bisecting.
    on_the_hour = wall.minute * 60 + wall.second
    if on_the_hour < outside and opened(on_the_hour) and not opened(on_the_hour + 1):
        inside = outside = on_the_hour
    while outside - inside > 1:
        middle = (inside + outside) // 2
        if opened(middle):
            inside = middle
        else:
            outside = middle
    return _utc(wall - timedelta(seconds=inside) - before)


def _offset(zone: ZoneInfo, wall: datetime) -> timedelta:
    offset = zone.utcoffset(wall)
    if offset is None:  # pragma: no cover - ZoneInfo always knows its offset
        raise ValueError(f"{zone.key} has no UTC offset at {wall.isoformat()}")
    return offset


def _fold_one(wall: datetime) -> datetime:
    # The constructor is several times cheaper than replace(), and this runs on every grid point.
    return datetime(
        wall.year,
        wall.month,
        wall.day,
        wall.hour,
        wall.minute,
        wall.second,
        wall.microsecond,
        fold=1,
    )


def _utc(naive: datetime) -> datetime:
    return datetime.combine(naive.date(), naive.time(), UTC)


def _local(moment: datetime, zone: ZoneInfo) -> datetime:
    local = moment.astimezone(zone)
    return datetime.combine(local.date(), local.time().replace(fold=0))


@dataclass(frozen=True, slots=True)
class _Grid:
    """Run starts: wall-clock points base + k*step (k any integer) and the instants they map to."""

    base: datetime  # naive local wall time of point 0
    step: timedelta
    zone: ZoneInfo

    def wall(self, index: int) -> datetime:
        return self.base + index * self.step

    def instant(self, index: int) -> datetime:
        return local_to_utc(self.wall(index), self.zone)

    def locate(self, moment: datetime) -> tuple[int, datetime, datetime]:
        """The last point at or before `moment` (index, instant) and the next instant after it."""
        # Local time is within a DST shift of the grid position, so this guess is off by a few
        # points at most; walk from it.
        index = (_local(moment, self.zone) - self.base) // self.step
        start = self.instant(index)
        while start > moment:
            index -= 1
            start = self.instant(index)
        following = self.instant(index + 1)
        while following <= moment:
            index += 1
            start = following
            following = self.instant(index + 1)
        return index, start, following

    def successor(self, index: int, start: datetime) -> tuple[int, datetime]:
        """The first point after `index` whose instant is after `start` (gap points coincide)."""
        index += 1
        instant = self.instant(index)
        while instant <= start:
            index += 1
            instant = self.instant(index)
        return index, instant


def _grid(schedule: SweepSchedule, last_run_start: datetime | None) -> _Grid:
    zone = schedule.timezone
    daily = _Grid(datetime.combine(_REFERENCE_DAY, schedule.start_time), _ONE_DAY, zone)
    if schedule.every % _ONE_DAY:
        return _Grid(daily.base, schedule.every, zone)
    if last_run_start is None or schedule.every == _ONE_DAY:
        # Never ran: every day is a candidate until the first run fixes the cadence.
        return daily
    anchor, _, _ = daily.locate(last_run_start)
    return _Grid(daily.wall(anchor), schedule.every, zone)


def _window(schedule: SweepSchedule, start: datetime, following: datetime) -> Window:
    if schedule.window == _ZERO:
        return Window(start, None)
    return Window(start, min(start + schedule.window, following))


def _aware(name: str, moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {moment.isoformat()}")
    return moment.astimezone(UTC)


def _aware_or_none(name: str, moment: datetime | None) -> datetime | None:
    return None if moment is None else _aware(name, moment)


def windows(
    schedule: SweepSchedule, last_run_start: datetime | None, now: datetime
) -> Iterator[Window]:
    """Windows of successive periods, from the period containing `now` onwards (endless).

    With no last run, a whole-day cadence lists every day: any of them may hold the first run.
    """
    grid = _grid(schedule, _aware_or_none("last_run_start", last_run_start))
    index, start, _ = grid.locate(_aware("now", now))
    return _successive_windows(schedule, grid, index, start)


def _successive_windows(
    schedule: SweepSchedule, grid: _Grid, index: int, start: datetime
) -> Iterator[Window]:
    while True:
        following_index, following = grid.successor(index, start)
        yield _window(schedule, start, following)
        index, start = following_index, following


def run_starts(
    schedule: SweepSchedule, last_run_start: datetime | None, now: datetime
) -> Iterator[datetime]:
    """Run starts (UTC, strictly increasing) from the period containing `now` onwards (endless)."""
    return (window.start for window in windows(schedule, last_run_start, now))


def current_window(
    schedule: SweepSchedule, now: datetime, last_run_start: datetime | None = None
) -> Window | None:
    """The window containing `now`, or None: a running scheduled sweep pauses outside windows.

    Pass the running sweep's start as `last_run_start`: cadences of whole days count from it.
    """
    grid = _grid(schedule, _aware_or_none("last_run_start", last_run_start))
    now = _aware("now", now)
    _, start, following = grid.locate(now)
    window = _window(schedule, start, following)
    return window if window.contains(now) else None


def next_window(schedule: SweepSchedule, last_run_start: datetime | None, now: datetime) -> Window:
    """The window of the next scheduled sweep: the current one if it is open and due, else later.

    The current period's window is returned when it is open at `now` and no run started in the
    period; otherwise the window of the first later period without a run. ``enabled`` is not
    consulted (see `is_due`).
    """
    last = _aware_or_none("last_run_start", last_run_start)
    now = _aware("now", now)
    grid = _grid(schedule, last)
    index, start, following = grid.locate(now)
    if last is not None and last >= start:
        if last >= following:
            # The last run is later than now (the clock stepped back): wait for its successor.
            index, start, following = grid.locate(last)
        _, after = grid.successor(index + 1, following)
        return _window(schedule, following, after)
    window = _window(schedule, start, following)
    if window.contains(now):
        return window
    _, after = grid.successor(index + 1, following)
    return _window(schedule, following, after)


def is_due(schedule: SweepSchedule, last_run_start: datetime | None, now: datetime) -> bool:
    """Whether a new scheduled sweep should start at `now` (never when the schedule is disabled).

    True from the start of a period that has no run yet until its window closes. It does not
    know about a sweep still active from an earlier period: the caller keeps that one (resuming
    it if it waits for a window) instead of starting another.
    """
    return schedule.enabled and next_window(schedule, last_run_start, now).start <= now
