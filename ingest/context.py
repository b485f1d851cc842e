"""What the HTTP handlers need, passed to the apps explicitly (no globals)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from verifier.config import Config
from verifier.database import Database
from verifier.metrics import Metrics


@dataclass(slots=True)
class Services:
    """The daemon's shared parts, as seen by the HTTP edge."""

    config: Config
    db: Database
    metrics: Metrics
    # Domain services added by the composition root (stores, ingest writer, verification...).
    extras: dict[str, Any] = field(default_factory=dict)


SERVICES = web.AppKey("services", Services)
