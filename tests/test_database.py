"""The pool's JSON codecs: json and jsonb values round-trip in the binary wire format."""

from __future__ import annotations

from typing import Any

import pytest

from verifier.database import Database

VALUES: list[Any] = [
    {"name": "Jumilla Reserva 2017 ñ ™ 😀", "unit_price": "63.82", "n": 3, "ok": True},
    {"nested": {"list": [1, 2.5, None, 'x"y\\z\n\t'], "empty": {}, "none": []}},
    ["a", "b"],
    "a top-level string",
    12,
    None,
]


@pytest.mark.parametrize("value", VALUES)
async def test_json_and_jsonb_values_round_trip(database: Database, value: Any) -> None:
    """A value sent as json or jsonb comes back equal, non-ASCII text and escapes included."""
    assert await database.pool.fetchval("SELECT $1::jsonb", value) == value
    assert await database.pool.fetchval("SELECT $1::json", value) == value


async def test_values_the_server_builds_are_read(database: Database) -> None:
    """jsonb made in SQL (from text, with non-ASCII text) decodes to the same Python values."""
    row = await database.pool.fetchrow(
        'SELECT \'{"b": "\u00e9", "a": [1, {"c": null}]}\'::jsonb AS b,'
        " jsonb_build_array('x', 2) AS arr, 'null'::jsonb AS null_value,"
        ' \'{"k": "v"}\'::json AS j'
    )
    assert row is not None
    assert row["b"] == {"a": [1, {"c": None}], "b": "\u00e9"}
    assert (row["arr"], row["null_value"], row["j"]) == (["x", 2], None, {"k": "v"})


async def test_jsonb_arrays_and_stored_columns_round_trip(database: Database) -> None:
    """A jsonb[] parameter and a jsonb column keep every element."""
    elements = [{"i": i, "text": "ñ" * i} for i in range(3)]
    assert await database.pool.fetchval("SELECT $1::jsonb[]", elements) == elements
    async with database.pool.acquire() as conn:
        await conn.execute("CREATE TEMP TABLE t (doc jsonb)")
        await conn.execute("INSERT INTO t SELECT unnest($1::jsonb[])", elements)
        assert [r["doc"] for r in await conn.fetch("SELECT doc FROM t ORDER BY doc->'i'")] == (
            elements
        )
