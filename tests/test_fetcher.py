"""The page fetcher against real local shops: outcomes, redirects, limits and address policy."""

from __future__ import annotations

import asyncio
import gzip
import socket
import tracemalloc
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from yarl import URL

from tests.shop_server import Page, RunningShop, ShopState, running_shop
from verifier.fetcher import Fetcher, FetchOptions, FetchResult, parse_retry_after
from verifier.netguard import url_violation

UA = "catalog-verifier/0.1.0 (+https://verifier.example/bot)"
PRODUCT_HTML = b"<html><head><title>Product 1</title></head><body>in stock</body></html>"


def _options(**overrides: object) -> FetchOptions:
    base: dict[str, object] = {
        "user_agent": UA,
        "timeout_s": 5.0,
        "connect_timeout_s": 2.0,
        "max_body_bytes": 1_000_000,
        "allow_private_networks": True,
        "respect_robots_txt": False,
    }
    base.update(overrides)
    return FetchOptions(**base)  # type: ignore[arg-type]


@pytest.fixture
async def shop() -> AsyncIterator[RunningShop]:
    """A fresh shop on 127.0.0.1 with one product page."""
    state = ShopState(pages={"/p/1": Page(PRODUCT_HTML)})
    async with running_shop(state) as running:
        yield running


@pytest.fixture
async def fetcher() -> AsyncIterator[Fetcher]:
    """A fetcher allowed on loopback, robots.txt off (robots has its own tests)."""
    async with Fetcher(_options()) as f:
        yield f


# --- outcomes ---------------------------------------------------------------------------------


async def test_ok_page_returns_body_and_validators(shop: RunningShop, fetcher: Fetcher) -> None:
    """A 200 page is "ok" with its body, content type, ETag and Last-Modified."""
    shop.state.pages["/p/2"] = Page(
        PRODUCT_HTML, etag='"v1"', last_modified="Wed, 21 Oct 2015 07:28:00 GMT"
    )
    result = await fetcher.fetch(shop.url("/p/2"), [shop.host])
    assert result.outcome == "ok"
    assert result.http_status == 200
    assert result.body == PRODUCT_HTML
    assert result.bytes_read == len(PRODUCT_HTML)
    assert result.content_type == "text/html; charset=utf-8"
    assert result.etag == '"v1"'
    assert result.last_modified == "Wed, 21 Oct 2015 07:28:00 GMT"
    assert result.url == shop.url("/p/2")
    assert result.error is None


async def test_request_carries_user_agent_and_accept_headers(
    shop: RunningShop, fetcher: Fetcher
) -> None:
    """The configured User-Agent, an HTML Accept and gzip/deflate Accept-Encoding are sent."""
    await fetcher.fetch(shop.url("/p/1"), [shop.host])
    headers = shop.state.last("/p/1").headers
    assert headers["User-Agent"] == UA
    assert "text/html" in headers["Accept"]
    codings = {c.strip() for c in headers["Accept-Encoding"].split(",")}
    assert {"gzip", "deflate"} <= codings


async def test_gzip_encoded_page_is_decompressed(shop: RunningShop, fetcher: Fetcher) -> None:
    """A gzip Content-Encoding is decoded and bytes_read counts the decoded size."""
    shop.state.pages["/gz"] = Page(
        gzip.compress(PRODUCT_HTML), headers={"Content-Encoding": "gzip"}
    )
    result = await fetcher.fetch(shop.url("/gz"), [shop.host])
    assert result.outcome == "ok"
    assert result.body == PRODUCT_HTML
    assert result.bytes_read == len(PRODUCT_HTML)


async def test_etag_is_sent_and_304_is_not_modified(shop: RunningShop, fetcher: Fetcher) -> None:
    """With an ETag the request has If-None-Match, and the shop's 304 becomes not_modified."""
    shop.state.pages["/p/2"] = Page(PRODUCT_HTML, etag='"abc"')
    result = await fetcher.fetch(shop.url("/p/2"), [shop.host], etag='"abc"')
    assert shop.state.last("/p/2").headers["If-None-Match"] == '"abc"'
    assert result.outcome == "not_modified"
    assert result.http_status == 304
    assert result.body is None
    assert result.etag == '"abc"'


async def test_last_modified_is_sent_as_if_modified_since(
    shop: RunningShop, fetcher: Fetcher
) -> None:
    """With a Last-Modified value the request has If-Modified-Since and a 304 is not_modified."""
    stamp = "Wed, 21 Oct 2015 07:28:00 GMT"
    shop.state.pages["/p/2"] = Page(PRODUCT_HTML, last_modified=stamp)
    result = await fetcher.fetch(shop.url("/p/2"), [shop.host], last_modified=stamp)
    assert shop.state.last("/p/2").headers["If-Modified-Since"] == stamp
    assert result.outcome == "not_modified"
    assert result.last_modified == stamp


async def test_stale_etag_gets_the_full_page(shop: RunningShop, fetcher: Fetcher) -> None:
    """A changed page answers 200 to an old ETag, with the new ETag."""
    shop.state.pages["/p/2"] = Page(PRODUCT_HTML, etag='"new"')
    result = await fetcher.fetch(shop.url("/p/2"), [shop.host], etag='"old"')
    assert result.outcome == "ok"
    assert result.etag == '"new"'


@pytest.mark.parametrize("code", [404, 410])
async def test_gone_pages_are_not_found(shop: RunningShop, fetcher: Fetcher, code: int) -> None:
    """404 and 410 are not_found."""
    result = await fetcher.fetch(shop.url(f"/status/{code}"), [shop.host])
    assert result.outcome == "not_found"
    assert result.http_status == code
    assert result.body is None


@pytest.mark.parametrize("code", [429, 503])
async def test_throttling_statuses_are_rate_limited_with_retry_after(
    shop: RunningShop, fetcher: Fetcher, code: int
) -> None:
    """429 and 503 are rate_limited and carry the Retry-After delay in seconds."""
    result = await fetcher.fetch(shop.url(f"/status/{code}?retry_after=120"), [shop.host])
    assert result.outcome == "rate_limited"
    assert result.http_status == code
    assert result.retry_after_s == 120.0
    assert result.error == f"HTTP {code}"


async def test_retry_after_as_http_date_is_converted_to_seconds(
    shop: RunningShop, fetcher: Fetcher
) -> None:
    """A Retry-After HTTP-date an hour ahead gives roughly 3600 seconds."""
    when = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    result = await fetcher.fetch(shop.url(f"/status/429?retry_after={when}"), [shop.host])
    assert result.outcome == "rate_limited"
    assert result.retry_after_s is not None
    assert 3500 < result.retry_after_s <= 3600


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("0", 0.0),
        ("30", 30.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("-5", None),
        ("soon", None),
        ("", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past: retry now
        ("Wed, 21 Oct 2015 07:30:00 GMT", 120.0),
    ],
)
def test_parse_retry_after_reads_seconds_and_dates(
    value: str | None, expected: float | None
) -> None:
    """Retry-After is delta-seconds or an HTTP-date relative to now; junk is None."""
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)
    assert parse_retry_after(value, now) == expected


@pytest.mark.parametrize("code", [400, 401, 403, 451, 500, 502, 504])
async def test_other_error_statuses_are_fetch_errors(
    shop: RunningShop, fetcher: Fetcher, code: int
) -> None:
    """Other 4xx/5xx answers are fetch_error naming the status."""
    result = await fetcher.fetch(shop.url(f"/status/{code}"), [shop.host])
    assert result.outcome == "fetch_error"
    assert result.http_status == code
    assert result.error == f"HTTP {code}"


# --- redirects --------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
async def test_redirect_chain_is_followed(shop: RunningShop, fetcher: Fetcher, code: int) -> None:
    """Each redirect status is followed hop by hop and the final URL is reported."""
    result = await fetcher.fetch(shop.url(f"/redirect/3?code={code}"), [shop.host])
    assert result.outcome == "ok"
    assert result.url == shop.url(f"/redirect/0?code={code}")
    assert shop.state.count("/redirect/0") == 1


async def test_relative_location_is_resolved_against_the_current_url(
    shop: RunningShop, fetcher: Fetcher
) -> None:
    """A relative Location ("../p/1") is joined to the URL that answered with it."""
    result = await fetcher.fetch(shop.url("/redirect-to?url=../p/1"), [shop.host])
    assert result.outcome == "ok"
    assert result.body == PRODUCT_HTML
    assert result.url == shop.url("/p/1")


async def test_max_redirects_hops_are_allowed(shop: RunningShop) -> None:
    """Exactly max_redirects hops still reach the page."""
    async with Fetcher(_options(max_redirects=3)) as fetcher:
        result = await fetcher.fetch(shop.url("/redirect/3"), [shop.host])
    assert result.outcome == "ok"


async def test_one_hop_too_many_is_a_fetch_error(shop: RunningShop) -> None:
    """max_redirects + 1 hops fail as fetch_error without requesting the last target."""
    async with Fetcher(_options(max_redirects=3)) as fetcher:
        result = await fetcher.fetch(shop.url("/redirect/4"), [shop.host])
    assert result.outcome == "fetch_error"
    assert result.error is not None and "too many redirects" in result.error
    assert shop.state.count("/redirect/0") == 0


async def test_redirect_loop_stops_after_max_redirects(shop: RunningShop) -> None:
    """A redirect loop costs max_redirects + 1 requests, then fetch_error."""
    async with Fetcher(_options(max_redirects=5)) as fetcher:
        result = await fetcher.fetch(shop.url("/redirect-loop"), [shop.host])
    assert result.outcome == "fetch_error"
    assert shop.state.count("/redirect-loop") == 6


async def test_redirect_without_location_is_a_fetch_error(
    shop: RunningShop, fetcher: Fetcher
) -> None:
    """A 302 with no Location cannot be followed."""
    result = await fetcher.fetch(shop.url("/status/302"), [shop.host])
    assert result.outcome == "fetch_error"
    assert result.http_status == 302


async def test_redirect_to_a_host_outside_the_allowed_list_is_blocked(
    shop: RunningShop, fetcher: Fetcher
) -> None:
    """A hop to a host not allowed (here "localhost", the same server) is never requested."""
    target = f"http://localhost:{shop.port}/p/1"
    result = await fetcher.fetch(shop.url(f"/redirect-to?url={target}"), [shop.host])
    assert result.outcome == "blocked"
    assert result.error == "host not allowed: localhost"
    assert result.url == target
    assert shop.state.count("/p/1") == 0


async def test_redirect_to_another_allowed_host_is_followed(
    shop: RunningShop, fetcher: Fetcher
) -> None:
    """A hop to another allowed host (any port) is followed."""
    other = ShopState(pages={"/elsewhere": Page(b"<html>moved</html>")})
    async with running_shop(other) as second:
        target = f"http://localhost:{second.port}/elsewhere"
        result = await fetcher.fetch(
            shop.url(f"/redirect-to?url={target}&code=301"), [shop.host, "LocalHost"]
        )
    assert result.outcome == "ok"
    assert result.body == b"<html>moved</html>"
    assert result.url == target


@pytest.mark.parametrize("target", ["ftp://127.0.0.1/file", "file:///etc/passwd"])
async def test_redirect_to_another_scheme_is_blocked(
    shop: RunningShop, fetcher: Fetcher, target: str
) -> None:
    """Only http and https hops are followed."""
    result = await fetcher.fetch(shop.url(f"/redirect-to?url={target}"), [shop.host])
    assert result.outcome == "blocked"
    assert result.error is not None and result.error.startswith("scheme not allowed")


# --- policy before any traffic ----------------------------------------------------------------


async def test_host_outside_allowed_list_is_blocked_without_traffic(
    shop: RunningShop, fetcher: Fetcher
) -> None:
    """A URL whose host is not allowed is blocked before any request."""
    result = await fetcher.fetch(shop.url("/p/1"), ["shop.example"])
    assert result.outcome == "blocked"
    assert shop.state.requests == []


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/x", "not a url", "http:///nohost", ""])
async def test_bad_scheme_or_url_is_blocked(fetcher: Fetcher, url: str) -> None:
    """Non-http(s) schemes and URLs without a host are blocked, not raised."""
    result = await fetcher.fetch(url, ["127.0.0.1"])
    assert result.outcome == "blocked"
    assert result.error


@pytest.fixture
async def loopback_v6_shop() -> AsyncIterator[RunningShop]:
    """A shop on [::1] to prove IPv6 loopback URLs get no traffic either."""
    async with running_shop(ShopState(pages={"/p/1": Page(PRODUCT_HTML)}), host="::1") as s:
        yield s


@pytest.mark.parametrize(
    "host_form",
    ["127.0.0.1", "localhost", "2130706433", "0x7f.1", "127.1", "0177.0.0.1", "127.0.0.1."],
)
async def test_loopback_spellings_are_blocked_without_traffic(
    shop: RunningShop, host_form: str
) -> None:
    """With private networks refused, every spelling of loopback is blocked, no request sent."""
    async with Fetcher(_options(allow_private_networks=False)) as fetcher:
        result = await fetcher.fetch(f"http://{host_form}:{shop.port}/p/1", [host_form])
    assert result.outcome == "blocked"
    assert result.error is not None and "non-public address" in result.error
    assert shop.state.requests == []


@pytest.mark.parametrize("host_form", ["[::1]", "[::ffff:127.0.0.1]"])
async def test_ipv6_loopback_is_blocked_without_traffic(
    loopback_v6_shop: RunningShop, shop: RunningShop, host_form: str
) -> None:
    """[::1] and the IPv4-mapped loopback are blocked before connecting."""
    port = loopback_v6_shop.port if host_form == "[::1]" else shop.port
    async with Fetcher(_options(allow_private_networks=False)) as fetcher:
        result = await fetcher.fetch(f"http://{host_form}:{port}/p/1", [host_form])
    assert result.outcome == "blocked"
    assert loopback_v6_shop.state.requests == []
    assert shop.state.requests == []


async def test_metadata_address_is_blocked() -> None:
    """169.254.169.254 is refused by the literal check, before any connection is attempted."""
    url = "http://169.254.169.254/latest/meta-data/"
    # Guard: only exercise the fetcher once the pure check says it stops before the network.
    assert url_violation(URL(url), ["169.254.169.254"], allow_private_networks=False)
    async with Fetcher(_options(allow_private_networks=False)) as fetcher:
        result = await fetcher.fetch(url, ["169.254.169.254"])
    assert result.outcome == "blocked"
    assert result.error == "non-public address: 169.254.169.254"


def _only_127_0_0_2_is_public(ip: str) -> bool:
    """Test address policy: 127.0.0.2 plays "the internet", everything else is internal."""
    return ip == "127.0.0.2"


@pytest.fixture
async def public_and_internal() -> AsyncIterator[tuple[RunningShop, RunningShop]]:
    """A "public" shop on 127.0.0.2 and an "internal" service on 127.0.0.1."""
    public = ShopState(pages={"/p/1": Page(PRODUCT_HTML)})
    internal = ShopState(pages={"/secret": Page(b"internal")})
    async with running_shop(public, host="127.0.0.2") as p, running_shop(internal) as i:
        yield p, i


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:{port}/secret",
        "http://localhost:{port}/secret",
        "http://2130706433:{port}/secret",
        "http://169.254.169.254/latest/meta-data/",
    ],
)
async def test_redirect_into_internal_addresses_is_blocked(
    public_and_internal: tuple[RunningShop, RunningShop], target: str
) -> None:
    """A public page redirecting to loopback or metadata addresses is blocked at that hop."""
    public, internal = public_and_internal
    target_url = target.format(port=internal.port)
    allowed = ["127.0.0.2", "127.0.0.1", "localhost", "2130706433", "169.254.169.254"]
    if "169.254" in target_url:
        assert url_violation(
            URL(target_url),
            allowed,
            allow_private_networks=False,
            is_public=_only_127_0_0_2_is_public,
        )
    async with Fetcher(
        _options(allow_private_networks=False), is_public=_only_127_0_0_2_is_public
    ) as fetcher:
        assert (await fetcher.fetch(public.url("/p/1"), allowed)).outcome == "ok"
        result = await fetcher.fetch(public.url(f"/redirect-to?url={target_url}"), allowed)
    assert result.outcome == "blocked"
    assert result.error is not None and "non-public address" in result.error
    assert internal.state.requests == []


# --- limits -----------------------------------------------------------------------------------


async def test_trickling_body_cannot_outlast_the_total_timeout(shop: RunningShop) -> None:
    """A body sent one byte per 100 ms is cut at timeout_s as a fetch_error."""
    async with Fetcher(_options(timeout_s=0.5)) as fetcher:
        result = await fetcher.fetch(shop.url("/slow?bytes=100&interval_ms=100"), [shop.host])
    assert result.outcome == "fetch_error"
    assert result.error == "timed out after 0.5s"
    assert result.http_status == 200
    assert result.elapsed_s < 3.0  # generous: 100 bytes would take 10 s


async def test_declared_oversize_body_is_refused_unread(shop: RunningShop) -> None:
    """A Content-Length above max_body_bytes fails as "too large" without reading the body."""
    async with Fetcher(_options(max_body_bytes=100_000)) as fetcher:
        result = await fetcher.fetch(shop.url("/big?bytes=2000000"), [shop.host])
    assert result.outcome == "fetch_error"
    assert result.error == "too large: body exceeds 100000 bytes"
    assert result.bytes_read == 0


async def test_chunked_oversize_body_is_cut_at_the_limit(shop: RunningShop) -> None:
    """A chunked body with no length is read only up to max_body_bytes."""
    async with Fetcher(_options(max_body_bytes=100_000)) as fetcher:
        result = await fetcher.fetch(shop.url("/big?bytes=2000000&chunked=1"), [shop.host])
    assert result.outcome == "fetch_error"
    assert result.error == "too large: body exceeds 100000 bytes"
    assert result.bytes_read == 100_000
    assert result.body is None


async def test_connection_is_usable_after_a_cut_body(shop: RunningShop) -> None:
    """A body abandoned at the limit does not poison the pool: the next fetch is clean."""
    async with Fetcher(_options(max_body_bytes=100_000)) as fetcher:
        cut = await fetcher.fetch(shop.url("/big?bytes=2000000&chunked=1"), [shop.host])
        after = await fetcher.fetch(shop.url("/p/1"), [shop.host])
    assert cut.outcome == "fetch_error"
    assert after.outcome == "ok"
    assert after.body == PRODUCT_HTML


async def test_body_at_exactly_the_limit_is_ok(shop: RunningShop) -> None:
    """max_body_bytes is inclusive."""
    async with Fetcher(_options(max_body_bytes=100_000)) as fetcher:
        result = await fetcher.fetch(shop.url("/big?bytes=100000&chunked=1"), [shop.host])
    assert result.outcome == "ok"
    assert result.bytes_read == 100_000


async def test_gzip_bomb_is_cut_on_the_decompressed_size(shop: RunningShop) -> None:
    """10 MiB of zeros sent gzipped (~10 KB) fail as "too large" without inflating it all."""
    shop.state.gzip_bomb(10)  # build the server's copy before measuring
    async with Fetcher(_options(max_body_bytes=1_000_000)) as fetcher:
        tracemalloc.start()
        try:
            result = await fetcher.fetch(shop.url("/gzip-bomb?mb=10"), [shop.host])
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert result.outcome == "fetch_error"
    assert result.error == "too large: body exceeds 1000000 bytes"
    assert result.bytes_read == 1_000_000
    assert peak < 6 * 1024 * 1024  # far below the 10 MiB the bomb inflates to


async def test_broken_gzip_is_a_fetch_error(shop: RunningShop, fetcher: Fetcher) -> None:
    """A body that does not decode under its Content-Encoding is a fetch_error."""
    result = await fetcher.fetch(shop.url("/bad-gzip"), [shop.host])
    assert result.outcome == "fetch_error"
    assert result.body is None


async def test_oversized_response_header_is_a_fetch_error(
    shop: RunningShop, fetcher: Fetcher
) -> None:
    """A header longer than aiohttp's 8190-byte field limit fails the fetch."""
    result = await fetcher.fetch(shop.url("/huge-header?bytes=100000"), [shop.host])
    assert result.outcome == "fetch_error"


async def test_dropped_connection_is_a_fetch_error(shop: RunningShop, fetcher: Fetcher) -> None:
    """A server closing the connection without answering gives fetch_error."""
    result = await fetcher.fetch(shop.url("/drop"), [shop.host])
    assert result.outcome == "fetch_error"
    assert result.http_status is None


async def test_refused_connection_is_a_fetch_error(fetcher: Fetcher) -> None:
    """A port nobody listens on gives fetch_error."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = await fetcher.fetch(f"http://127.0.0.1:{port}/p/1", ["127.0.0.1"])
    assert result.outcome == "fetch_error"
    assert result.error


# --- connection handling ----------------------------------------------------------------------


async def test_connections_are_kept_alive_and_reused(shop: RunningShop, fetcher: Fetcher) -> None:
    """Sequential fetches to one host (also after a 404) travel on one pooled connection."""
    results: list[FetchResult] = []
    for path in ("/p/1", "/status/404", "/p/1"):
        results.append(await fetcher.fetch(shop.url(path), [shop.host]))
    assert [r.outcome for r in results] == ["ok", "not_found", "ok"]
    ports = {r.client_port for r in shop.state.requests}
    assert len(ports) == 1


async def test_connections_per_host_are_capped(shop: RunningShop) -> None:
    """No more than max_connections_per_host requests reach one host at once."""
    shop.state.gate = asyncio.Event()
    async with Fetcher(_options(max_connections_per_host=2)) as fetcher:
        tasks = [
            asyncio.create_task(fetcher.fetch(shop.url("/p/1"), [shop.host])) for _ in range(6)
        ]
        await shop.state.wait_until(lambda: shop.state.in_flight == 2)
        # Give the other four a chance to arrive if the cap did not hold.
        await asyncio.sleep(0.2)
        assert shop.state.in_flight == 2
        shop.state.gate.set()
        results = await asyncio.gather(*tasks)
    assert all(r.outcome == "ok" for r in results)
    assert shop.state.max_in_flight == 2


async def test_cancellation_propagates(shop: RunningShop, fetcher: Fetcher) -> None:
    """Cancelling a fetch in flight raises CancelledError instead of returning a result."""
    task = asyncio.create_task(fetcher.fetch(shop.url("/slow?bytes=50"), [shop.host]))
    await shop.state.wait_until(lambda: shop.state.count("/slow") == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_fetch_outside_the_context_is_a_programming_error() -> None:
    """Using a Fetcher that was never entered raises RuntimeError."""
    with pytest.raises(RuntimeError):
        await Fetcher(_options()).fetch("http://127.0.0.1/", ["127.0.0.1"])
