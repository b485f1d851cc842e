"""A sweep's progress in memory: the checkpoint cursor, counters, circuit breaker and ETA.

Pure bookkeeping, no IO and no clock reads (times are passed in), so every rule here is tested
with plain values.

The checkpoint rule: products are fed in primary-key order, but verifications finish out of
order. ``SweepCursor`` keeps the fed products in feed order (already sorted, so appending keeps
it sorted) and advances the checkpoint over the finished prefix only: every product up to the
checkpoint has finished, so resuming after it never skips one. Counters follow the same prefix,
so a sweep resumed after a crash counts no product twice.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field

from verifier.outcomes import Decision

SUSPECTED_OUTAGE = "suspected site outage"


class Verdict(enum.Enum):
    """How one checked product counts in a sweep."""

    UNCHANGED = "unchanged"
    CHANGED = "changed"
    DISCONTINUED = "discontinued"  # flipped to discontinued by this check
    FAILED = "failed"


def verdict_of(decision: Decision, was_discontinued: bool) -> Verdict:
    """The verdict of a final decision for a product that was (or not) discontinued before."""
    if decision.availability == "discontinued" and not was_discontinued:
        return Verdict.DISCONTINUED
    if decision.counts_as_failure:
        return Verdict.FAILED
    return Verdict.CHANGED if decision.changes else Verdict.UNCHANGED


def is_suspect(verdict: Verdict) -> bool:
    """Whether the circuit breaker counts this verdict against the site."""
    return verdict in (Verdict.DISCONTINUED, Verdict.FAILED)


@dataclass(slots=True)
class Tally:
    """Counters of checked products."""

    checked: int = 0
    changed: int = 0
    discontinued: int = 0
    errors: int = 0

    def add(self, verdict: Verdict) -> None:
        """Count one checked product."""
        self.checked += 1
        if verdict is Verdict.CHANGED:
            self.changed += 1
        elif verdict is Verdict.DISCONTINUED:
            self.discontinued += 1
            self.changed += 1
        elif verdict is Verdict.FAILED:
            self.errors += 1


@dataclass(slots=True)
class SweepCursor:
    """Products handed to the sweep lane, in key order, and the finished prefix behind them."""

    checkpoint: str | None = None
    tally: Tally = field(default_factory=Tally)
    _order: deque[str] = field(default_factory=deque)
    _done: dict[str, Verdict | None] = field(default_factory=dict)

    def fed(self, product_id: str) -> None:
        """Note a product handed to the lane (ids must come in increasing key order)."""
        self._order.append(product_id)
        self._done[product_id] = None

    def finished(self, product_id: str, verdict: Verdict) -> bool:
        """Note a product's final verdict; False when it was not outstanding here."""
        if self._done.get(product_id, verdict) is not None:
            return False
        self._done[product_id] = verdict
        order, done = self._order, self._done
        while order:
            head = done[order[0]]
            if head is None:
                break
            self.checkpoint = order.popleft()
            del done[self.checkpoint]
            self.tally.add(head)
        return True

    @property
    def outstanding(self) -> int:
        """Products fed and not yet behind the checkpoint (in flight or finished out of order)."""
        return len(self._order)

    def is_outstanding(self, product_id: str) -> bool:
        """Whether this product was fed and is not yet behind the checkpoint."""
        return product_id in self._done


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When a sweep suspects a site outage and halts itself."""

    min_sample: int = 50  # products checked since the (re)start before judging
    window: int = 200  # the most recent products judged
    max_suspect_share: float = 0.2  # more than this share discontinued or failed: halt

    def __post_init__(self) -> None:
        if not 1 <= self.min_sample <= self.window:
            raise ValueError("min_sample must be between 1 and window")
        if not 0.0 <= self.max_suspect_share < 1.0:
            raise ValueError("max_suspect_share must be in [0, 1)")


class CircuitBreaker:
    """The share of suspect verdicts among the last ``window`` checked products."""

    def __init__(self, policy: BreakerPolicy) -> None:
        self.policy = policy
        self._recent: deque[bool] = deque()
        self._suspect = 0
        self.observed = 0

    def observe(self, suspect: bool) -> None:
        """Count one checked product."""
        self.observed += 1
        self._recent.append(suspect)
        self._suspect += suspect
        if len(self._recent) > self.policy.window:
            self._suspect -= self._recent.popleft()

    @property
    def suspect_share(self) -> float:
        """Suspect verdicts among the recent products (0.0 before any)."""
        return self._suspect / len(self._recent) if self._recent else 0.0

    @property
    def tripped(self) -> bool:
        """Whether the sample is large enough and too many of it look like an outage."""
        return (
            self.observed >= self.policy.min_sample
            and self.suspect_share > self.policy.max_suspect_share
        )

    def vindicated(self, observed_at: int) -> bool:
        """Whether a verdict observed as number ``observed_at`` has left a healthy window."""
        return self.observed >= observed_at + self.policy.window and not self.tripped


class RateMeter:
    """Products per second, smoothed over checkpoints (exponential moving average)."""

    def __init__(self, half_life_s: float = 30.0) -> None:
        self.half_life_s = half_life_s
        self.rate_per_s: float | None = None
        self._last: tuple[float, int] | None = None

    def sample(self, now_s: float, checked: int) -> float | None:
        """Add a (monotonic time, products checked) sample; the current rate or None."""
        if self._last is None:
            self._last = (now_s, checked)
            return self.rate_per_s
        then_s, before = self._last
        elapsed = now_s - then_s
        if elapsed < 1.0:
            return self.rate_per_s
        self._last = (now_s, checked)
        instant = max(0, checked - before) / elapsed
        if self.rate_per_s is None:
            self.rate_per_s = instant
        else:
            weight = 0.5 ** (elapsed / self.half_life_s)
            self.rate_per_s = weight * self.rate_per_s + (1 - weight) * instant
        return self.rate_per_s


def expected_rate_per_s(per_host_rate: float, hosts: int) -> float:
    """The rate a sweep may reach: every allowed host at its politeness rate."""
    return per_host_rate * max(1, hosts)


def eta_seconds(remaining: int, rate_per_s: float | None) -> float | None:
    """Seconds to check ``remaining`` products at ``rate_per_s`` (None without a rate)."""
    if remaining <= 0:
        return 0.0
    if rate_per_s is None or rate_per_s <= 0:
        return None
    return remaining / rate_per_s


def spill_warning(
    eta_s: float | None, window_left_s: float | None, rate_per_s: float
) -> str | None:
    """A warning when the rest of the catalog will not fit in what is left of the window."""
    if eta_s is None or window_left_s is None or eta_s <= window_left_s:
        return None
    return (
        f"will not finish inside the window: about {_duration(eta_s)} of work left at "
        f"{rate_per_s:.1f} products/s, the window closes in {_duration(max(0.0, window_left_s))};"
        " the sweep continues in the next window"
    )


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 120:
        return f"{max(minutes, 1)} min"
    return f"{minutes / 60:.1f} h"
