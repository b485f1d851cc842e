"""Prometheus metrics: one registry per daemon, every metric defined here.

Names use the ``catalog_verifier_`` prefix and base units. No label carries a merchant, host,
product or URL: cardinality stays bounded whatever the catalog size.
"""

from __future__ import annotations

import platform

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from verifier import __version__
from verifier.fetcher import FETCH_OUTCOMES
from verifier.outcomes import OUTCOMES

NS = "catalog_verifier"
LANES = ("on_demand", "changed", "sweep")
_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """All of the daemon's metrics, registered on one registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self.build_info = Info(
            "catalog_verifier_build", "Version of the running daemon.", registry=r
        )
        self.build_info.info({"version": __version__, "python": platform.python_version()})
        self.ready = Gauge(
            f"{NS}_ready", "1 when the database is reachable and migrated.", registry=r
        )
        # HTTP edge
        self.http_requests = Counter(
            f"{NS}_http_requests",
            "HTTP requests served, by listener and status class.",
            ["listener", "code"],
            registry=r,
        )
        self.ingest_events = Counter(
            f"{NS}_ingest_events",
            "Tag events received on the ingest listener, by result (accepted, rejected).",
            ["result"],
            registry=r,
        )
        self.ingest_batch_rows = Histogram(
            f"{NS}_ingest_commit_rows",
            "Products written per group commit of the ingest path.",
            buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000),
            registry=r,
        )
        self.imported_products = Counter(
            f"{NS}_imported_products",
            "Products received through imports and API upserts, by result.",
            ["result"],
            registry=r,
        )
        # Fetching and verification
        self.fetches = Counter(
            f"{NS}_fetches", "Page fetches, by outcome.", ["outcome"], registry=r
        )
        self.fetch_duration = Histogram(
            f"{NS}_fetch_duration_seconds",
            "Time from request start to full body, per fetch.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.fetched_bytes = Counter(
            f"{NS}_fetched_bytes", "Decompressed body bytes fetched.", registry=r
        )
        self.verifications = Counter(
            f"{NS}_verifications", "Finished verifications, by outcome.", ["outcome"], registry=r
        )
        self.lane_depth = Gauge(
            f"{NS}_lane_queue_depth", "Jobs queued in memory, by lane.", ["lane"], registry=r
        )
        self.lane_due = Gauge(
            f"{NS}_lane_due_products",
            "Products waiting in the database for a lane (on_demand, changed).",
            ["lane"],
            registry=r,
        )
        self.in_flight = Gauge(f"{NS}_fetches_in_flight", "Fetches in flight.", registry=r)
        self.hosts_backing_off = Gauge(
            f"{NS}_hosts_backing_off", "Hosts paused by rate limiting or errors.", registry=r
        )
        self.on_demand_latency = Histogram(
            f"{NS}_on_demand_latency_seconds",
            "Time from a verify-now request to its result.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        # Sweeps
        self.sweeps_running = Gauge(f"{NS}_sweeps_running", "Sweeps running now.", registry=r)
        self.sweep_products = Gauge(
            f"{NS}_sweep_products", "Products in the catalogs of running sweeps.", registry=r
        )
        self.sweep_products_checked = Gauge(
            f"{NS}_sweep_products_checked",
            "Products already checked by the running sweeps.",
            registry=r,
        )
        self.sweep_checked = Counter(
            f"{NS}_sweep_checked_products", "Products checked by sweeps.", registry=r
        )
        self.sweep_last_success = Gauge(
            f"{NS}_sweep_last_success_timestamp_seconds",
            "Unix time at which a sweep last finished.",
            registry=r,
        )
        self.sweeps_halted = Counter(
            f"{NS}_sweeps_halted", "Sweeps halted by the circuit breaker.", registry=r
        )
        for lane in LANES:
            self.lane_depth.labels(lane)
        # Children per outcome, exported from the start and counted on every page without a
        # labels() lookup (about 1 us each).
        self.fetches_by_outcome = {o: self.fetches.labels(o) for o in FETCH_OUTCOMES}
        self.verifications_by_outcome = {o: self.verifications.labels(o) for o in OUTCOMES}

    def render(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)
