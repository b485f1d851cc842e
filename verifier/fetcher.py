"""The page fetcher: one pooled aiohttp client that only reaches a merchant's allowed hosts.

Every hop of a fetch (the URL and each redirect target) is checked against the host and
address policy of `verifier.netguard` and, when enabled, against the origin's robots.txt before
a request is sent. Name resolution goes through `PublicOnlyResolver`, so a name that points at a
private address is refused before a connection is opened.

Limits: `timeout_s` bounds the whole fetch (robots.txt, every hop, the body) with one
`asyncio.timeout` scope, expired by the fetcher's `Deadlines` watchdog (at most a fiftieth of
the shorter of the page and robots.txt timeouts late, 10 ms to 0.5 s); `connect_timeout_s`
bounds resolution and each socket connect (TLS handshake included); the body is read in chunks
counted after decompression, so a compressed bomb is cut at `max_body_bytes` without being
inflated in full. Response headers are bounded by aiohttp's parser defaults: 8190 bytes per
status/header line (`max_line_size`), 8190 bytes per header field (`max_field_size`) and 128
header fields (`max_headers`); a response over them is a fetch_error.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, get_args

import aiohttp
from aiohttp import hdrs
from aiohttp.compression_utils import HAS_BROTLI, HAS_ZSTD
from aiohttp.http_exceptions import HttpProcessingError
from yarl import URL

from verifier.deadlines import Deadlines
from verifier.netguard import (
    AddressPolicy,
    NonPublicAddressError,
    PublicOnlyResolver,
    is_public_address,
    url_violation,
)
from verifier.records import record
from verifier.robots import RobotsCache

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
ROBOTS_MAX_BODY_BYTES = 512 * 1024
ROBOTS_TIMEOUT_S = 10.0
# Small error and redirect bodies are read so the connection can go back to the pool; a larger
# one is abandoned and its connection closed instead.
_DRAIN_MAX_BYTES = 64 * 1024
_CHUNK_BYTES = 64 * 1024
_PAGE_ACCEPT = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5"
_ROBOTS_ACCEPT = "text/plain,*/*;q=0.5"
_RETRY_AFTER_SECONDS = re.compile(r"^\d+(\.\d+)?$")
_NETWORK_ERRORS = (aiohttp.ClientError, OSError, HttpProcessingError)

FetchOutcome = Literal["ok", "not_modified", "not_found", "blocked", "fetch_error", "rate_limited"]
FETCH_OUTCOMES: tuple[FetchOutcome, ...] = get_args(FetchOutcome)


def _accept_encoding() -> str:
    # Advertise only what aiohttp can decode with the packages present.
    codings = ["gzip", "deflate"]
    if HAS_BROTLI:
        codings.append("br")
    if HAS_ZSTD:
        codings.append("zstd")
    return ", ".join(codings)


@dataclass(frozen=True, slots=True)
class FetchOptions:
    """Client settings shared by every fetch of one `Fetcher`."""

    user_agent: str
    timeout_s: float = 20.0
    connect_timeout_s: float = 5.0
    max_body_bytes: int = 5_000_000
    max_redirects: int = 5
    allow_private_networks: bool = False
    respect_robots_txt: bool = True
    robots_ttl_s: float = 3600.0
    max_connections: int = 256
    max_connections_per_host: int = 8


@record
class FetchResult:
    """What one fetch produced; `outcome` is ok, not_modified, not_found, blocked,
    fetch_error or rate_limited. `bytes_read` counts decompressed body bytes of the final
    response."""

    outcome: FetchOutcome
    http_status: int | None
    url: str
    body: bytes | None
    content_type: str | None
    etag: str | None
    last_modified: str | None
    retry_after_s: float | None
    error: str | None
    elapsed_s: float
    bytes_read: int


@dataclass(frozen=True, slots=True)
class _Limits:
    timeout_s: float
    max_body_bytes: int
    truncate_body: bool  # keep the first max_body_bytes instead of failing
    check_robots: bool
    accept: str


@dataclass(slots=True)
class _Progress:
    """Where a fetch got to, so a timeout can still report the URL and status reached."""

    started_s: float
    url: str
    http_status: int | None = None
    bytes_read: int = 0


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Parse a Retry-After value (delta seconds or HTTP-date) into seconds from `now`."""
    if value is None:
        return None
    text = value.strip()
    if _RETRY_AFTER_SECONDS.match(text):
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    reference = now if now is not None else datetime.now(UTC)
    return max(0.0, (when - reference).total_seconds())


def _non_public_cause(exc: BaseException) -> NonPublicAddressError | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, NonPublicAddressError):
            return seen
        os_error = getattr(seen, "os_error", None)
        if isinstance(os_error, NonPublicAddressError):
            return os_error
        seen = seen.__cause__
    return None


async def _read_body(resp: aiohttp.ClientResponse, limit: int) -> tuple[bytes, bool]:
    """Read at most `limit` decompressed bytes; the flag says more data was still coming."""
    buf = bytearray()
    async for chunk in resp.content.iter_chunked(_CHUNK_BYTES):
        room = limit - len(buf)
        if len(chunk) > room:
            buf += chunk[:room]
            return bytes(buf), True
        buf += chunk
    return bytes(buf), False


async def _drain(resp: aiohttp.ClientResponse) -> None:
    # The answer is already known; a broken body only costs the pooled connection.
    with contextlib.suppress(*_NETWORK_ERRORS):
        await _read_body(resp, _DRAIN_MAX_BYTES)


class Fetcher:
    """Hardened HTTP client for merchants' product pages (use as an async context manager)."""

    def __init__(
        self, options: FetchOptions, *, is_public: AddressPolicy = is_public_address
    ) -> None:
        self._options = options
        self._is_public = is_public
        self._session: aiohttp.ClientSession | None = None
        self._resolver: PublicOnlyResolver | None = None
        self._robots = RobotsCache(
            self.fetch_robots_txt, options.user_agent, ttl_s=options.robots_ttl_s
        )
        self._page_limits = _Limits(
            timeout_s=options.timeout_s,
            max_body_bytes=options.max_body_bytes,
            truncate_body=False,
            check_robots=options.respect_robots_txt,
            accept=_PAGE_ACCEPT,
        )
        # RFC 9309 asks crawlers to parse at least 500 KiB and ignore the rest.
        self._robots_limits = _Limits(
            timeout_s=min(options.timeout_s, ROBOTS_TIMEOUT_S),
            max_body_bytes=ROBOTS_MAX_BODY_BYTES,
            truncate_body=True,
            check_robots=False,
            accept=_ROBOTS_ACCEPT,
        )
        # Timeouts are enforced at most a fiftieth of the shorter one late (10 ms to 0.5 s).
        self._deadlines = Deadlines(tick_s=min(0.5, max(0.01, self._robots_limits.timeout_s / 50)))

    @property
    def robots(self) -> RobotsCache:
        """The robots.txt cache this fetcher consults."""
        return self._robots

    async def __aenter__(self) -> Fetcher:
        """Open the pooled session (one connector, keep-alive, guarded resolver)."""
        opts = self._options
        self._resolver = PublicOnlyResolver(
            allow_private_networks=opts.allow_private_networks,
            timeout_s=opts.connect_timeout_s,
            is_public=self._is_public,
        )
        connector = aiohttp.TCPConnector(
            limit=opts.max_connections,
            limit_per_host=opts.max_connections_per_host,
            ttl_dns_cache=300,
            resolver=self._resolver,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=opts.connect_timeout_s),
            headers={
                hdrs.USER_AGENT: opts.user_agent,
                hdrs.ACCEPT_ENCODING: _accept_encoding(),
            },
            # A shared jar would leak state between merchants and grow without bound.
            cookie_jar=aiohttp.DummyCookieJar(),
            # Proxy variables would route around the address policy.
            trust_env=False,
            auto_decompress=True,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Close the session, its connections and the resolver."""
        try:
            await self._deadlines.close()
        finally:
            if self._session is not None:
                await self._session.close()
                self._session = None
            if self._resolver is not None:
                # The connector closes only resolvers it created itself.
                await self._resolver.close()
                self._resolver = None

    async def fetch(
        self,
        url: str,
        allowed_hosts: Sequence[str],
        *,
        etag: str | None = None,
        last_modified: str | None = None,
    ) -> FetchResult:
        """Fetch `url` under the host, address, robots and size policy; never raises for
        network, HTTP or policy problems."""
        return await self._fetch(url, allowed_hosts, self._page_limits, etag, last_modified)

    async def fetch_robots_txt(self, url: str, allowed_hosts: Sequence[str]) -> FetchResult:
        """Fetch a robots.txt under the host policy: 512 KiB kept at most, short timeout."""
        return await self._fetch(url, allowed_hosts, self._robots_limits, None, None)

    async def _fetch(
        self,
        url: str,
        allowed_hosts: Sequence[str],
        limits: _Limits,
        etag: str | None,
        last_modified: str | None,
    ) -> FetchResult:
        if self._session is None:
            raise RuntimeError("Fetcher used outside 'async with'")
        progress = _Progress(started_s=asyncio.get_running_loop().time(), url=url)
        headers: dict[str, str] = {hdrs.ACCEPT: limits.accept}
        if etag is not None:
            headers[hdrs.IF_NONE_MATCH] = etag
        if last_modified is not None:
            headers[hdrs.IF_MODIFIED_SINCE] = last_modified
        try:
            async with asyncio.timeout(None) as scope:
                self._deadlines.add(scope, limits.timeout_s)
                try:
                    return await self._follow(
                        self._session, url, allowed_hosts, limits, headers, progress
                    )
                finally:
                    self._deadlines.discard(scope)
        except TimeoutError:
            return self._failure("fetch_error", progress, f"timed out after {limits.timeout_s:g}s")

    async def _follow(
        self,
        session: aiohttp.ClientSession,
        url: str,
        allowed_hosts: Sequence[str],
        limits: _Limits,
        headers: dict[str, str],
        progress: _Progress,
    ) -> FetchResult:
        try:
            current = URL(url)
        except (ValueError, TypeError):
            return self._failure("blocked", progress, "invalid URL")
        for _hop in range(self._options.max_redirects + 1):
            progress.url = str(current)
            progress.http_status = None
            violation = url_violation(
                current,
                allowed_hosts,
                allow_private_networks=self._options.allow_private_networks,
                is_public=self._is_public,
            )
            if violation is not None:
                return self._failure("blocked", progress, violation)
            if limits.check_robots and not await self._robots.allowed(current, allowed_hosts):
                return self._failure("blocked", progress, "disallowed by robots.txt")
            try:
                async with session.get(current, allow_redirects=False, headers=headers) as resp:
                    progress.http_status = resp.status
                    if resp.status not in REDIRECT_STATUSES:
                        return await self._complete(resp, limits, progress)
                    location = resp.headers.get(hdrs.LOCATION)
                    if not location:
                        return self._failure("fetch_error", progress, "redirect without Location")
                    try:
                        target = current.join(URL(location))
                    except ValueError:
                        return self._failure("fetch_error", progress, "invalid redirect Location")
                    await _drain(resp)
            except _NETWORK_ERRORS as exc:
                refused = _non_public_cause(exc)
                if refused is not None:
                    return self._failure("blocked", progress, str(refused))
                return self._failure("fetch_error", progress, _describe(exc))
            current = target
        return self._failure(
            "fetch_error", progress, f"too many redirects (over {self._options.max_redirects})"
        )

    async def _complete(
        self, resp: aiohttp.ClientResponse, limits: _Limits, progress: _Progress
    ) -> FetchResult:
        status = resp.status
        if 200 <= status < 300:
            declared = resp.content_length
            coding = resp.headers.get(hdrs.CONTENT_ENCODING, "identity").strip().lower()
            encoded = coding not in ("", "identity")
            if (
                not limits.truncate_body
                and not encoded
                and declared is not None
                and declared > limits.max_body_bytes
            ):
                return self._failure("fetch_error", progress, _too_large(limits))
            if not encoded and declared is not None and declared <= limits.max_body_bytes:
                # aiohttp stops at the declared length: one read, no chunk copies.
                body, more = await resp.read(), False
            else:
                body, more = await _read_body(resp, limits.max_body_bytes)
            progress.bytes_read = len(body)
            if more and not limits.truncate_body:
                return self._failure("fetch_error", progress, _too_large(limits))
            return self._result("ok", progress, resp, body=body)
        if status == 304:
            return self._result("not_modified", progress, resp)
        await _drain(resp)
        if status in (404, 410):
            return self._result("not_found", progress, resp)
        if status in (429, 503):
            return self._result(
                "rate_limited",
                progress,
                resp,
                retry_after_s=parse_retry_after(resp.headers.get(hdrs.RETRY_AFTER)),
                error=f"HTTP {status}",
            )
        return self._result("fetch_error", progress, resp, error=f"HTTP {status}")

    @staticmethod
    def _result(
        outcome: FetchOutcome,
        progress: _Progress,
        resp: aiohttp.ClientResponse | None = None,
        *,
        body: bytes | None = None,
        retry_after_s: float | None = None,
        error: str | None = None,
    ) -> FetchResult:
        headers = resp.headers if resp is not None else None
        return FetchResult(
            outcome=outcome,
            http_status=resp.status if resp is not None else progress.http_status,
            url=progress.url,
            body=body,
            content_type=headers.get(hdrs.CONTENT_TYPE) if headers is not None else None,
            etag=headers.get(hdrs.ETAG) if headers is not None else None,
            last_modified=headers.get(hdrs.LAST_MODIFIED) if headers is not None else None,
            retry_after_s=retry_after_s,
            error=error,
            elapsed_s=asyncio.get_running_loop().time() - progress.started_s,
            bytes_read=progress.bytes_read,
        )

    @classmethod
    def _failure(cls, outcome: FetchOutcome, progress: _Progress, error: str) -> FetchResult:
        return cls._result(outcome, progress, error=error)


def _too_large(limits: _Limits) -> str:
    return f"too large: body exceeds {limits.max_body_bytes} bytes"


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"
