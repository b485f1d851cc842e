"""The TOML configuration: schema, loading, environment overrides and rendering.

Every key is documented in ``config.example.toml``. Any key can be overridden with an
environment variable ``CATALOG_VERIFIER_<SECTION>__<KEY>`` (``CATALOG_VERIFIER_DATA_DIR`` for
top-level keys). Unknown keys and bad values raise :class:`ConfigError` naming the key.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from verifier import __version__
from verifier.exceptions import ConfigError

ENV_PREFIX = "CATALOG_VERIFIER_"
CONFIG_ENV = "CATALOG_VERIFIER_CONFIG"
SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
_DURATION_RE = re.compile(r"^(?:0|[1-9][0-9]*[mhdw])$")
_EVERY_RE = re.compile(r"^[1-9][0-9]*[hdw]$")
_START_RE = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


@dataclass(frozen=True, slots=True)
class ListenAddress:
    """A parsed ``host:port`` listen address."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_listen(value: str) -> ListenAddress:
    """Parse ``host:port`` or ``[v6]:port``; raises ValueError."""
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:([0-9]{1,5})|([^:\[\]\s]+):([0-9]{1,5})", value)
    if match is None:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if port > 65535:
        raise ValueError(f"port {port} out of range 0..65535")
    return ListenAddress(host, port)


class _Listener(_Section):
    listen: str

    @field_validator("listen")
    @classmethod
    def _valid_listen(cls, value: str) -> str:
        parse_listen(value)
        return value

    @property
    def address(self) -> ListenAddress:
        return parse_listen(self.listen)


class DatabaseConfig(_Section):
    dsn: str = ""
    pool_min_size: int = Field(default=2, ge=1, le=100)
    pool_max_size: int = Field(default=10, ge=1, le=200)
    connect_timeout_s: float = Field(default=10.0, gt=0, le=300)

    @model_validator(mode="after")
    def _pool_sizes(self) -> Self:
        if self.pool_min_size > self.pool_max_size:
            raise ValueError("pool_min_size must not exceed pool_max_size")
        return self


class IngestConfig(_Listener):
    listen: str = "127.0.0.1:8080"
    max_body_bytes: int = Field(default=2_000_000, ge=1024, le=100_000_000)


class ApiConfig(_Listener):
    listen: str = "127.0.0.1:8081"
    max_body_bytes: int = Field(default=2_000_000, ge=1024, le=100_000_000)
    max_import_bytes: int = Field(default=200_000_000, ge=1024, le=10_000_000_000)


class MetricsConfig(_Listener):
    listen: str = "127.0.0.1:9108"


class CrawlerConfig(_Section):
    concurrency: int = Field(default=256, ge=1, le=10_000)
    per_host_rate: float = Field(default=5.0, gt=0, le=10_000)
    per_host_concurrency: int = Field(default=4, ge=1, le=1_000)
    timeout_s: float = Field(default=20.0, gt=0, le=600)
    max_body_bytes: int = Field(default=5_000_000, ge=1024, le=1_000_000_000)
    user_agent: str = Field(default=f"catalog-verifier/{__version__}", min_length=1)
    allow_private_networks: bool = False
    respect_robots_txt: bool = True


class SweepConfig(_Section):
    enabled: bool = True
    every: str = "1d"
    start_time: str = "02:00"
    window: str = "4h"
    timezone: str = "UTC"

    @field_validator("every")
    @classmethod
    def _valid_every(cls, value: str) -> str:
        if not _EVERY_RE.match(value):
            raise ValueError("expected Nh, Nd or Nw (e.g. 1d, 12h, 1w)")
        return value

    @field_validator("start_time")
    @classmethod
    def _valid_start(cls, value: str) -> str:
        if not _START_RE.match(value):
            raise ValueError("expected HH:MM (00:00..23:59)")
        return value

    @field_validator("window")
    @classmethod
    def _valid_window(cls, value: str) -> str:
        if not _DURATION_RE.match(value):
            raise ValueError('expected "0" (until done) or Nm, Nh, Nd, Nw')
        return value

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value


class SweepOverride(_Section):
    enabled: bool | None = None
    every: str | None = None
    start_time: str | None = None
    window: str | None = None
    timezone: str | None = None


class CrawlerOverride(_Section):
    per_host_rate: float | None = Field(default=None, gt=0, le=10_000)
    per_host_concurrency: int | None = Field(default=None, ge=1, le=1_000)


class MerchantConfig(_Section):
    sweep: SweepOverride = SweepOverride()
    crawler: CrawlerOverride = CrawlerOverride()


class LogConfig(_Section):
    level: str = "info"
    format: str = "auto"

    @field_validator("level")
    @classmethod
    def _valid_level(cls, value: str) -> str:
        if value.lower() not in {"debug", "info", "warning", "error"}:
            raise ValueError("expected debug, info, warning or error")
        return value.lower()

    @field_validator("format")
    @classmethod
    def _valid_format(cls, value: str) -> str:
        if value not in {"auto", "json", "console"}:
            raise ValueError("expected auto, json or console")
        return value


class DaemonConfig(_Section):
    shutdown_grace_s: float = Field(default=30.0, ge=0, le=3600)
    watchdog: bool = True
    work_lease_s: float = Field(default=60.0, ge=1, le=3600)
    poll_interval_s: float = Field(default=1.0, gt=0, le=60)


class Config(_Section):
    """The whole effective configuration."""

    data_dir: Path = Path("var")
    database: DatabaseConfig = DatabaseConfig()
    ingest: IngestConfig = IngestConfig()
    api: ApiConfig = ApiConfig()
    metrics: MetricsConfig = MetricsConfig()
    crawler: CrawlerConfig = CrawlerConfig()
    sweep: SweepConfig = SweepConfig()
    merchants: dict[str, MerchantConfig] = {}
    log: LogConfig = LogConfig()
    daemon: DaemonConfig = DaemonConfig()

    @field_validator("merchants")
    @classmethod
    def _valid_slugs(cls, value: dict[str, MerchantConfig]) -> dict[str, MerchantConfig]:
        for slug in value:
            if not SLUG_RE.match(slug):
                raise ValueError(f"merchant slug {slug!r} must match {SLUG_RE.pattern}")
        return value

    @model_validator(mode="after")
    def _valid_merchant_schedules(self) -> Self:
        for slug in self.merchants:
            try:
                self.sweep_for(slug)
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
                )
                raise ValueError(f"merchants.{slug}.sweep: {problems}") from None
        return self

    def sweep_for(self, slug: str) -> SweepConfig:
        """The sweep schedule of one merchant: [sweep] with its file overrides applied."""
        merchant = self.merchants.get(slug)
        if merchant is None:
            return self.sweep
        changes = merchant.sweep.model_dump(exclude_none=True)
        return SweepConfig.model_validate({**self.sweep.model_dump(), **changes})

    def host_rate_for(self, slug: str) -> tuple[float, int]:
        """(per_host_rate, per_host_concurrency) for one merchant's hosts."""
        merchant = self.merchants.get(slug)
        rate, concurrency = self.crawler.per_host_rate, self.crawler.per_host_concurrency
        if merchant is not None:
            rate = merchant.crawler.per_host_rate or rate
            concurrency = merchant.crawler.per_host_concurrency or concurrency
        return rate, concurrency


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV:
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        if not all(path):
            raise ConfigError(f"{name}: empty key in environment override")
        node = tree
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{name}: conflicts with another override")
            node = child
        node[path[-1]] = value
    return tree


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _format_error(exc: ValidationError, origin: str) -> str:
    lines = [f"invalid configuration ({origin}):"]
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "(top level)"
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif "input" in error and not isinstance(error["input"], dict):
            message = f"{message} (got {error['input']!r})"
        lines.append(f"  {key}: {message}")
    return "\n".join(lines)


def load_config(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Load the config from ``path`` (else ``$CATALOG_VERIFIER_CONFIG``, else defaults) plus env."""
    environ = os.environ if environ is None else environ
    if path is None:
        path = environ.get(CONFIG_ENV) or None
    raw: dict[str, Any] = {}
    origin = "built-in defaults"
    if path is not None:
        origin = str(path)
        try:
            with open(path, "rb") as fh:
                raw = tomllib.load(fh)
        except FileNotFoundError as exc:
            raise ConfigError(f"config file {path} does not exist") from exc
        except OSError as exc:
            raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    overrides = _env_overrides(environ)
    if overrides:
        origin += " + environment"
    try:
        return Config.model_validate(_merge(raw, overrides))
    except ValidationError as exc:
        raise ConfigError(_format_error(exc, origin)) from exc


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def render_toml(data: Mapping[str, Any], prefix: str = "") -> str:
    """Render a config mapping as TOML (scalars first, then sub-tables)."""
    lines: list[str] = []
    tables: list[tuple[str, Mapping[str, Any]]] = []
    for key, value in data.items():
        if isinstance(value, Mapping):
            tables.append((f"{prefix}{key}", value))
        elif value is not None:
            lines.append(f"{key} = {_toml_value(value)}")
    out = "\n".join(lines)
    for name, table in tables:
        body = render_toml(table, f"{name}.")
        out += f"\n\n[{name}]\n{body}" if body.strip() else ""
    return out.strip("\n")


def config_as_dict(config: Config) -> dict[str, Any]:
    """The effective config as plain JSON-able data."""
    return config.model_dump(mode="json", exclude_none=True)
