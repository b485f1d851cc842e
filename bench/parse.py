"""Micro-benchmark: parse_product_page against a bare full lxml parse of the same pages.

Run: .venv/bin/python bench/parse.py [--rounds N]
Prints, per page, the median microseconds of: parse_product_page (fast path first, falls back
to the full parse), parse_product_page_full (full lxml tree + all extractors) and a bare
lxml.html.document_fromstring, plus which route parse_product_page took.
Each figure is the median CPU time (not wall time) of consecutive calls, best of five batches,
so that other processes on a shared machine disturb it less.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from verifier.parser import (  # noqa: E402
    parse_fast_path,
    parse_product_page,
    parse_product_page_full,
)

# lxml ships no type information; imported this way mypy needs no stubs.
LXML_HTML: Any = importlib.import_module("lxml.html")
CORPUS = ROOT.parent / "shared" / "corpus" / "pages"
FIXTURES = ROOT / "tests" / "pages"
PAGE_URL = "https://shop.example/product"


def _pages() -> list[Path]:
    pages = sorted(FIXTURES.glob("*.html"))
    for corpus in (CORPUS, Path("/work/shared/corpus/pages")):
        if corpus.is_dir():
            return pages + sorted(corpus.glob("*.html"))
    return pages


def _median_us(function: Callable[[], object], rounds: int) -> float:
    """Median CPU microseconds of `rounds` consecutive calls, best of five batches."""
    best = float("inf")
    for _ in range(5):
        samples = []
        for _ in range(rounds):
            start = time.process_time_ns()
            function()
            samples.append((time.process_time_ns() - start) / 1000)
        best = min(best, statistics.median(samples))
    return best


def _measure(body: bytes, rounds: int) -> tuple[float, float, float]:
    return (
        _median_us(lambda: parse_product_page(body, PAGE_URL), rounds),
        _median_us(lambda: parse_product_page_full(body, PAGE_URL), rounds),
        _median_us(lambda: LXML_HTML.document_fromstring(body), rounds),
    )


def main() -> None:
    """Print the benchmark table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=0, help="rounds per page (default: auto)")
    args = parser.parse_args()
    header = f"{'page':<58} {'KB':>6} {'route':>5} {'parse':>8} {'full':>8} {'lxml':>8} {'x':>5}"
    print(header)
    print("-" * len(header))
    totals = [0.0, 0.0, 0.0]
    for path in _pages():
        body = path.read_bytes()
        rounds = args.rounds or max(9, min(200, 2_000_000 // max(len(body), 1)))
        route = "fast" if parse_fast_path(body, PAGE_URL) is not None else "full"
        fast, full, bare = _measure(body, rounds)
        totals = [totals[0] + fast, totals[1] + full, totals[2] + bare]
        print(
            f"{path.name[:58]:<58} {len(body) / 1024:>6.1f} {route:>5} "
            f"{fast:>8.0f} {full:>8.0f} {bare:>8.0f} {bare / fast:>5.1f}"
        )
    print("-" * len(header))
    print(f"{'sum of medians (us)':<71} {totals[0]:>8.0f} {totals[1]:>8.0f} {totals[2]:>8.0f}")
    print("parse: parse_product_page; full: parse_product_page_full; lxml: bare")
    print("lxml.html.document_fromstring; x: lxml / parse. Microseconds of CPU time, medians.")


if __name__ == "__main__":
    main()
