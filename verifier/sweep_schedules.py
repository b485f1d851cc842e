"""Which sweep schedule applies to a merchant: the config file, or the merchant's own override.

``[sweep]`` holds the defaults, ``[merchants.SLUG.sweep]`` the file's overrides, and
``merchants.sweep_override`` (set by ``PATCH /v1/sweep-schedule``) the merchant's own keys, which
win over the file key by key until they are cleared (a key set to null in a PATCH, or
``DELETE /v1/sweep-schedule`` for all of them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from verifier.config import Config
from verifier.database import Database
from verifier.exceptions import InvalidInput
from verifier.schedule import SweepSchedule, describe, next_window

SCHEDULE_KEYS = ("enabled", "every", "start_time", "window", "timezone")


@dataclass(frozen=True, slots=True)
class EffectiveSchedule:
    """A merchant's schedule with where each key comes from."""

    schedule: SweepSchedule
    override: dict[str, Any] | None
    file_keys: dict[str, Any]

    @property
    def source(self) -> str:
        """ "override" when the merchant's own keys apply, else "config"."""
        return "override" if self.override else "config"

    def as_dict(self, now: datetime, last_run_start: datetime | None) -> dict[str, Any]:
        """The JSON form of GET /v1/sweep-schedule."""
        window = next_window(self.schedule, last_run_start, now)
        override = self.override or {}
        return {
            **describe(self.schedule),
            "source": self.source,
            "sources": {k: "override" if k in override else "config" for k in SCHEDULE_KEYS},
            "override": self.override,
            "config": self.file_keys,
            "next_window": (
                {
                    "start": window.start.isoformat(),
                    "end": window.end.isoformat() if window.end else None,
                }
                if self.schedule.enabled
                else None
            ),
        }


def file_keys(config: Config, slug: str) -> dict[str, Any]:
    """The schedule keys the config file gives this merchant."""
    return config.sweep_for(slug).model_dump()


def build_schedule(keys: Mapping[str, Any]) -> SweepSchedule:
    """A schedule from its keys; raises InvalidInput naming the bad key."""
    try:
        return SweepSchedule.from_strings(
            enabled=keys["enabled"],
            every=keys["every"],
            start_time=keys["start_time"],
            window=keys["window"],
            timezone=keys["timezone"],
        )
    except ValueError as exc:
        field, _, message = str(exc).partition(": ")
        raise InvalidInput(
            f"invalid sweep schedule: {exc}", [{"field": field, "message": message or str(exc)}]
        ) from exc


def effective(config: Config, slug: str, override: Mapping[str, Any] | None) -> EffectiveSchedule:
    """The schedule that applies to a merchant; raises InvalidInput for a bad combination."""
    base = file_keys(config, slug)
    keys = {**base, **(override or {})}
    return EffectiveSchedule(build_schedule(keys), dict(override) if override else None, base)


def merge_override(
    current: Mapping[str, Any] | None, patch: Mapping[str, Any]
) -> dict[str, Any] | None:
    """Apply a PATCH body to an override: null removes a key; raises InvalidInput."""
    unknown = sorted(set(patch) - set(SCHEDULE_KEYS))
    if unknown:
        raise InvalidInput(
            f"unknown sweep schedule keys: {', '.join(unknown)}",
            [{"field": k, "message": "unknown key"} for k in unknown],
        )
    merged = dict(current or {})
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
            continue
        expected = bool if key == "enabled" else str
        if not isinstance(value, expected):
            kind = "true or false" if expected is bool else "a string"
            raise InvalidInput(
                f"{key}: expected {kind}", [{"field": key, "message": f"expected {kind}"}]
            )
        merged[key] = value
    return merged or None


async def load_override(db: Database, merchant_id: int) -> dict[str, Any] | None:
    """A merchant's stored override."""
    value: dict[str, Any] | None = await db.pool.fetchval(
        db.queries["sweep_override_get"], merchant_id
    )
    return value


async def store_override(
    db: Database, merchant_id: int, override: Mapping[str, Any] | None
) -> None:
    """Replace a merchant's stored override (None clears it)."""
    await db.pool.execute(
        db.queries["sweep_override_set"], merchant_id, dict(override) if override else None
    )
