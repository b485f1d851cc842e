"""One host's state: lane order, pacing, pause, backoff and ramp, driven with plain numbers."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.test_backoff import LOW
from verifier.backoff import HostBackoffPolicy
from verifier.hostslot import (
    Feedback,
    HostLimits,
    HostSlot,
    Job,
    Lane,
    WorkerReport,
    _host_key_of_parts,
    host_key,
)

POLICY = HostBackoffPolicy(
    error_base_s=1.0,
    error_cap_s=100.0,
    rate_limit_pause_s=30.0,
    max_retry_after_s=600.0,
    ramp_start_fraction=0.25,
)
OK = WorkerReport(Feedback.OK)
ERROR = WorkerReport(Feedback.ERROR)


def new_slot(rate_per_s: float = 10.0, concurrency: int = 2) -> HostSlot[str]:
    return HostSlot("shop.example:443", HostLimits(rate_per_s, concurrency))


def test_pop_serves_highest_lane_first_and_fifo_within_a_lane() -> None:
    """Jobs leave by lane (on_demand, changed, sweep), oldest first inside each lane."""
    slot = new_slot()
    order = [(Lane.SWEEP, 1), (Lane.CHANGED, 2), (Lane.SWEEP, 3), (Lane.ON_DEMAND, 4)]
    order += [(Lane.CHANGED, 5)]
    for lane, key in order:
        slot.push(Job(slot.host, lane, key, "p"))
    assert slot.best_lane() is Lane.ON_DEMAND
    popped = [slot.pop().key for _ in range(len(order))]
    assert popped == [4, 2, 5, 1, 3]
    assert slot.queued == 0
    with pytest.raises(IndexError):
        slot.pop()


def test_next_start_is_paced_by_the_configured_rate() -> None:
    """After a start at t, the next may start at t + 1/rate, not earlier."""
    slot = new_slot(rate_per_s=4.0)
    slot.mark_started(100.0)
    assert slot.ready_at == pytest.approx(100.25)


def test_concurrency_cap_counts_running_requests() -> None:
    """The slot reports no room at its concurrency cap, and room again when one finishes."""
    slot = new_slot(concurrency=2)
    slot.mark_started(1.0)
    assert slot.can_start_more
    slot.mark_started(2.0)
    assert not slot.can_start_more
    slot.mark_finished()
    assert slot.can_start_more


def test_consecutive_errors_pause_the_host_exponentially() -> None:
    """Each further error without a success pauses the host twice as long (base 1 s, low draw)."""
    slot = new_slot()
    pauses = []
    for _ in range(4):
        slot.apply(ERROR, 1000.0, POLICY, LOW)
        pauses.append(slot.paused_until - 1000.0)
        slot.paused_until = 0.0
    assert pauses == pytest.approx([0.5, 1.0, 2.0, 4.0])


def test_success_resets_the_error_backoff() -> None:
    """An OK report resets the error count, so the next error pauses at the base step again."""
    slot = new_slot()
    for _ in range(5):
        slot.apply(ERROR, 0.0, POLICY, LOW)
    slot.apply(OK, 0.0, POLICY, LOW)
    slot.apply(ERROR, 500.0, POLICY, LOW)
    assert slot.paused_until == pytest.approx(500.5)


@pytest.mark.parametrize(
    ("retry_after_s", "pause_s"), [(7.0, 7.0), (10_000.0, 600.0), (None, 15.0)]
)
def test_rate_limit_pauses_for_retry_after_capped_or_the_default(
    retry_after_s: float | None, pause_s: float
) -> None:
    """A 429/503 pauses the host for Retry-After (capped), or the default pause when absent."""
    slot = new_slot()
    slot.apply(WorkerReport(Feedback.RATE_LIMITED, retry_after_s), 50.0, POLICY, LOW)
    assert slot.paused_until == pytest.approx(50.0 + pause_s)
    assert slot.ready_at == pytest.approx(50.0 + pause_s)


def test_rate_limit_ramps_rate_back_up_by_doubling() -> None:
    """After a rate limit the pacing starts at a quarter of the rate, doubling per success."""
    slot = new_slot(rate_per_s=10.0)
    slot.apply(WorkerReport(Feedback.RATE_LIMITED, 0.0), 0.0, POLICY, LOW)
    intervals = []
    for _ in range(4):
        slot.mark_started(100.0)
        intervals.append(slot.ready_at - 100.0)
        slot.apply(OK, 100.0, POLICY, LOW)
    assert intervals == pytest.approx([0.4, 0.2, 0.1, 0.1])


def test_new_limits_keep_spacing_from_the_last_start() -> None:
    """A live rate change paces from the last start at the new rate (no burst, no stall)."""
    slot = new_slot(rate_per_s=1.0)
    slot.mark_started(100.0)
    slot.set_limits(HostLimits(1000.0, 2))
    assert slot.ready_at == pytest.approx(100.001)
    slot.set_limits(HostLimits(0.5, 2))
    assert slot.ready_at == pytest.approx(102.0)
    assert slot.limiter.time_period == pytest.approx(2.0)


def test_slot_is_idle_only_without_work_and_after_its_pause() -> None:
    """A slot may be forgotten only with nothing queued or running and no pause pending."""
    slot = new_slot()
    slot.apply(ERROR, 10.0, POLICY, LOW)
    assert not slot.is_idle(10.2)
    assert slot.is_idle(11.0)
    slot.push(Job(slot.host, Lane.SWEEP, 1, "p"))
    assert not slot.is_idle(11.0)
    slot.pop()
    slot.mark_started(11.0)
    assert not slot.is_idle(20.0)
    slot.mark_finished()
    assert slot.is_idle(20.0)


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("https://Shop.Example/p/1", "shop.example:443"),
        ("http://shop.example/p/1", "shop.example:80"),
        ("http://shop.example:8080/p?id=1", "shop.example:8080"),
        ("https://user:pw@shop.example:8443/", "shop.example:8443"),
        ("http://[::1]:8000/p", "[::1]:8000"),
        ("http://127.0.0.1/p", "127.0.0.1:80"),
    ],
)
def test_host_key_is_lowercase_host_and_effective_port(url: str, key: str) -> None:
    """URLs on one host and port share one politeness key; default ports are made explicit."""
    assert host_key(url) == key


@pytest.mark.parametrize(
    ("rate_per_s", "concurrency"), [(0.0, 1), (-1.0, 1), (float("inf"), 1), (1.0, 0)]
)
def test_host_limits_reject_nonsense(rate_per_s: float, concurrency: int) -> None:
    """Limits need a positive finite rate and a concurrency of at least one."""
    with pytest.raises(ValueError):
        HostLimits(rate_per_s, concurrency)


def test_lane_labels_match_the_external_names() -> None:
    """Lanes are labelled as in the interface and metrics, highest first."""
    assert [lane.label for lane in sorted(Lane)] == ["on_demand", "changed", "sweep"]


_URL_PIECES = st.sampled_from(
    [
        "http",
        "https",
        "HTTP",
        "ftp",
        "://",
        ":",
        "/",
        "?",
        "#",
        "@",
        "[",
        "]",
        ".",
        "-",
        "0",
        "8080",
        "65536",
        "99999",
        "shop",
        "Shop",
        "example",
        "::1",
        " ",
        "\t",
        "\n",
        "\x00",
        "%41",
    ]
)


@given(st.lists(_URL_PIECES, max_size=12).map("".join))
@example("http://shop.example:0/p")
@example("https://shop.example:080?q")
@example("http://shop.example:65536/")
@example("http://shop.example\n/")
def test_host_key_reads_every_url_as_urlsplit_does(url: str) -> None:
    """The shortcut for plain URLs answers exactly what the urlsplit reading answers."""
    try:
        expected: object = _host_key_of_parts(url)
    except ValueError as exc:
        expected = type(exc)
    try:
        got: object = host_key(url)
    except ValueError as exc:
        got = type(exc)
    assert got == expected
