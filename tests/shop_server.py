"""A small, partly hostile shop web server for tests (aiohttp.web on 127.0.0.1).

Build a `ShopState`, then `async with running_shop(state) as shop:` and fetch `shop.url(path)`.
Pages come from `state.pages`; fixed paths serve misbehaviour:

- `/status/{code}` any status (`?retry_after=V` adds Retry-After, `?location=` adds Location)
- `/slow?bytes=N&interval_ms=M` a 200 body trickled one byte every M ms
- `/big?bytes=N` N bytes with Content-Length; `&chunked=1` without one
- `/gzip-bomb?mb=N` N MiB of zeros sent gzip-encoded (about 10 KB on the wire for 10 MiB)
- `/bad-gzip` Content-Encoding gzip over bytes that are not gzip
- `/huge-header?bytes=N` a response header line of N bytes
- `/drop` closes the connection without answering
- `/redirect-loop` redirects to itself forever
- `/redirect/{n}?code=302` a chain of n redirects ending at `/redirect/0` (a 200 page)
- `/redirect-to?url=U&code=302` redirects to U (absolute, relative, other host, 127.0.0.1, ...)
- `/robots.txt` `state.robots_txt`, or `state.robots_status` when that is set, else 404

Every request is recorded with its path, headers and a monotonic timestamp, so politeness
(rate limits, concurrency) can be measured server-side: `state.count(path)`, `state.times(path)`,
`state.max_in_flight`, and `await state.wait_until(predicate)` to wait for the server to see
something without sleeping.
"""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import hdrs, web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDictProxy
from yarl import URL


@dataclass(frozen=True, slots=True)
class Page:
    """One page the shop serves; ETag / Last-Modified enable 304 answers."""

    body: bytes
    content_type: str = "text/html; charset=utf-8"
    status: int = 200
    etag: str | None = None
    last_modified: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the server saw it."""

    path: str
    query: str
    headers: CIMultiDictProxy[str]
    at_s: float  # time.monotonic() on arrival
    client_port: int | None  # the client's source port: equal ports mean a reused connection


@dataclass
class ShopState:
    """What the shop serves and what it has seen; mutable between requests."""

    pages: dict[str, Page] = field(default_factory=dict)
    robots_txt: str | None = None
    robots_status: int | None = None
    requests: list[RecordedRequest] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    # Page handlers wait on this event when it is set here (to hold requests in flight).
    gate: asyncio.Event | None = None
    gzip_bombs: dict[int, bytes] = field(default_factory=dict)
    # Notified whenever a request arrives or finishes, for `wait_until`.
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def wait_until(self, predicate: Callable[[], bool], timeout_s: float = 3.0) -> None:
        """Wait until `predicate()` holds after some request arrived or finished."""
        async with asyncio.timeout(timeout_s), self.changed:
            await self.changed.wait_for(predicate)

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    def gzip_bomb(self, mib: int) -> bytes:
        """The gzip encoding of `mib` MiB of zeros (built once, so tests can measure memory)."""
        if mib not in self.gzip_bombs:
            self.gzip_bombs[mib] = gzip.compress(bytes(mib * 1024 * 1024), compresslevel=9)
        return self.gzip_bombs[mib]

    def count(self, path: str) -> int:
        """Number of requests seen for `path`."""
        return sum(1 for r in self.requests if r.path == path)

    def times(self, path: str) -> list[float]:
        """Arrival times (monotonic seconds) of the requests for `path`."""
        return [r.at_s for r in self.requests if r.path == path]

    def last(self, path: str) -> RecordedRequest:
        """The most recent request for `path` (IndexError if none)."""
        return [r for r in self.requests if r.path == path][-1]


@dataclass(frozen=True, slots=True)
class RunningShop:
    """A started shop: its state and base URL."""

    state: ShopState
    base: URL

    @property
    def host(self) -> str:
        """Host of the base URL (for allowed-host lists)."""
        assert self.base.host is not None
        return self.base.host

    @property
    def port(self) -> int:
        """Port the shop listens on."""
        assert self.base.port is not None
        return self.base.port

    def url(self, path_qs: str) -> str:
        """Absolute URL for a path (with optional query string) on this shop."""
        return str(self.base) + path_qs.lstrip("/")


_STATE_KEY = web.AppKey("shop_state", ShopState)


def _state(request: web.Request) -> ShopState:
    return request.app[_STATE_KEY]


@web.middleware
async def _record(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    state = _state(request)
    peer = request.transport.get_extra_info("peername") if request.transport else None
    state.requests.append(
        RecordedRequest(
            request.path,
            request.query_string,
            request.headers,
            time.monotonic(),
            int(peer[1]) if peer else None,
        )
    )
    state.in_flight += 1
    state.max_in_flight = max(state.max_in_flight, state.in_flight)
    await state._notify()
    try:
        return await handler(request)
    finally:
        state.in_flight -= 1
        await state._notify()


def _not_modified(request: web.Request, page: Page) -> bool:
    if page.etag is not None:
        inm = request.headers.get(hdrs.IF_NONE_MATCH)
        if inm is not None:
            return page.etag in (t.strip() for t in inm.split(","))
    if page.last_modified is not None:
        ims = request.headers.get(hdrs.IF_MODIFIED_SINCE)
        return ims is not None and ims == page.last_modified
    return False


async def _page(request: web.Request) -> web.StreamResponse:
    state = _state(request)
    if state.gate is not None:
        await state.gate.wait()
    page = state.pages.get(request.path)
    if page is None:
        raise web.HTTPNotFound(text="no such page")
    headers = dict(page.headers)
    if page.etag is not None:
        headers[hdrs.ETAG] = page.etag
    if page.last_modified is not None:
        headers[hdrs.LAST_MODIFIED] = page.last_modified
    if _not_modified(request, page):
        return web.Response(status=304, headers=headers)
    headers[hdrs.CONTENT_TYPE] = page.content_type
    return web.Response(status=page.status, body=page.body, headers=headers)


async def _status(request: web.Request) -> web.Response:
    headers: dict[str, str] = {}
    if "retry_after" in request.query:
        headers[hdrs.RETRY_AFTER] = request.query["retry_after"]
    if "location" in request.query:
        headers[hdrs.LOCATION] = request.query["location"]
    code = int(request.match_info["code"])
    return web.Response(status=code, text=f"status {code}", headers=headers)


async def _slow(request: web.Request) -> web.StreamResponse:
    total = int(request.query.get("bytes", "100"))
    interval_s = int(request.query.get("interval_ms", "100")) / 1000
    resp = web.StreamResponse(headers={hdrs.CONTENT_TYPE: "text/html"})
    resp.content_length = total
    await resp.prepare(request)
    try:
        for _ in range(total):
            await resp.write(b"x")
            await asyncio.sleep(interval_s)
        await resp.write_eof()
    except ConnectionError:
        pass  # the client gave up, as it should at its timeout
    return resp


async def _big(request: web.Request) -> web.StreamResponse:
    total = int(request.query["bytes"])
    resp = web.StreamResponse(headers={hdrs.CONTENT_TYPE: "text/html"})
    if request.query.get("chunked") == "1":
        resp.enable_chunked_encoding()
    else:
        resp.content_length = total
    await resp.prepare(request)
    block = b"a" * 65536
    sent = 0
    try:
        while sent < total:
            part = block[: min(len(block), total - sent)]
            await resp.write(part)
            sent += len(part)
        await resp.write_eof()
    except ConnectionError:
        pass  # the client stopped reading, as it should past its limit
    return resp


async def _gzip_bomb(request: web.Request) -> web.Response:
    body = _state(request).gzip_bomb(int(request.query.get("mb", "10")))
    return web.Response(
        body=body,
        headers={hdrs.CONTENT_TYPE: "text/html", hdrs.CONTENT_ENCODING: "gzip"},
    )


async def _bad_gzip(request: web.Request) -> web.Response:
    return web.Response(
        body=b"this is not gzip data at all" * 10,
        headers={hdrs.CONTENT_TYPE: "text/html", hdrs.CONTENT_ENCODING: "gzip"},
    )


async def _huge_header(request: web.Request) -> web.Response:
    size = int(request.query.get("bytes", "100000"))
    return web.Response(text="ok", headers={"X-Padding": "p" * size})


async def _drop(request: web.Request) -> web.StreamResponse:
    assert request.transport is not None
    request.transport.close()
    # Keep the handler alive briefly so aiohttp does not answer on the closed transport.
    await asyncio.sleep(0.05)
    return web.Response(status=500)


async def _redirect_loop(request: web.Request) -> web.Response:
    return web.Response(status=302, headers={hdrs.LOCATION: "/redirect-loop"})


async def _redirect_chain(request: web.Request) -> web.Response:
    n = int(request.match_info["n"])
    if n <= 0:
        return web.Response(text="<html><body>end of chain</body></html>", content_type="text/html")
    code = int(request.query.get("code", "302"))
    location = f"/redirect/{n - 1}"
    if request.query_string:
        location += "?" + request.query_string
    return web.Response(status=code, headers={hdrs.LOCATION: location})


async def _redirect_to(request: web.Request) -> web.Response:
    code = int(request.query.get("code", "302"))
    return web.Response(status=code, headers={hdrs.LOCATION: request.query["url"]})


async def _robots(request: web.Request) -> web.Response:
    state = _state(request)
    if state.robots_status is not None:
        return web.Response(status=state.robots_status, text="robots unavailable")
    if state.robots_txt is None:
        return web.Response(status=404, text="no robots.txt")
    return web.Response(text=state.robots_txt, content_type="text/plain")


def create_shop_app(state: ShopState) -> web.Application:
    """Build the shop application serving `state`."""
    app = web.Application(middlewares=[_record])
    app[_STATE_KEY] = state
    app.router.add_get("/robots.txt", _robots)
    app.router.add_get("/status/{code:\\d+}", _status)
    app.router.add_get("/slow", _slow)
    app.router.add_get("/big", _big)
    app.router.add_get("/gzip-bomb", _gzip_bomb)
    app.router.add_get("/bad-gzip", _bad_gzip)
    app.router.add_get("/huge-header", _huge_header)
    app.router.add_get("/drop", _drop)
    app.router.add_get("/redirect-loop", _redirect_loop)
    app.router.add_get("/redirect/{n:\\d+}", _redirect_chain)
    app.router.add_get("/redirect-to", _redirect_to)
    app.router.add_get("/{tail:.*}", _page)
    return app


@asynccontextmanager
async def running_shop(state: ShopState, host: str = "127.0.0.1") -> AsyncIterator[RunningShop]:
    """Serve `state` on `host` (an ephemeral port) for the duration of the block."""
    server = TestServer(create_shop_app(state), host=host, port=0)
    await server.start_server()
    try:
        yield RunningShop(state=state, base=server.make_url("/"))
    finally:
        await server.close()
