"""Sweep schedule arithmetic: parsing, windows, due-ness and DST edges, on a clock passed in."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from itertools import islice, pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verifier.schedule import (
    SweepSchedule,
    Window,
    current_window,
    describe,
    format_duration,
    is_due,
    local_to_utc,
    next_window,
    parse_duration,
    parse_start_time,
    run_starts,
    windows,
)

MADRID = ZoneInfo("Europe/Madrid")  # 2026-03-29 02:00 -> 03:00, 2026-10-25 03:00 -> 02:00
NEW_YORK = ZoneInfo("America/New_York")  # 2026-03-08 02:00 -> 03:00, 2026-11-01 02:00 -> 01:00
MINUTE = timedelta(minutes=1)


def z(month: int, day: int, hour: int = 0, minute: int = 0, year: int = 2026) -> datetime:
    """An instant in UTC."""
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def schedule(
    every: str = "1d",
    start_time: str = "02:00",
    window: str = "4h",
    timezone: str = "UTC",
    enabled: bool = True,
) -> SweepSchedule:
    return SweepSchedule.from_strings(
        enabled=enabled, every=every, start_time=start_time, window=window, timezone=timezone
    )


# --- parsing and rendering ---------------------------------------------------------------


DURATIONS = [
    ("0", timedelta(0)), ("1m", timedelta(minutes=1)), ("90m", timedelta(minutes=90)),
    ("1h", timedelta(hours=1)), ("6h", timedelta(hours=6)), ("36h", timedelta(hours=36)),
    ("1d", timedelta(days=1)), ("3d", timedelta(days=3)), ("1w", timedelta(weeks=1)),
    ("520w", timedelta(weeks=520)),
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), DURATIONS)
def test_parse_duration_reads_each_unit(text: str, expected: timedelta) -> None:
    """Durations are "0" or a positive integer followed by m, h, d or w."""
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "h", "1", "0h", "01h", "-1h", "1.5h", "1H", " 1h", "1h ", "1h\n", "1y", "1d2h", "521w"],
)
def test_parse_duration_rejects_malformed_text(text: str) -> None:
    """Anything else, including a zero count, leading zeros and over 520w, is a ValueError."""
    with pytest.raises(ValueError, match=re.escape(repr(text))):
        parse_duration(text)


@pytest.mark.parametrize(("text", "expected"), [("00:00", time(0, 0)), ("02:30", time(2, 30))])
def test_parse_start_time_reads_hh_mm(text: str, expected: time) -> None:
    """Start times are two-digit HH:MM wall-clock times."""
    assert parse_start_time(text) == expected


@pytest.mark.parametrize("text", ["24:00", "2:00", "02:60", "02:00:00", "0200", "", "02:00 "])
def test_parse_start_time_rejects_other_text(text: str) -> None:
    """Anything outside 00:00..23:59 in HH:MM form is a ValueError."""
    with pytest.raises(ValueError, match="HH:MM"):
        parse_start_time(text)


RENDERINGS = [
    (timedelta(0), "0"), (timedelta(minutes=90), "90m"), (timedelta(minutes=60), "1h"),
    (timedelta(hours=36), "36h"), (timedelta(hours=24), "1d"), (timedelta(days=7), "1w"),
    (timedelta(days=15), "15d"),
]  # fmt: skip


@pytest.mark.parametrize(("duration", "expected"), RENDERINGS)
def test_format_duration_uses_the_largest_exact_unit(duration: timedelta, expected: str) -> None:
    """Rendering picks the largest unit that divides the duration exactly."""
    assert format_duration(duration) == expected


@settings(deadline=None)
@given(st.integers(min_value=0, max_value=520 * 7 * 24 * 60))
def test_format_duration_round_trips_through_parse(minutes: int) -> None:
    """parse_duration reads back whatever format_duration writes."""
    assert parse_duration(format_duration(timedelta(minutes=minutes))) == timedelta(minutes=minutes)


BAD_FIELDS = [
    ({"every": "0"}, "every"), ({"every": "90m"}, "every"), ({"every": "1x"}, "every"),
    ({"start_time": "24:00"}, "start_time"), ({"window": "-1h"}, "window"),
    ({"timezone": "Mars/Olympus_Mons"}, "timezone"), ({"timezone": "../etc/passwd"}, "timezone"),
    ({"enabled": "yes"}, "enabled"),
]  # fmt: skip


@pytest.mark.parametrize(("override", "field"), BAD_FIELDS)
def test_from_strings_error_names_the_bad_field(override: dict[str, Any], field: str) -> None:
    """A bad config value raises a ValueError whose message starts with the key."""
    values: dict[str, Any] = describe(schedule())
    with pytest.raises(ValueError, match=rf"^{field}: "):
        SweepSchedule.from_strings(**(values | override))


def test_schedule_rejects_a_sub_hour_cadence_built_directly() -> None:
    """The dataclass enforces whole-hour cadences even without from_strings."""
    with pytest.raises(ValueError, match="every"):
        SweepSchedule(True, timedelta(minutes=30), time(2), timedelta(0), ZoneInfo("UTC"))


def test_describe_renders_the_config_strings() -> None:
    """describe gives back the [sweep] keys, with durations in their largest exact unit."""
    built = schedule(every="24h", start_time="02:30", window="0", timezone="Europe/Madrid")
    assert describe(built) == {
        "enabled": True,
        "every": "1d",
        "start_time": "02:30",
        "window": "0",
        "timezone": "Europe/Madrid",
    }


# --- DST resolution of wall-clock starts --------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "wall", "expected"),
    [
        (MADRID, datetime(2026, 3, 29, 1, 59), z(3, 29, 0, 59)),
        (MADRID, datetime(2026, 3, 29, 2, 0), z(3, 29, 1)),  # gap: 03:00 CEST
        (MADRID, datetime(2026, 3, 29, 2, 30), z(3, 29, 1)),
        (MADRID, datetime(2026, 3, 29, 3, 0), z(3, 29, 1)),
        (MADRID, datetime(2026, 10, 25, 2, 30), z(10, 25, 0, 30)),  # first 02:30, CEST
        (MADRID, datetime(2026, 10, 25, 3, 0), z(10, 25, 2)),
        (NEW_YORK, datetime(2026, 3, 8, 2, 30), z(3, 8, 7)),  # gap: 03:00 EDT
        (NEW_YORK, datetime(2026, 11, 1, 1, 30), z(11, 1, 5, 30)),  # first 01:30, EDT
        (NEW_YORK, datetime(2026, 11, 1, 2, 0), z(11, 1, 7)),
        (ZoneInfo("Australia/Lord_Howe"), datetime(2026, 10, 4, 2, 15), z(10, 3, 15, 30)),
        (ZoneInfo("Pacific/Apia"), datetime(2011, 12, 30, 12), z(12, 30, 10, year=2011)),
    ],
)
def test_wall_clock_start_maps_to_first_instant_reaching_it(
    zone: ZoneInfo, wall: datetime, expected: datetime
) -> None:
    """Missing times start when the gap ends; repeated times start at their first occurrence."""
    assert local_to_utc(wall, zone) == expected


ZONES = [
    "UTC",
    "Europe/Madrid",
    "America/New_York",
    "Europe/Dublin",
    "Australia/Lord_Howe",
    "America/Santiago",
    "America/Havana",
    "America/St_Johns",
    "Pacific/Chatham",
    "Asia/Kolkata",
    "Pacific/Apia",
]
walls = st.datetimes(min_value=datetime(2005, 1, 1), max_value=datetime(2035, 1, 1)).map(
    lambda moment: moment.replace(second=0, microsecond=0)
)


@settings(deadline=None)
@given(st.sampled_from(ZONES).map(ZoneInfo), walls)
def test_wall_clock_start_is_the_earliest_instant_at_or_after_it(
    zone: ZoneInfo, wall: datetime
) -> None:
    """The resolved instant shows a local time at or after the wall time; a second before, not."""
    instant = local_to_utc(wall, zone)
    assert instant.astimezone(zone).replace(tzinfo=None) >= wall
    assert (instant - timedelta(seconds=1)).astimezone(zone).replace(tzinfo=None) < wall


# --- windows and due-ness -----------------------------------------------------------------

WINDOW_CASES: list[tuple[str, dict[str, Any], datetime | None, datetime, Window]] = [
    ("before today's start", {}, None, z(5, 4, 1), Window(z(5, 4, 2), z(5, 4, 6))),
    ("inside, never ran", {}, None, z(5, 4, 3), Window(z(5, 4, 2), z(5, 4, 6))),
    ("window closed", {}, None, z(5, 4, 6), Window(z(5, 5, 2), z(5, 5, 6))),
    ("ran this period", {}, z(5, 4, 2), z(5, 4, 3), Window(z(5, 5, 2), z(5, 5, 6))),
    ("missed, until done", {"window": "0"}, z(5, 2, 2), z(5, 4, 15), Window(z(5, 4, 2), None)),
    ("clock stepped back", {}, z(5, 4, 2), z(5, 3, 23), Window(z(5, 5, 2), z(5, 5, 6))),
    ("window cut at next", {"every": "6h", "window": "8h"}, None, z(5, 4, 3),
     Window(z(5, 4, 2), z(5, 4, 8))),
    ("2d from last run", {"every": "2d"}, z(5, 4, 2), z(5, 5, 3), Window(z(5, 6, 2), z(5, 6, 6))),
    ("manual run before start_time", {"every": "2d"}, z(5, 4, 1), z(5, 4, 2, 30),
     Window(z(5, 5, 2), z(5, 5, 6))),
    ("1w from last run", {"every": "1w"}, z(5, 6, 2), z(5, 7), Window(z(5, 13, 2), z(5, 13, 6))),
    ("3d missed, until done", {"every": "3d", "window": "0"}, z(5, 1, 2), z(5, 8, 12),
     Window(z(5, 7, 2), None)),
    ("Madrid start in gap", {"start_time": "02:30", "timezone": "Europe/Madrid"}, None,
     z(3, 29), Window(z(3, 29, 1), z(3, 29, 5))),
    ("Madrid 4h are real hours", {"start_time": "00:30", "timezone": "Europe/Madrid"}, None,
     z(3, 28, 23), Window(z(3, 28, 23, 30), z(3, 29, 3, 30))),
    ("Madrid repeated hour", {"start_time": "02:30", "timezone": "Europe/Madrid"}, None,
     z(10, 25), Window(z(10, 25, 0, 30), z(10, 25, 4, 30))),
    ("Madrid second 02:30", {"start_time": "02:30", "timezone": "Europe/Madrid"},
     z(10, 25, 0, 30), z(10, 25, 1, 30), Window(z(10, 26, 1, 30), z(10, 26, 5, 30))),
    ("New York start in gap", {"start_time": "02:30", "timezone": "America/New_York"}, None,
     z(3, 8, 6), Window(z(3, 8, 7), z(3, 8, 11))),
    ("New York repeated hour", {"start_time": "01:30", "timezone": "America/New_York"}, None,
     z(11, 1, 5), Window(z(11, 1, 5, 30), z(11, 1, 9, 30))),
    ("New York second 01:30", {"start_time": "01:30", "timezone": "America/New_York"},
     z(11, 1, 5, 30), z(11, 1, 6, 30), Window(z(11, 2, 6, 30), z(11, 2, 10, 30))),
    ("6h over Madrid gap", {"every": "6h", "start_time": "02:30", "timezone": "Europe/Madrid"},
     z(3, 28, 19, 30), z(3, 28, 23, 40), Window(z(3, 29, 1), z(3, 29, 5))),
    ("6h over Madrid fall back",
     {"every": "6h", "start_time": "02:30", "window": "0", "timezone": "Europe/Madrid"},
     z(10, 25, 0, 30), z(10, 25, 5), Window(z(10, 25, 7, 30), None)),
    ("2d into Madrid gap", {"every": "2d", "start_time": "02:30", "timezone": "Europe/Madrid"},
     z(3, 27, 1, 30), z(3, 27, 12), Window(z(3, 29, 1), z(3, 29, 5))),
    ("1w into New York fall back",
     {"every": "1w", "start_time": "01:30", "timezone": "America/New_York"},
     z(10, 25, 5, 30), z(10, 26), Window(z(11, 1, 5, 30), z(11, 1, 9, 30))),
]  # fmt: skip


@pytest.mark.parametrize(
    ("keys", "last_run", "now", "expected"),
    [case[1:] for case in WINDOW_CASES],
    ids=[case[0] for case in WINDOW_CASES],
)
def test_next_window_is_the_due_or_upcoming_window(
    keys: dict[str, Any], last_run: datetime | None, now: datetime, expected: Window
) -> None:
    """next_window gives the open window of an unrun period, else the next period's window."""
    assert next_window(schedule(**keys), last_run, now) == expected


DUE_CASES: list[tuple[str, dict[str, Any], datetime | None, datetime, bool]] = [
    ("never ran, at the start", {}, None, z(5, 4, 2), True),
    ("never ran, a minute early", {}, None, z(5, 4, 1, 59), False),
    ("window end is exclusive", {}, None, z(5, 4, 6), False),
    ("still going in its period", {}, z(5, 4, 2), z(5, 4, 5, 59), False),
    ("until done, same period", {"window": "0"}, z(5, 4, 2), z(5, 5, 1, 59), False),
    ("next period begins", {}, z(5, 4, 2), z(5, 5, 2), True),
    ("missed, window closed", {}, z(5, 2, 2), z(5, 4, 12), False),
    ("missed, until done", {"window": "0"}, z(5, 2, 2), z(5, 4, 12), True),
    ("disabled", {"enabled": False}, None, z(5, 4, 3), False),
    ("last run in the future", {}, z(5, 4, 2), z(5, 3, 23), False),
    ("Madrid gap, before", {"start_time": "02:30", "timezone": "Europe/Madrid"}, None,
     z(3, 29, 0, 59), False),
    ("Madrid gap, at 03:00", {"start_time": "02:30", "timezone": "Europe/Madrid"}, None,
     z(3, 29, 1), True),
    ("New York second 01:30", {"start_time": "01:30", "timezone": "America/New_York"},
     z(11, 1, 5, 30), z(11, 1, 6, 30), False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("keys", "last_run", "now", "expected"),
    [case[1:] for case in DUE_CASES],
    ids=[case[0] for case in DUE_CASES],
)
def test_is_due_only_once_per_period_inside_its_window(
    keys: dict[str, Any], last_run: datetime | None, now: datetime, expected: bool
) -> None:
    """A sweep is due when its period has no run yet and the period's window is open."""
    assert is_due(schedule(**keys), last_run, now) is expected


CURRENT_CASES: list[tuple[str, dict[str, Any], datetime | None, datetime, Window | None]] = [
    ("inside", {}, None, z(5, 4, 3), Window(z(5, 4, 2), z(5, 4, 6))),
    ("at the end", {}, None, z(5, 4, 6), None),
    ("before the start", {}, None, z(5, 4, 1), None),
    ("until done", {"window": "0"}, None, z(5, 4, 1), Window(z(5, 3, 2), None)),
    ("2d, off day", {"every": "2d"}, z(5, 4, 2), z(5, 5, 3), None),
    ("2d, next run day", {"every": "2d"}, z(5, 4, 2), z(5, 6, 3), Window(z(5, 6, 2), z(5, 6, 6))),
    ("Madrid, last minute", {"start_time": "00:30", "timezone": "Europe/Madrid"}, None,
     z(3, 29, 3, 29), Window(z(3, 28, 23, 30), z(3, 29, 3, 30))),
    ("Madrid, 4 real hours", {"start_time": "00:30", "timezone": "Europe/Madrid"}, None,
     z(3, 29, 3, 30), None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("keys", "last_run", "now", "expected"),
    [case[1:] for case in CURRENT_CASES],
    ids=[case[0] for case in CURRENT_CASES],
)
def test_current_window_is_the_open_window_or_none(
    keys: dict[str, Any], last_run: datetime | None, now: datetime, expected: Window | None
) -> None:
    """current_window tells a running sweep whether it may go on (a window) or pauses (None)."""
    assert current_window(schedule(**keys), now, last_run) == expected


def test_hour_cadence_grid_does_not_follow_the_last_run() -> None:
    """A 5h cadence keeps start_time + k*5h from a fixed day, whenever the last run was."""
    every_5h = schedule(every="5h", start_time="00:00")
    after_early = list(islice(run_starts(every_5h, z(5, 4, 0, 10), z(5, 4, 12)), 5))
    after_late = list(islice(run_starts(every_5h, z(5, 4, 11, 50), z(5, 4, 12)), 5))
    assert after_early == after_late
    assert all(start.timestamp() % (5 * 3600) == 0 for start in after_early)


@pytest.mark.parametrize(
    "call",
    [
        lambda now, last: next_window(schedule(), last, now),
        lambda now, last: is_due(schedule(), last, now),
        lambda now, last: current_window(schedule(), now, last),
        lambda now, last: windows(schedule(), last, now),
        lambda now, last: run_starts(schedule(), last, now),
    ],
)
@pytest.mark.parametrize(
    ("now", "last"),
    [(datetime(2026, 5, 4, 3), None), (z(5, 4, 3), datetime(2026, 5, 4, 2))],
)
def test_naive_datetimes_are_rejected(call: Any, now: datetime, last: datetime | None) -> None:
    """Every function refuses a naive now or last_run_start at call time."""
    with pytest.raises(ValueError, match="timezone-aware"):
        call(now, last)


# --- a simulated daemon stepping a clock minute by minute ---------------------------------


def simulate(
    plan: SweepSchedule,
    begin: datetime,
    end: datetime,
    work: timedelta,
    last_run: datetime | None = None,
) -> list[tuple[str, datetime]]:
    """Start a sweep whenever one is due and none is active; run it only inside windows."""
    events: list[tuple[str, datetime]] = []
    remaining: timedelta | None = None
    paused = False
    now = begin
    while now < end:
        if remaining is None and is_due(plan, last_run, now):
            last_run, remaining, paused = now, work, False
            events.append(("start", now))
        if remaining is not None:
            is_open = current_window(plan, now, last_run) is not None
            if is_open == paused:
                events.append(("resume" if is_open else "pause", now))
                paused = not is_open
            if is_open:
                remaining -= MINUTE
                if remaining <= timedelta(0):
                    remaining = None
                    events.append(("done", now + MINUTE))
        now += MINUTE
    return events


def first_reaches(
    zone: ZoneInfo, begin: datetime, end: datetime, tods: Sequence[time]
) -> list[datetime]:
    """Minutes at which local time first reaches each time of day on each local date."""
    reached: set[tuple[date, time]] = set()
    found: list[datetime] = []
    now = begin
    while now < end:
        local = now.astimezone(zone)
        for tod in tods:
            if local.time() >= tod and (local.date(), tod) not in reached:
                reached.add((local.date(), tod))
                found.append(now)
        now += MINUTE
    return found


@pytest.mark.parametrize(
    ("zone", "start_time", "window", "begin", "end"),
    [
        (MADRID, "02:30", "4h", z(3, 14, 23), z(4, 13, 22)),
        (NEW_YORK, "01:30", "0", z(10, 18, 4), z(11, 17, 5)),
    ],
    ids=["Madrid spring, start in the gap", "New York fall, start in the repeated hour"],
)
def test_daily_sweep_starts_once_every_local_day_for_a_month(
    zone: ZoneInfo, start_time: str, window: str, begin: datetime, end: datetime
) -> None:
    """Across a DST change, a daily schedule starts exactly once per local day, never 0 or 2."""
    plan = schedule(start_time=start_time, window=window, timezone=zone.key)
    # The sweep "ran" at local midnight before the month, so the first start is the next one.
    events = simulate(plan, begin, end, work=MINUTE, last_run=begin)
    starts = [moment for kind, moment in events if kind == "start"]
    assert starts == first_reaches(zone, begin, end, [parse_start_time(start_time)])
    assert len({start.astimezone(zone).date() for start in starts}) == len(starts) == 30


@pytest.mark.parametrize(
    ("zone", "every", "start_time", "begin", "end", "take_every"),
    [
        (MADRID, "2d", "02:30", z(3, 24, 23), z(4, 1, 22), 2),
        (MADRID, "3d", "02:30", z(10, 18, 22), z(10, 31, 23), 3),
        (NEW_YORK, "1w", "02:30", z(3, 1, 5), z(3, 16, 4), 7),
        (NEW_YORK, "1w", "01:30", z(10, 25, 4), z(11, 9, 5), 7),
    ],
    ids=["Madrid 2d spring", "Madrid 3d fall", "New York 1w spring", "New York 1w fall"],
)
def test_multi_day_cadence_starts_on_every_nth_local_day(
    zone: ZoneInfo, every: str, start_time: str, begin: datetime, end: datetime, take_every: int
) -> None:
    """Nd and Nw schedules start at start_time local on every N-th day, across DST changes."""
    plan = schedule(every=every, start_time=start_time, timezone=zone.key)
    starts = [moment for kind, moment in simulate(plan, begin, end, MINUTE) if kind == "start"]
    daily = first_reaches(zone, begin, end, [parse_start_time(start_time)])
    assert starts == daily[::take_every]
    assert len(starts) >= 3


@pytest.mark.parametrize(
    ("zone", "start_time", "begin", "end"),
    [(MADRID, "02:30", z(3, 27, 0), z(3, 31, 0)), (NEW_YORK, "01:30", z(10, 31, 5), z(11, 3, 5))],
    ids=["Madrid spring", "New York fall"],
)
def test_six_hourly_sweep_starts_at_each_local_slot(
    zone: ZoneInfo, start_time: str, begin: datetime, end: datetime
) -> None:
    """A 6h schedule starts once at each of its four local times of day, across DST changes."""
    plan = schedule(every="6h", start_time=start_time, window="2h", timezone=zone.key)
    first = datetime.combine(date(2026, 1, 1), parse_start_time(start_time))
    slots = [(first + timedelta(hours=6 * k)).time() for k in range(4)]
    starts = [moment for kind, moment in simulate(plan, begin, end, MINUTE) if kind == "start"]
    assert starts == sorted(first_reaches(zone, begin, end, slots))
    assert len(starts) >= 11


def test_long_sweep_pauses_at_window_end_and_resumes_at_next_start() -> None:
    """A sweep longer than its window pauses 4 real hours in and resumes at the next start."""
    plan = schedule(start_time="02:30", timezone="Europe/Madrid")
    events = simulate(plan, z(3, 28), z(3, 29, 2), work=timedelta(hours=5))
    assert events == [
        ("start", z(3, 28, 1, 30)),
        ("pause", z(3, 28, 5, 30)),
        ("resume", z(3, 29, 1)),  # 02:30 does not exist that day: 03:00 CEST
        ("done", z(3, 29, 2)),
    ]


def test_sweep_still_running_is_not_due_again_within_its_period() -> None:
    """is_due stays False for every minute from a run's start until the next period starts."""
    plan = schedule(every="6h", window="0")
    start, now = z(5, 4, 2), z(5, 4, 2)
    while now < z(5, 4, 8):
        assert not is_due(plan, start, now), now
        now += MINUTE
    assert is_due(plan, start, now)


# --- properties over random schedules and clocks ------------------------------------------

schedules = st.builds(
    SweepSchedule,
    enabled=st.just(True),
    every=st.one_of(
        st.sampled_from([1, 2, 5, 6, 7, 12, 24, 36, 48, 72, 168]),
        st.integers(min_value=1, max_value=24 * 21),
    ).map(lambda hours: timedelta(hours=hours)),
    start_time=st.builds(time, st.integers(0, 23), st.integers(0, 59)),
    window=st.one_of(st.just(0), st.integers(1, 60 * 24 * 10)).map(
        lambda minutes: timedelta(minutes=minutes)
    ),
    timezone=st.sampled_from(ZONES).map(ZoneInfo),
)
instants = st.datetimes(
    min_value=datetime(2005, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)
)
ago = st.none() | st.integers(-3600, 60 * 24 * 30).map(lambda minutes: timedelta(minutes=minutes))


def last_run_of(now: datetime, minutes_ago: timedelta | None) -> datetime | None:
    return None if minutes_ago is None else now - minutes_ago


@settings(deadline=None)
@given(schedules, instants, ago)
def test_next_window_is_open_now_or_in_the_future(
    plan: SweepSchedule, now: datetime, minutes_ago: timedelta | None
) -> None:
    """next_window either contains now (and the sweep is due) or starts later."""
    last_run = last_run_of(now, minutes_ago)
    found = next_window(plan, last_run, now)
    assert found.contains(now) or found.start > now
    assert is_due(plan, last_run, now) is (found.start <= now)
    assert (found.end is None) is (plan.window == timedelta(0))


@settings(deadline=None)
@given(schedules, instants, ago)
def test_successive_windows_never_overlap(
    plan: SweepSchedule, now: datetime, minutes_ago: timedelta | None
) -> None:
    """Windows of successive periods are non-empty, ordered and disjoint; the first holds now."""
    found = list(islice(windows(plan, last_run_of(now, minutes_ago), now), 6))
    assert found[0].start <= now < found[1].start
    for earlier, later in pairwise(found):
        assert earlier.start < later.start
        assert earlier.end is None or earlier.start < earlier.end <= later.start


@settings(deadline=None)
@given(schedules, instants, ago)
def test_starting_a_due_sweep_makes_the_next_one_wait_for_the_next_period(
    plan: SweepSchedule, now: datetime, minutes_ago: timedelta | None
) -> None:
    """Once a due sweep starts, none is due until the next period's start, then one is."""
    if not is_due(plan, last_run_of(now, minutes_ago), now):
        return
    upcoming = next_window(plan, now, now).start
    assert upcoming > now
    assert not is_due(plan, now, now)
    assert not is_due(plan, now, upcoming - timedelta(seconds=1))
    assert is_due(plan, now, upcoming)


@settings(deadline=None)
@given(schedules.filter(lambda plan: plan.timezone.key != "Pacific/Apia"), instants, ago)
def test_day_cadences_start_every_n_local_days(
    plan: SweepSchedule, now: datetime, minutes_ago: timedelta | None
) -> None:
    """With whole-day cadences successive starts are exactly N local dates apart."""
    if plan.every % timedelta(days=1):
        plan = SweepSchedule(True, timedelta(days=2), plan.start_time, plan.window, plan.timezone)
    # Never-run whole-day schedules list every day as a candidate; a run fixes the cadence.
    last_run = last_run_of(now, minutes_ago) or now
    starts = list(islice(run_starts(plan, last_run, now), 5))
    dates = [start.astimezone(plan.timezone).date() for start in starts]
    assert {later - earlier for earlier, later in pairwise(dates)} == {
        timedelta(days=plan.every.days)
    }
