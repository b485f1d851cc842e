"""Retry and backoff policy: pure functions, tested with fixed random sources."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from verifier.backoff import HostBackoffPolicy, host_backoff_s, rate_limit_pause_s, retry_delay_s


class FixedRandom:
    """A random source that always returns one value."""

    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


LOW = FixedRandom(0.0)
HIGH = FixedRandom(0.999_999)


@pytest.mark.parametrize("errors", [0, -1, -100])
def test_host_backoff_is_zero_without_errors(errors: int) -> None:
    """A host with no consecutive error is not paused."""
    assert host_backoff_s(errors, base_s=1.0, cap_s=60.0, rng=HIGH) == 0.0


@pytest.mark.parametrize(
    ("errors", "low_s", "high_s"),
    [(1, 0.5, 1.0), (2, 1.0, 2.0), (3, 2.0, 4.0), (4, 4.0, 8.0), (6, 16.0, 32.0)],
)
def test_host_backoff_doubles_per_error_within_jitter_bounds(
    errors: int, low_s: float, high_s: float
) -> None:
    """The n-th consecutive error pauses between half and all of base * 2**(n-1)."""
    assert host_backoff_s(errors, base_s=1.0, cap_s=1000.0, rng=LOW) == pytest.approx(low_s)
    assert host_backoff_s(errors, base_s=1.0, cap_s=1000.0, rng=HIGH) == pytest.approx(high_s)


@pytest.mark.parametrize("errors", [10, 100, 10_000])
def test_host_backoff_is_capped_even_for_huge_counts(errors: int) -> None:
    """The pause never exceeds the cap, and huge error counts do not overflow."""
    delay_s = host_backoff_s(errors, base_s=2.0, cap_s=300.0, rng=HIGH)
    assert 150.0 <= delay_s <= 300.0


@pytest.mark.parametrize(
    ("attempt", "high_s"), [(-3, 0.5), (0, 0.5), (1, 0.5), (2, 1.0), (5, 8.0), (50, 30.0)]
)
def test_retry_delay_grows_from_the_first_retry_and_is_capped(attempt: int, high_s: float) -> None:
    """Job retries wait between half and all of base * 2**(attempt-1), capped; attempt < 1 is 1."""
    assert retry_delay_s(attempt, base_s=0.5, cap_s=30.0, rng=HIGH) == pytest.approx(high_s)
    assert retry_delay_s(attempt, base_s=0.5, cap_s=30.0, rng=LOW) == pytest.approx(high_s / 2)


@pytest.mark.parametrize(
    ("retry_after_s", "expected_s"), [(0.0, 0.0), (12.5, 12.5), (-4.0, 0.0), (86_400.0, 600.0)]
)
def test_rate_limit_pause_honours_retry_after_up_to_the_cap(
    retry_after_s: float, expected_s: float
) -> None:
    """A Retry-After is used as given (no jitter), clamped to [0, cap]."""
    pause_s = rate_limit_pause_s(retry_after_s, 3, default_s=60.0, cap_s=600.0, rng=HIGH)
    assert pause_s == expected_s


@pytest.mark.parametrize(
    ("consecutive", "high_s"), [(0, 60.0), (1, 60.0), (2, 120.0), (3, 240.0), (9, 600.0)]
)
def test_rate_limit_pause_without_retry_after_grows_from_the_default(
    consecutive: int, high_s: float
) -> None:
    """Without Retry-After the pause starts at the default and doubles per repeat, capped."""
    assert rate_limit_pause_s(
        None, consecutive, default_s=60.0, cap_s=600.0, rng=HIGH
    ) == pytest.approx(high_s)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"error_base_s": 0.0},
        {"error_cap_s": -1.0},
        {"rate_limit_pause_s": 0.0},
        {"max_retry_after_s": -1.0},
        {"ramp_start_fraction": 0.0},
        {"ramp_start_fraction": 1.5},
    ],
)
def test_backoff_policy_rejects_nonsense(kwargs: dict[str, float]) -> None:
    """A policy with non-positive durations or a ramp fraction outside (0, 1] is refused."""
    with pytest.raises(ValueError):
        HostBackoffPolicy(**kwargs)


@given(
    n=st.integers(min_value=1, max_value=5_000),
    base_s=st.floats(min_value=0.001, max_value=100.0),
    cap_s=st.floats(min_value=0.001, max_value=10_000.0),
    draw=st.floats(min_value=0.0, max_value=0.999_999),
)
def test_backoff_stays_between_half_step_and_cap(
    n: int, base_s: float, cap_s: float, draw: float
) -> None:
    """For any count, base, cap and random draw: half the capped step <= delay <= cap."""
    step_s = min(cap_s, base_s * 2.0 ** min(n - 1, 62))
    delay_s = host_backoff_s(n, base_s=base_s, cap_s=cap_s, rng=FixedRandom(draw))
    assert step_s / 2 <= delay_s <= cap_s
    assert retry_delay_s(n, base_s=base_s, cap_s=cap_s, rng=FixedRandom(draw)) == delay_s
