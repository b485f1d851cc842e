"""The systemd unit: notify, watchdog, reload, hardening, and a clean systemd-analyze verify."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

UNIT = Path(__file__).resolve().parent.parent / "deploy" / "catalog-verifier.service"


def _unit() -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNIT)
    return parser


def test_unit_declares_notify_watchdog_reload_and_hardening() -> None:
    """Type=notify, WatchdogSec, ExecReload with SIGHUP and the sandboxing options are set."""
    service = _unit()["Service"]
    assert service["Type"] == "notify"
    assert service["WatchdogSec"]
    assert "-HUP" in service["ExecReload"]
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "DynamicUser": "yes",
        "StateDirectory": "catalog-verifier",
        "PrivateTmp": "yes",
    }.items():
        assert service[key] == value, key
    # the stop timeout leaves room for the daemon's own drain grace period (30 s default)
    assert int(service["TimeoutStopSec"].rstrip("s")) > 30


def test_systemd_analyze_verify_reports_nothing(tmp_path: Path) -> None:
    """systemd-analyze verify passes with no warning (the binary path pointed at this checkout)."""
    analyze = shutil.which("systemd-analyze")
    assert analyze is not None, "systemd-analyze is part of this machine kind's base image"
    executable = Path(sys.executable).parent / "catalog-verifier"
    unit = tmp_path / "catalog-verifier.service"
    unit.write_text(UNIT.read_text().replace("/usr/bin/catalog-verifier", str(executable)))
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "" and result.stdout.strip() == ""
