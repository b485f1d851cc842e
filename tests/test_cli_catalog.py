"""``catalog-verifier merchant|key|import`` through verifier.cli.main against real PostgreSQL."""

from __future__ import annotations

import asyncio
import io
import json
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.merchant_api import product
from verifier.cli import main
from verifier.database import Database
from verifier.merchants import ApiKeyStore, MerchantStore


@pytest.fixture
def cli_env(db_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's config points at this test's database."""
    monkeypatch.delenv("CATALOG_VERIFIER_CONFIG", raising=False)
    monkeypatch.setenv("CATALOG_VERIFIER_DATABASE__DSN", db_dsn)
    monkeypatch.setenv("CATALOG_VERIFIER_DATA_DIR", str(tmp_path / "var"))


async def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the CLI in a thread (it starts its own event loop): (exit code, stdout, stderr)."""
    code = await asyncio.to_thread(main, list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _json(out: str) -> Any:
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    return json.loads(lines[0])


@pytest.mark.usefixtures("cli_env")
async def test_merchant_add_prints_the_merchant_and_its_ingest_token(
    capsys: pytest.CaptureFixture[str], database: Database
) -> None:
    """`merchant add --json` prints slug, name, hosts, currency, ingest_token and created_at."""
    code, out, _ = await run_cli(
        capsys, "merchant", "add", "shop-a", "--host", "Shop.Example", "--host", "cdn.example",
        "--name", "Shop A", "--currency", "usd", "--json",
    )  # fmt: skip
    assert code == 0
    data = _json(out)
    assert set(data) == {"slug", "name", "hosts", "currency", "ingest_token", "created_at"}
    assert (data["slug"], data["name"], data["currency"]) == ("shop-a", "Shop A", "USD")
    assert data["hosts"] == ["shop.example", "cdn.example"]
    stored = await MerchantStore(database).get("shop-a")
    assert stored.ingest_token == data["ingest_token"]


@pytest.mark.usefixtures("cli_env")
async def test_merchant_add_refuses_duplicates_and_bad_slugs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A taken slug exits 1, an invalid slug exits 2, each with a message on stderr."""
    assert (await run_cli(capsys, "merchant", "add", "shop-a", "--host", "a.example"))[0] == 0
    code, _, err = await run_cli(capsys, "merchant", "add", "shop-a", "--host", "a.example")
    assert code == 1 and "already exists" in err
    code, _, err = await run_cli(capsys, "merchant", "add", "Bad Slug", "--host", "a.example")
    assert code == 2 and "slug" in err


@pytest.mark.usefixtures("cli_env")
async def test_merchant_list_shows_every_merchant(capsys: pytest.CaptureFixture[str]) -> None:
    """`merchant list --json` lists the merchants by slug."""
    for slug in ("shop-b", "shop-a"):
        assert (await run_cli(capsys, "merchant", "add", slug, "--host", "x.example"))[0] == 0
    code, out, _ = await run_cli(capsys, "merchant", "list", "--json")
    assert code == 0
    assert [m["slug"] for m in _json(out)["merchants"]] == ["shop-a", "shop-b"]
    code, out, _ = await run_cli(capsys, "merchant", "list")
    assert code == 0 and "shop-a" in out and "shop-b" in out


@pytest.mark.usefixtures("cli_env")
async def test_key_create_list_and_revoke(
    capsys: pytest.CaptureFixture[str], database: Database
) -> None:
    """The key is printed once and works; `key list` never shows it; revoke stops it."""
    await run_cli(capsys, "merchant", "add", "shop-a", "--host", "a.example")
    code, out, _ = await run_cli(capsys, "key", "create", "shop-a", "--json")
    assert code == 0
    created = _json(out)
    assert set(created) == {"key_id", "key"}
    keys = ApiKeyStore(database)
    assert await keys.authenticate(created["key"]) is not None
    code, out, _ = await run_cli(capsys, "key", "list", "shop-a", "--json")
    listed = _json(out)["keys"]
    assert [k["key_id"] for k in listed] == [created["key_id"]]
    assert created["key"] not in out and listed[0]["revoked_at"] is None
    code, out, _ = await run_cli(capsys, "key", "revoke", created["key_id"], "--json")
    assert code == 0 and _json(out)["revoked_at"] is not None
    assert await keys.authenticate(created["key"]) is None
    code, _, err = await run_cli(capsys, "key", "revoke", "ffffffffffffffff")
    assert code == 1 and "no API key" in err


@pytest.mark.usefixtures("cli_env")
async def test_unknown_slug_exits_1_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    """Key and import commands for a merchant that does not exist fail with exit 1."""
    for argv in (("key", "create", "ghost"), ("key", "list", "ghost"), ("import", "ghost", "-")):
        code, out, err = await run_cli(capsys, *argv)
        assert code == 1 and "ghost" in err and out == ""


@pytest.mark.usefixtures("cli_env")
@pytest.mark.parametrize("suffix", [".ndjson", ".json", ".csv", ".txt"])
async def test_import_file_reports_counts_and_is_idempotent(
    capsys: pytest.CaptureFixture[str], database: Database, tmp_path: Path, suffix: str
) -> None:
    """`import SLUG FILE --json` prints created/updated/unchanged; a re-run is all unchanged."""
    await run_cli(capsys, "merchant", "add", "shop-a", "--host", "shop.example")
    products = [product(f"p{n}") for n in range(2500)]
    if suffix == ".csv":
        lines = ["product_id,url,name,unit_price"]
        lines += [f"{p['product_id']},{p['url']},{p['name']},{p['unit_price']}" for p in products]
        data = "\n".join(lines).encode()
    elif suffix == ".json":
        data = orjson.dumps(products)
    else:
        data = b"\n".join(orjson.dumps(p) for p in products)
    path = tmp_path / f"catalog{suffix}"
    path.write_bytes(data)
    code, out, _ = await run_cli(capsys, "import", "shop-a", str(path), "--json")
    assert code == 0
    summary = _json(out)
    assert (summary["created"], summary["updated"], summary["unchanged"]) == (2500, 0, 0)
    assert summary["errors"] == []
    code, out, _ = await run_cli(capsys, "import", "shop-a", str(path), "--json")
    assert (_json(out)["unchanged"], _json(out)["created"]) == (2500, 0)
    assert await database.pool.fetchval("SELECT count(*) FROM products") == 2500


@pytest.mark.usefixtures("cli_env")
async def test_import_from_stdin_with_bad_rows_exits_1_and_lists_them(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`import SLUG -` reads stdin (format sniffed); rejected rows are listed and exit 1."""
    await run_cli(capsys, "merchant", "add", "shop-a", "--host", "shop.example")
    body = orjson.dumps(product("p1")) + b"\n" + b'{"product_id": "p2"}\n'
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(body)))
    code, out, _ = await run_cli(capsys, "import", "shop-a", "-")
    assert code == 1
    assert "created: 1" in out and "line 2 (p2)" in out


@pytest.mark.usefixtures("cli_env")
async def test_import_of_a_missing_file_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    """A file that cannot be opened is an operation failure with a message."""
    await run_cli(capsys, "merchant", "add", "shop-a", "--host", "shop.example")
    code, _, err = await run_cli(capsys, "import", "shop-a", "/nonexistent/catalog.ndjson")
    assert code == 1 and "cannot read" in err


class _FakeTerminal(io.StringIO):
    """stderr that claims to be a terminal, to see the progress line."""

    def isatty(self) -> bool:
        return True


@pytest.mark.usefixtures("cli_env")
async def test_import_draws_a_progress_line_on_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """On a TTY, stderr shows bytes read against the file size and the products count."""
    await run_cli(capsys, "merchant", "add", "shop-a", "--host", "shop.example")
    path = tmp_path / "catalog.ndjson"
    path.write_bytes(b"\n".join(orjson.dumps(product(f"p{n}")) for n in range(1500)))
    terminal = _FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    code, _, _ = await run_cli(capsys, "import", "shop-a", str(path))
    assert code == 0
    last = terminal.getvalue().split("\r")[-1]
    assert "100%" in last and "1,500 products" in last and last.endswith("\n")
