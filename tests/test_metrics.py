"""The metrics exposition: valid Prometheus text, our prefix, base units, bounded labels."""

from __future__ import annotations

import shutil
import subprocess
import warnings
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.daemon_process import http_get, start_daemon
from verifier.metrics import LANES, OUTCOMES, Metrics

FORBIDDEN_LABELS = {"merchant", "slug", "host", "product", "product_id", "url", "path"}
FOREIGN_PREFIXES = ("process_", "python_")


def _exercised() -> Metrics:
    metrics = Metrics()
    for outcome in OUTCOMES:
        metrics.fetches.labels(outcome).inc()
        metrics.verifications.labels(outcome).inc()
    for lane in LANES:
        metrics.lane_depth.labels(lane).set(3)
    metrics.fetch_duration.observe(0.3)
    metrics.on_demand_latency.observe(1.2)
    metrics.http_requests.labels("api", "2xx").inc()
    metrics.ingest_events.labels("accepted").inc(5)
    return metrics


def check_exposition(text: str) -> None:
    """Parse with prometheus_client and lint with promtool (when installed)."""
    families = list(text_string_to_metric_families(text))
    assert families
    for family in families:
        assert family.name.startswith(("catalog_verifier_", *FOREIGN_PREFIXES)), family.name
        for sample in family.samples:
            assert not FORBIDDEN_LABELS & set(sample.labels), (family.name, sample.labels)
        if family.name.endswith(("_seconds", "_bytes")) or family.type == "histogram":
            assert not family.name.endswith(("_ms", "_milliseconds", "_kb")), family.name
    promtool = shutil.which("promtool")
    if promtool is None:
        warnings.warn(
            "promtool not installed: checked with prometheus_client's parser only", stacklevel=2
        )
        return
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text.encode(), capture_output=True, check=False
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert result.stdout.strip() == b"" and result.stderr.strip() == b"", result.stderr


def test_every_metric_passes_promtool_and_the_parser() -> None:
    """All metrics, with samples in every label set, form a lint-clean exposition."""
    check_exposition(_exercised().render().decode())


def test_metrics_have_build_info_and_process_metrics() -> None:
    """A build-info metric with the version and the standard process metrics are exported."""
    names = {f.name for f in text_string_to_metric_families(Metrics().render().decode())}
    assert "catalog_verifier_build" in names or "catalog_verifier_build_info" in names
    assert "process_resident_memory_bytes" in names


def test_each_daemon_has_its_own_registry() -> None:
    """Two Metrics objects do not share state (no module-level registry)."""
    first, second = Metrics(), Metrics()
    first.fetches.labels("verified").inc()
    assert second.fetches.labels("verified")._value.get() == 0


def test_live_daemon_metrics_endpoint_passes_promtool(tmp_path: Path, db_dsn: str) -> None:
    """GET /metrics on the running daemon serves a valid exposition."""
    daemon = start_daemon(tmp_path, dsn=db_dsn)
    try:
        daemon.wait_ready()
        http_get(daemon.url("api", "/healthz"))
        status, body = http_get(daemon.url("metrics", "/metrics"))
    finally:
        daemon.stop()
    assert status == 200
    text = body.decode()
    assert 'catalog_verifier_http_requests_total{code="2xx",listener="api"}' in text
    check_exposition(text)
