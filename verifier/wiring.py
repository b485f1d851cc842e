"""Which routes and components the daemon runs: the one place that wires the parts together."""

from __future__ import annotations

from pathlib import Path

from ingest import products_api, sweeps_api, tag_events, verify_api
from verifier.config import Config
from verifier.daemon import Daemon
from verifier.engine import VerificationEngine
from verifier.sweep_runner import SweepScheduler


def build_daemon(config: Config, config_path: Path | None) -> Daemon:
    """The daemon with every listener route and background component."""
    return Daemon(
        config,
        config_path,
        routes=[tag_events.install_routes],
        api_routes=[
            products_api.install_routes,
            verify_api.install_routes,
            sweeps_api.install_routes,
        ],
        components=[VerificationEngine, SweepScheduler],
    )
