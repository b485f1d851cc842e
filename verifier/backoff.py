"""Retry and backoff policy: pure functions of counts and a random source, no clock and no IO."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

# 2**62 seconds is already far past any cap; a larger exponent would overflow a float.
_MAX_EXPONENT = 62


class RandomSource(Protocol):
    """What the policy needs from a random generator (``random.Random`` fits)."""

    def random(self) -> float:
        """Return a float in [0, 1)."""
        ...


@dataclass(frozen=True, slots=True)
class HostBackoffPolicy:
    """How a host is paused after errors and rate limiting, and how its rate ramps back up."""

    error_base_s: float = 1.0
    error_cap_s: float = 300.0
    rate_limit_pause_s: float = 60.0
    max_retry_after_s: float = 600.0
    ramp_start_fraction: float = 0.25

    def __post_init__(self) -> None:
        if min(self.error_base_s, self.error_cap_s, self.rate_limit_pause_s) <= 0:
            raise ValueError("backoff durations must be positive")
        if self.max_retry_after_s < 0:
            raise ValueError("max_retry_after_s must not be negative")
        if not 0 < self.ramp_start_fraction <= 1:
            raise ValueError("ramp_start_fraction must be in (0, 1]")


def _jittered_exponential(n: int, base_s: float, cap_s: float, rng: RandomSource) -> float:
    # "Equal jitter": the delay stays at least half the exponential step, so a backoff never
    # collapses to an immediate retry, while hosts and jobs that failed together spread out.
    ceiling = min(cap_s, base_s * 2.0 ** min(n - 1, _MAX_EXPONENT))
    return ceiling / 2 + rng.random() * ceiling / 2


def host_backoff_s(
    consecutive_errors: int, *, base_s: float, cap_s: float, rng: RandomSource
) -> float:
    """Pause a host after its n-th consecutive error: 0 for none, then ~base * 2**(n-1), capped."""
    if consecutive_errors <= 0:
        return 0.0
    return _jittered_exponential(consecutive_errors, base_s, cap_s, rng)


def retry_delay_s(attempt: int, *, base_s: float, cap_s: float, rng: RandomSource) -> float:
    """Delay before retry number ``attempt`` (1 = first retry) of one job, jittered and capped."""
    return _jittered_exponential(max(attempt, 1), base_s, cap_s, rng)


def rate_limit_pause_s(
    retry_after_s: float | None,
    consecutive_rate_limits: int,
    *,
    default_s: float,
    cap_s: float,
    rng: RandomSource,
) -> float:
    """Pause a host after a 429/503: Retry-After when given, else a growing default; capped."""
    if retry_after_s is not None:
        return min(max(retry_after_s, 0.0), cap_s)
    return host_backoff_s(max(consecutive_rate_limits, 1), base_s=default_s, cap_s=cap_s, rng=rng)
