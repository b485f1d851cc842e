"""CPU cost of the verifier's per-page steps, measured alone on the benchmark's pages.

``python -m bench.verify.unit_costs [--pages 2000] [--hosts 50]``

Each step runs over the same pages in this process and reports CPU microseconds per page
(``time.process_time``): the parser by page kind, a full lxml tree for comparison, the host
policy check with the merchant's host list, and the outcome decision.
"""

from __future__ import annotations

import argparse
import importlib
import json
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from yarl import URL

from bench.verify.catalog import BenchProduct, PageKind, catalog, host_addresses
from bench.verify.dbsetup import canonical_rows
from bench.verify.pages import render_page
from bench.verify.procstats import write_result
from verifier.engine import CHANGED_POLICY
from verifier.fetcher import FetchResult
from verifier.netguard import url_violation
from verifier.outcomes import ProductState, decide
from verifier.parser import ParseResult, parse_product_page

_html: Any = importlib.import_module("lxml.html")
_CONTENT_TYPE = "text/html; charset=utf-8"


def _cpu_us(step: Callable[[int], object], indexes: Sequence[int]) -> float:
    started = time.process_time()
    for i in indexes:
        step(i)
    return 1e6 * (time.process_time() - started) / max(len(indexes), 1)


def measure(count: int, host_count: int) -> dict[str, float]:
    """CPU microseconds per page of each step."""
    hosts = host_addresses(host_count)
    products: list[BenchProduct] = catalog(count, hosts, 8000)
    pages = [render_page(p) for p in products]
    rows = canonical_rows(products, hosts)
    everything = range(count)
    costs: dict[str, float] = {}

    def parse(i: int) -> ParseResult:
        return parse_product_page(pages[i], products[i].url, _CONTENT_TYPE)

    costs["parse, all pages"] = _cpu_us(parse, everything)
    for kind in PageKind:
        chosen = [i for i in everything if products[i].kind is kind]
        costs[f"parse, {kind.value} pages"] = _cpu_us(parse, chosen)
    costs["lxml.html full tree"] = _cpu_us(
        lambda i: _html.document_fromstring(pages[i]), everything
    )
    urls = [URL(p.url) for p in products]
    costs[f"url_violation, {host_count} allowed hosts"] = _cpu_us(
        lambda i: url_violation(urls[i], hosts, allow_private_networks=True), everything
    )
    costs["url_violation, 1 allowed host"] = _cpu_us(
        lambda i: url_violation(urls[i], [products[i].host], allow_private_networks=True),
        everything,
    )
    parsed = [parse(i) for i in everything]
    rng = random.Random(1)

    def decision(i: int) -> object:
        state = ProductState(
            product_id=products[i].product_id,
            url=products[i].url,
            status="unverified",
            availability=None,
            data=rows[i],
            pending=rows[i],
            content_sha256=None,
            not_found_count=0,
            attempts=0,
        )
        fetch = FetchResult(
            "ok", 200, products[i].url, pages[i], _CONTENT_TYPE, None, None, None, None, 0.0, 0
        )
        return decide(
            state, fetch, parsed[i], hosts=hosts, currency="EUR", policy=CHANGED_POLICY, rng=rng
        )

    costs["decide (new product)"] = _cpu_us(decision, everything)
    return costs


def main() -> None:
    """Print the costs as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.verify.unit_costs")
    parser.add_argument("--pages", type=int, default=2000)
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--result", type=Path, default=None, help="write JSON here, not stdout")
    args = parser.parse_args()
    costs = measure(args.pages, args.hosts)
    if args.result is None:
        print(json.dumps(costs, indent=2))
    else:
        write_result(args.result, costs)


if __name__ == "__main__":
    main()
