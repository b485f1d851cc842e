"""Bulk import: the streaming readers, and POST /v1/products/import on real PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.merchant_api import api_client, make_config, merchant_with_key, product
from verifier.database import Database
from verifier.importer import ImportFormat, ImportSyntaxError, read_rows, sniff_format

NDJSON = {"Content-Type": "application/x-ndjson"}
CSV = {"Content-Type": "text/csv; charset=utf-8"}
JSON = {"Content-Type": "application/json"}


async def _chunks(data: bytes, sizes: list[int]) -> AsyncIterator[bytes]:
    position = 0
    for size in sizes:
        if position >= len(data):
            break
        yield data[position : position + size]
        position += size
    if position < len(data):
        yield data[position:]


async def _read_all(fmt: ImportFormat, data: bytes, sizes: list[int]) -> list[Any]:
    """Every row (line, value, error) and a final fatal error, if any."""
    seen: list[Any] = []
    try:
        async for rows in read_rows(fmt, _chunks(data, sizes)):
            seen.extend((row.line, row.value, row.error) for row in rows)
    except ImportSyntaxError as exc:
        seen.append(("fatal", exc.line, exc.message))
    return seen


SAMPLES: list[tuple[ImportFormat, bytes]] = [
    ("json", b'\xef\xbb\xbf[{"product_id": "a", "x": ["]", "\\"}", {"y": 1}]}, {bad}, 12, null]'),
    ("json", b'[{"a": 1}, {"b": 2'),
    ("json", b"[1] trailing"),
    ("ndjson", b'{"a": 1}\n\n{bad}\r\n{"b": "\xc3\xa9"}\n{"c": 3}'),
    ("csv", b'product_id,name,tags\r\np1,"two\r\nlines",a|b\r\n\r\np2,x,"[""t""]"\np3,y,,z\n'),
    ("csv", b'product_id,name\np1,"open\np2,x\n'),
    ("csv", b'product_id,name\np1,5" screen\np2,7" screen\n'),
]


@pytest.mark.parametrize(("fmt", "data"), SAMPLES)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sizes=st.lists(st.integers(min_value=1, max_value=9), max_size=40))
async def test_readers_give_the_same_rows_however_the_body_is_chunked(
    fmt: ImportFormat, data: bytes, sizes: list[int]
) -> None:
    """Splitting a body at arbitrary byte boundaries never changes the rows or errors read."""
    assert await _read_all(fmt, data, sizes) == await _read_all(fmt, data, [len(data)])


async def test_readers_report_lines_and_stop_only_on_unreadable_damage() -> None:
    """Bad rows carry their line; fatal damage keeps the rows before it."""
    rows = await _read_all(*SAMPLES[0][:2], [7])
    assert [(line, error is None) for line, _, error in rows] == [
        (1, True),
        (2, False),
        (3, True),
        (4, True),
    ]
    assert rows[0][1]["x"] == ["]", '"}', {"y": 1}]
    assert (await _read_all(*SAMPLES[1][:2], [5]))[-1] == (
        "fatal",
        2,
        "the JSON array is not terminated",
    )
    ndjson = await _read_all(*SAMPLES[3][:2], [3])
    assert [(line, error is None) for line, _, error in ndjson] == [
        (1, True),
        (3, False),
        (4, True),
        (5, True),
    ]
    csv_rows = await _read_all(*SAMPLES[4][:2], [4])
    first = {"product_id": "p1", "name": "two\r\nlines", "tags": ["a", "b"]}
    assert csv_rows[0] == (2, first, None)
    assert csv_rows[1] == (5, {"product_id": "p2", "name": "x", "tags": ["t"]}, None)
    assert csv_rows[2][0] == 6 and csv_rows[2][2] is not None
    assert (await _read_all(*SAMPLES[5][:2], [100]))[-1][:2] == ("fatal", 2)
    assert (await _read_all(*SAMPLES[6][:2], [100]))[-1][:2] == ("fatal", 2)


def test_sniff_format_reads_the_first_byte() -> None:
    """An array is JSON, an object NDJSON, anything else CSV (a BOM and blanks are skipped)."""
    assert sniff_format(b"\xef\xbb\xbf  [{}]") == "json"
    assert sniff_format(b'\n{"a": 1}\n') == "ndjson"
    assert sniff_format(b"product_id,name\n") == "csv"


async def _import(client: Any, headers: dict[str, str], body: Any, kind: dict[str, str]) -> Any:
    response = await client.post("/v1/products/import", data=body, headers={**headers, **kind})
    assert response.status == 200, await response.text()
    return await response.json()


async def _snapshot(database: Database) -> list[tuple[Any, ...]]:
    rows = await database.pool.fetch(
        "SELECT product_id, data, status, updated_at, verified_at FROM products ORDER BY 1"
    )
    return [tuple(row) for row in rows]


async def test_json_array_import_keeps_good_rows_and_numbers_bad_ones(database: Database) -> None:
    """Element index + 1 is the line of a bad element; the good ones are stored."""
    _, headers = await merchant_with_key(database, "shop-a")
    body = orjson.dumps(
        [
            product("p1"),
            {"product_id": "p2", "name": "no url or price"},
            "not an object",
            product("p3", url="https://elsewhere.example/p3"),
            product("p4", unit_price="12,5x"),
            product("p5", availability="PreOrder"),
        ]
    )
    async with api_client(database) as client:
        report = await _import(client, headers, body, JSON)
        assert (report["created"], report["updated"], report["unchanged"]) == (2, 0, 0)
        assert [(e["line"], e["product_id"]) for e in report["errors"]] == [
            (2, "p2"),
            (3, None),
            (4, "p3"),
            (5, "p4"),
        ]
        assert "url" in report["errors"][0]["message"]
        p5 = await (await client.get("/v1/products/p5", headers=headers)).json()
        assert (p5["availability"], p5["availability_detail"]) == ("in_stock", "pre_order")


async def test_rows_with_unstorable_text_are_reported_not_crashed_on(database: Database) -> None:
    """A lone surrogate escape or a NUL in a product is a row error with a clean report."""
    _, headers = await merchant_with_key(database, "shop-a")
    body = (
        b'[{"product_id": "bad\\ud800", "url": "https://shop.example/1", "name": "x",'
        b' "unit_price": 1}, {"product_id": "nul", "url": "https://shop.example/2",'
        b' "name": "a\\u0000b", "unit_price": 1}]'
    )
    async with api_client(database) as client:
        report = await _import(client, headers, body, JSON)
        assert report["rejected"] == 2
        assert [(e["line"], e["product_id"]) for e in report["errors"]] == [(1, None), (2, "nul")]


async def test_ndjson_import_line_numbers_count_blank_lines(database: Database) -> None:
    """NDJSON errors name the physical line; blank lines are skipped but counted."""
    _, headers = await merchant_with_key(database, "shop-a")
    body = b"\n".join(
        [
            orjson.dumps(product("p1")),
            b"",
            b"{broken",
            orjson.dumps(product("p2", rating_value=7)),
            orjson.dumps(product("p3")),
        ]
    )
    async with api_client(database) as client:
        report = await _import(client, headers, body, NDJSON)
        assert report["created"] == 2 and report["rejected"] == 2
        assert [(e["line"], e["product_id"]) for e in report["errors"]] == [(3, None), (4, "p2")]


async def test_csv_import_reads_lists_multiline_cells_and_reports_lines(
    database: Database,
) -> None:
    """CSV header names the fields; list cells split on | or parse as JSON; lines are physical."""
    _, headers = await merchant_with_key(database, "shop-a")
    body = (
        b"product_id,url,name,unit_price,categories,tags,custom_fields\r\n"
        b'p1,https://shop.example/p1,"Two\r\nlines",9.99,/A/B|/C,"[""x"",""y""]",\r\n'
        b"p2,https://shop.example/p2,No price,,,,\r\n"
        b'p3,https://shop.example/p3,Custom,"1,50",,,"{""size"": ""XL""}"\r\n'
        b"p4,https://shop.example/p4,Bad custom,1,,,[1]\r\n"
    )
    async with api_client(database) as client:
        report = await _import(client, headers, body, CSV)
        assert report["created"] == 1
        assert [(e["line"], e["product_id"]) for e in report["errors"]] == [
            (4, "p2"),
            (5, "p3"),
            (6, "p4"),
        ]
        p1 = await (await client.get("/v1/products/p1", headers=headers)).json()
        assert p1["name"] == "Two lines" and p1["unit_price"] == "9.99"
        assert (p1["categories"], p1["tags"]) == (["/A/B", "/C"], ["x", "y"])


@pytest.mark.parametrize(
    ("body", "kind", "needle"),
    [
        (b'{"product_id": "p1"}', JSON, "JSON array"),
        (b"", JSON, "not terminated"),
        (b"product_id,colour\np1,red\n", CSV, "colour"),
        (b"\xff\xfe[]", JSON, "UTF-8"),
    ],
)
async def test_a_body_unreadable_from_the_start_is_400(
    database: Database, body: bytes, kind: dict[str, str], needle: str
) -> None:
    """No array, an empty JSON body, unknown CSV columns or non-UTF-8 refuse the whole request."""
    _, headers = await merchant_with_key(database, "shop-a")
    async with api_client(database) as client:
        response = await client.post("/v1/products/import", data=body, headers={**headers, **kind})
        assert response.status == 400
        assert needle in (await response.json())["error"]["message"]


async def test_damage_after_good_rows_keeps_them_and_reports_the_line(
    database: Database,
) -> None:
    """A JSON array broken after two products stores both and names the element that broke."""
    _, headers = await merchant_with_key(database, "shop-a")
    body = orjson.dumps([product("p1"), product("p2")])[:-1] + b' {"x": '
    async with api_client(database) as client:
        report = await _import(client, headers, body, JSON)
        assert report["created"] == 2
        assert report["errors"][-1]["line"] == 3
        assert "not read" in report["errors"][-1]["message"]


@pytest.mark.parametrize("fmt", ["json", "ndjson", "csv"])
async def test_reimporting_the_same_file_changes_nothing(database: Database, fmt: str) -> None:
    """A second import of the same data reports every product unchanged and writes no row."""
    _, headers = await merchant_with_key(database, "shop-a")
    products = [product(f"p{n}", tags=["t"], unit_price=n + 0.5) for n in range(30)]
    if fmt == "json":
        body, kind = orjson.dumps(products), JSON
    elif fmt == "ndjson":
        body, kind = b"\n".join(orjson.dumps(p) for p in products), NDJSON
    else:
        lines = ["product_id,url,name,unit_price,tags"]
        lines += [f"{p['product_id']},{p['url']},{p['name']},{p['unit_price']},t" for p in products]
        body, kind = "\n".join(lines).encode(), CSV
    async with api_client(database) as client:
        first = await _import(client, headers, body, kind)
        assert (first["created"], first["updated"], first["unchanged"]) == (30, 0, 0)
        before = await _snapshot(database)
        second = await _import(client, headers, body, kind)
        assert (second["created"], second["updated"], second["unchanged"]) == (0, 0, 30)
        assert await _snapshot(database) == before
        products[3]["name"] = "Renamed"
        changed = {
            "json": orjson.dumps(products),
            "ndjson": b"\n".join(orjson.dumps(p) for p in products),
            "csv": body.replace(b"Product p3,", b"Renamed,"),
        }[fmt]
        third = await _import(client, headers, changed, kind)
        assert (third["created"], third["updated"], third["unchanged"]) == (0, 1, 29)


async def test_the_same_product_twice_in_one_file_is_written_in_order(
    database: Database,
) -> None:
    """A repeated id is created then updated; the last row wins."""
    _, headers = await merchant_with_key(database, "shop-a")
    body = orjson.dumps([product("p1", name="First"), product("p1", name="Second")])
    async with api_client(database) as client:
        report = await _import(client, headers, body, JSON)
        assert (report["created"], report["updated"]) == (1, 1)
        p1 = await (await client.get("/v1/products/p1", headers=headers)).json()
        assert p1["name"] == "Second"


async def test_import_refuses_unknown_media_types_and_oversized_bodies(
    database: Database,
) -> None:
    """Other media types are 415; a Content-Length over max_import_bytes is 413 at once."""
    _, headers = await merchant_with_key(database, "shop-a")
    config = make_config(max_import_bytes=2048)
    async with api_client(database, config=config) as client:
        body = orjson.dumps([product("p1")])
        response = await client.post(
            "/v1/products/import", data=body, headers={**headers, "Content-Type": "text/xml"}
        )
        assert response.status == 415
        big = b"\n".join(orjson.dumps(product(f"p{n}")) for n in range(40))
        response = await client.post("/v1/products/import", data=big, headers={**headers, **NDJSON})
        assert response.status == 413
        assert (await response.json())["error"]["code"] == "payload_too_large"


async def test_chunked_body_over_the_limit_is_413_and_keeps_earlier_batches(
    database: Database,
) -> None:
    """Without Content-Length the limit is enforced while streaming; committed batches stay."""
    _, headers = await merchant_with_key(database, "shop-a")
    lines = [orjson.dumps(product(f"p{n:05d}")) + b"\n" for n in range(3000)]

    async def body() -> AsyncIterator[bytes]:
        for start in range(0, len(lines), 100):
            yield b"".join(lines[start : start + 100])

    limit = sum(len(line) for line in lines[:2500])
    async with api_client(database, config=make_config(max_import_bytes=limit)) as client:
        response = await client.post(
            "/v1/products/import", data=body(), headers={**headers, **NDJSON}
        )
        assert response.status == 413
        details = (await response.json())["error"]["details"][0]
        stored = await database.pool.fetchval("SELECT count(*) FROM products")
        assert details["created"] == stored == 2000


async def test_100k_ndjson_import_is_streamed_and_capped(database: Database) -> None:
    """100,000 products import from a chunked body processed while it is still being sent.

    The client pauses half-way until the server has committed rows: only a handler that
    streams can do that. Row 100,001 is over the limit and reported, not stored.
    """
    merchant, headers = await merchant_with_key(database, "shop-a")
    total = 100_001
    template = orjson.dumps(product("ID", description="d" * 40))
    lines = [template.replace(b"ID", b"%06d" % n) for n in range(total)]

    async def body() -> AsyncIterator[bytes]:
        for start in range(0, total, 2000):
            if start == 50_000:
                deadline = time.monotonic() + 30
                while not await database.pool.fetchval(
                    "SELECT count(*) FROM products WHERE merchant_id = $1", merchant.id
                ):
                    assert time.monotonic() < deadline, "nothing stored before the body ended"
                    await asyncio.sleep(0.05)
            yield b"\n".join(lines[start : start + 2000]) + b"\n"

    async with api_client(database) as client:
        response = await client.post(
            "/v1/products/import", data=body(), headers={**headers, **NDJSON}, timeout=None
        )
        assert response.status == 200
        report = await response.json()
    assert report["created"] == 100_000 and report["rejected"] == 0
    assert [e["line"] for e in report["errors"]] == [100_001]
    count = await database.pool.fetchval("SELECT count(*) FROM products")
    assert count == 100_000
