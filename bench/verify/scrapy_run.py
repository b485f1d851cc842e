"""Scenario (b): Scrapy fetching the same pages and extracting the same fields (no database).

``python -m bench.verify.scrapy_run --count N --hosts H --port P --result FILE``

Fields come from the cn_product_visited spans, else the JSON-LD Product, else the microdata
Product, all read with Scrapy's selectors (a full lxml tree per page, as Scrapy always builds).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from parsel import Selector
from scrapy import Request, Spider
from scrapy.crawler import CrawlerProcess
from scrapy.http import Response

from bench.verify.catalog import catalog, host_addresses
from bench.verify.procstats import CpuWindow, parse_watch, peak_rss_mb, write_result

_LIST_FIELDS = frozenset({"category", "tag", "related_external_product_id"})
_PRODUCT_TYPE = "https://schema.org/Product"


def _tag_fields(block: Selector) -> dict[str, Any]:
    item: dict[str, Any] = {}
    for span in block.css("span[class]"):
        name = span.attrib["class"].strip()
        text = (span.xpath("string()").get() or "").strip()
        if name in _LIST_FIELDS:
            item.setdefault(name, []).append(text)
        else:
            item.setdefault(name, text)
    return item


def _jsonld_fields(response: Response) -> dict[str, Any] | None:
    for text in response.xpath('//script[@type="application/ld+json"]/text()').getall():
        try:
            data = json.loads(text)
        except ValueError:
            continue
        if isinstance(data, dict) and data.get("@type") == "Product":
            offers = data.get("offers") or {}
            brand = data.get("brand") or {}
            return {
                "product_id": data.get("sku"),
                "name": data.get("name"),
                "unit_price": offers.get("price"),
                "availability": offers.get("availability"),
                "brand": brand.get("name") if isinstance(brand, dict) else brand,
                "url": offers.get("url"),
            }
    return None


def _microdata_fields(response: Response) -> dict[str, Any] | None:
    scope = response.xpath(f'//*[@itemscope][@itemtype="{_PRODUCT_TYPE}"]')
    if not scope:
        return None
    product = scope[0]
    return {
        "product_id": product.xpath('.//*[@itemprop="sku"]/@content').get(),
        "name": (product.xpath('.//*[@itemprop="name"]').xpath("string()").get() or "").strip(),
        "unit_price": product.xpath('.//*[@itemprop="price"]/@content').get(),
        "availability": product.xpath('.//*[@itemprop="availability"]/@href').get(),
        "url": product.xpath('.//*[@itemprop="url"]/@content').get(),
    }


class ProductSpider(Spider):
    """Visits every product URL once and yields its fields."""

    name = "bench-products"

    def __init__(self, urls: list[str], sources: Counter[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.urls = urls
        self.sources = sources

    async def start(self) -> AsyncIterator[Any]:
        """Every catalog URL, no link following."""
        for url in self.urls:
            yield Request(url, callback=self.parse, dont_filter=True)

    def parse(self, response: Response, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """One item per page."""
        block = response.css("div.cn_product_visited")
        item: dict[str, Any] | None
        if block:
            item, source = _tag_fields(block[0]), "tag"
        else:
            item, source = _jsonld_fields(response), "jsonld"
            if item is None:
                item, source = _microdata_fields(response), "microdata"
        if item is None or not item.get("product_id"):
            self.sources["none"] += 1
            return
        self.sources[source] += 1
        yield item


def main() -> None:
    """Crawl every page once and write the measurements to --result."""
    parser = argparse.ArgumentParser(prog="python -m bench.verify.scrapy_run")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--hosts", type=int, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--watch", action="append", default=[])
    args = parser.parse_args()
    urls = [p.url for p in catalog(args.count, host_addresses(args.hosts), args.port)]
    sources: Counter[str] = Counter()
    process = CrawlerProcess(
        # Tuned in Scrapy's favour: the same event loop as the verifier, nothing it would do
        # for no use here (robots.txt, cookies, telnet, per-item logging), and one item task
        # per response instead of the default 100 (each page yields one item).
        settings={
            "CONCURRENT_REQUESTS": args.concurrency,
            "CONCURRENT_REQUESTS_PER_DOMAIN": args.concurrency,
            "CONCURRENT_ITEMS": 1,
            "DOWNLOAD_DELAY": 0,
            "ROBOTSTXT_OBEY": False,
            "COOKIES_ENABLED": False,
            "TELNETCONSOLE_ENABLED": False,
            "LOG_LEVEL": "WARNING",
            "TWISTED_REACTOR": "twisted.internet.asyncioreactor.AsyncioSelectorReactor",
            "ASYNCIO_EVENT_LOOP": "uvloop.Loop",
        },
    )
    process.crawl(ProductSpider, urls=urls, sources=sources)
    window = CpuWindow(parse_watch(args.watch))
    window.start()
    started = time.perf_counter()
    process.start()
    elapsed_s = time.perf_counter() - started
    window.stop()
    extracted = sum(n for source, n in sources.items() if source != "none")
    write_result(
        args.result,
        {
            "pages": args.count,
            "extracted": extracted,
            "sources": dict(sources),
            "elapsed_s": elapsed_s,
            "pages_per_s": extracted / elapsed_s,
            "cpu_s": window.self_cpu_s,
            "cpu_ms_per_page": 1000 * window.self_cpu_s / max(extracted, 1),
            "peak_rss_mb": peak_rss_mb(),
            "others_cpu_s": window.others_cpu_s,
            "runqueue_wait_s": window.runqueue_wait_s,
        },
    )


if __name__ == "__main__":
    main()
