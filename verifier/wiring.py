"""Which routes and components the daemon runs: the one place that wires the parts together."""

from __future__ import annotations

from pathlib import Path

from verifier.config import Config
from verifier.daemon import Daemon


def build_daemon(config: Config, config_path: Path | None) -> Daemon:
    """The daemon with every listener route and background component."""
    return Daemon(config, config_path)
