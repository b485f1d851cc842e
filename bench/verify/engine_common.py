"""Set-up shared by the benchmark's verifier processes: config, database, services."""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from ingest.context import Services
from verifier.config import Config, CrawlerConfig, DatabaseConfig, LogConfig
from verifier.database import Database
from verifier.logs import configure_logging
from verifier.metrics import Metrics


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments every verifier child takes."""
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--merchant-id", type=int, action="append", required=True)
    parser.add_argument("--result", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--watch", action="append", default=[], help="name=pid to account CPU")
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--per-host-rate", type=float, default=10_000.0)
    parser.add_argument("--per-host-concurrency", type=int, default=8)


def engine_config(args: argparse.Namespace) -> Config:
    """The daemon's config as the benchmark runs it: loopback shop, no robots.txt."""
    return Config(
        database=DatabaseConfig(dsn=args.dsn),
        crawler=CrawlerConfig(
            concurrency=args.concurrency,
            per_host_rate=args.per_host_rate,
            per_host_concurrency=args.per_host_concurrency,
            allow_private_networks=True,
            respect_robots_txt=False,
        ),
        log=LogConfig(level="warning", format="json"),
    )


@asynccontextmanager
async def open_services(config: Config) -> AsyncIterator[Services]:
    """The daemon's services on an open database pool."""
    configure_logging(config.log.level, config.log.format)
    async with Database(config.database, Path(tempfile.gettempdir())) as db:
        yield Services(config, db, Metrics())
