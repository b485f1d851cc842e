"""CPU time per product of the ingest path's pure-Python steps, on the benchmark's products.

``.venv/bin/python -m bench.ingest.validate [--products 10000] [--repeats 7]``

The products are what ``post.lua`` sends (90% repeating the catalog's data, 10% with a new
price), in JSON arrays of 100 as the listener receives them. Each step is timed on freshly
decoded objects (decoding, then the step, minus decoding alone), as the listener runs it. The
best of ``--repeats`` passes is reported in CPU microseconds per product (``time.process_time``:
steadier than wall time on a shared machine). No server and no database are involved.

- ``validate_product``: what the listener calls (the fast path, else the general path);
- ``validate_product_generally``: the general path alone, as every product took it before the
  fast path existed;
- ``encode``: the writer's encoding of the canonical products (JSON lines).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson

from bench.ingest.__main__ import CATALOG_SIZE, CHANGE_RATE, HOSTS, catalog_product
from verifier.product_schema import validate_product, validate_product_generally

BATCH = 100
Validator = Callable[..., tuple[dict[str, Any] | None, object]]


def tag_product(rng: random.Random) -> dict[str, Any]:
    """One event as post.lua builds it: a catalog product, sometimes with a new price."""
    n = rng.randint(1, CATALOG_SIZE)
    body = catalog_product(n)
    if rng.random() < CHANGE_RATE:
        cents = rng.randint(100, 99999)
        body["unit_price"] = f"{cents // 100}.{cents % 100:02d}"
    return body


def _best_s(step: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        step()
        best = min(best, time.process_time() - start)
    return best


def main() -> int:
    """Print the CPU µs per product of decoding, validating and encoding the events."""
    parser = argparse.ArgumentParser(prog="python -m bench.ingest.validate", description=__doc__)
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(1)
    batches = max(1, args.products // BATCH)
    bodies = [orjson.dumps([tag_product(rng) for _ in range(BATCH)]) for _ in range(batches)]
    count = batches * BATCH
    hosts = list(HOSTS)

    def decode() -> None:
        for body in bodies:
            orjson.loads(body)

    def validated(validator: Validator) -> Callable[[], None]:
        def step() -> None:
            for body in bodies:
                for item in orjson.loads(body):
                    validator(item, allowed_hosts=hosts, default_currency="EUR")

        return step

    def encode() -> None:
        for body in bodies:
            rows = [
                validate_product(item, allowed_hosts=hosts, default_currency="EUR")[0]
                for item in orjson.loads(body)
            ]
            b"\n".join([orjson.dumps(row) for row in rows]).decode()

    decode_s = _best_s(decode, args.repeats)
    fast_s = _best_s(validated(validate_product), args.repeats)
    general_s = _best_s(validated(validate_product_generally), args.repeats)
    encode_s = _best_s(encode, args.repeats) - fast_s
    print(f"{count:,} products in arrays of {BATCH}, best of {args.repeats}, CPU µs per product")
    for name, seconds in (
        ("orjson.loads", decode_s),
        ("validate_product", fast_s - decode_s),
        ("validate_product_generally", general_s - decode_s),
        ("encode (JSON lines)", encode_s),
    ):
        print(f"  {name:28} {seconds / count * 1e6:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
