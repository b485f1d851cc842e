"""Config loading: defaults, the example file, environment overrides and errors naming keys."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from verifier.config import Config, load_config, parse_listen, render_toml
from verifier.exceptions import ConfigError

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.toml"


def _keys(data: dict[str, object], prefix: str = "") -> set[str]:
    keys = set()
    for key, value in data.items():
        if key == "merchants":  # per-merchant sections are shown commented out
            continue
        if isinstance(value, dict):
            keys |= _keys(value, f"{prefix}{key}.")
        else:
            keys.add(f"{prefix}{key}")
    return keys


def test_defaults_load_without_a_file() -> None:
    """No file and no environment gives the documented defaults."""
    config = load_config(None, environ={})
    assert config.database.dsn == ""
    assert str(config.ingest.address) == "127.0.0.1:8080"
    assert str(config.api.address) == "127.0.0.1:8081"
    assert str(config.metrics.address) == "127.0.0.1:9108"
    assert config.crawler.per_host_rate == 5.0
    assert config.sweep.every == "1d" and config.sweep.window == "4h"


def test_example_file_documents_every_key_with_its_default() -> None:
    """config.example.toml has every key, and its values are the defaults."""
    example = tomllib.loads(EXAMPLE.read_text())
    defaults = Config().model_dump(mode="json")
    defaults["crawler"]["user_agent"] = example["crawler"]["user_agent"]  # version-dependent
    assert _keys(example) == _keys(defaults)
    assert load_config(EXAMPLE, environ={}).model_dump(mode="json") == defaults
    section, previous, undocumented = "", "", []
    for line in EXAMPLE.read_text().splitlines():
        if line.startswith("["):
            section = line.strip("[]") + "."
        elif "=" in line and not line.startswith("#") and not previous.startswith("#"):
            undocumented.append(section + line.split("=")[0].strip())
        previous = line
    assert undocumented == []


def test_environment_overrides_nested_and_top_level_keys(tmp_path: Path) -> None:
    """CATALOG_VERIFIER_<SECTION>__<KEY> wins over the file, values coerced to the key's type."""
    path = tmp_path / "c.toml"
    path.write_text('[crawler]\nper_host_rate = 1.0\n[database]\ndsn = "postgresql://a/b"\n')
    env = {
        "CATALOG_VERIFIER_CRAWLER__PER_HOST_RATE": "7.5",
        "CATALOG_VERIFIER_CRAWLER__RESPECT_ROBOTS_TXT": "false",
        "CATALOG_VERIFIER_DATA_DIR": "/srv/cv",
        "CATALOG_VERIFIER_MERCHANTS__SHOP-A__SWEEP__START_TIME": "04:00",
    }
    config = load_config(path, environ=env)
    assert config.crawler.per_host_rate == 7.5
    assert config.crawler.respect_robots_txt is False
    assert config.data_dir == Path("/srv/cv")
    assert config.database.dsn == "postgresql://a/b"
    assert config.sweep_for("shop-a").start_time == "04:00"
    assert config.sweep_for("other").start_time == "02:00"


def test_environment_override_with_a_bad_value_names_the_key() -> None:
    """A bad value from the environment is an error that names the key."""
    with pytest.raises(ConfigError, match=r"crawler\.concurrency"):
        load_config(None, environ={"CATALOG_VERIFIER_CRAWLER__CONCURRENCY": "lots"})


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[crawler]\nper_host_rate = -1\n", "crawler.per_host_rate"),
        ("[crawler]\nconcurrency = 0\n", "crawler.concurrency"),
        ('[sweep]\nstart_time = "25:00"\n', "sweep.start_time"),
        ('[sweep]\nwindow = "4 hours"\n', "sweep.window"),
        ("[database]\npool_min_size = 20\npool_max_size = 5\n", "database"),
        ('[merchants."Bad Slug".sweep]\nenabled = false\n', "merchants"),
        ("[merchants.shop.sweep]\nstart = 1\n", "merchants.shop.sweep.start"),
        ('[log]\nlevel = "loud"\n', "log.level"),
    ],
)
def test_bad_values_raise_config_error_naming_the_key(tmp_path: Path, text: str, key: str) -> None:
    """Each invalid value is reported with its dotted key."""
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert key in str(info.value)


def test_merchant_overrides_apply_only_to_that_merchant(tmp_path: Path) -> None:
    """[merchants.SLUG.sweep] / .crawler override the defaults for one merchant."""
    path = tmp_path / "c.toml"
    path.write_text(
        '[merchants.shop-a.sweep]\nwindow = "0"\ntimezone = "Europe/Madrid"\n'
        "[merchants.shop-a.crawler]\nper_host_rate = 2.0\n"
    )
    config = load_config(path, environ={})
    assert config.sweep_for("shop-a").window == "0"
    assert config.sweep_for("shop-a").timezone == "Europe/Madrid"
    assert config.host_rate_for("shop-a") == (2.0, 4)
    assert config.host_rate_for("shop-b") == (5.0, 4)


def test_bad_merchant_override_timezone_is_rejected(tmp_path: Path) -> None:
    """A merchant override is validated at load time, naming the merchant and key."""
    path = tmp_path / "c.toml"
    path.write_text('[merchants.shop-a.sweep]\ntimezone = "Nowhere/Land"\n')
    with pytest.raises(ConfigError, match=r"merchants\.shop-a\.sweep: timezone"):
        load_config(path, environ={})


def test_rendered_toml_reads_back_as_the_same_config(tmp_path: Path) -> None:
    """check-config's TOML output is itself a valid config equal to the input."""
    path = tmp_path / "c.toml"
    path.write_text('[merchants.shop-a.sweep]\nwindow = "2h"\n[crawler]\nper_host_rate = 3.0\n')
    config = load_config(path, environ={})
    rendered = tmp_path / "rendered.toml"
    rendered.write_text(render_toml(config.model_dump(mode="json", exclude_none=True)))
    assert load_config(rendered, environ={}) == config


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [("127.0.0.1:8080", "127.0.0.1", 8080), ("[::1]:9", "::1", 9), ("localhost:0", "localhost", 0)],
)
def test_listen_addresses_parse(text: str, host: str, port: int) -> None:
    """host:port and [v6]:port forms are accepted."""
    address = parse_listen(text)
    assert (address.host, address.port) == (host, port)


@pytest.mark.parametrize("text", ["8080", "localhost", ":80", "host:port", "h:70000", "[::1]"])
def test_bad_listen_addresses_are_rejected(text: str) -> None:
    """Anything but host:port is a ValueError."""
    with pytest.raises(ValueError):
        parse_listen(text)
