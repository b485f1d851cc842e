"""robots.txt rules per origin, fetched under the fetcher's own host and address policy.

Availability follows RFC 9309 where it is unambiguous: a parsed file is obeyed; a missing file
(404/410) or any other 4xx means "no rules"; a robots.txt that cannot be reached under the
merchant's policy (a redirect to a host outside the allowed hosts) counts as unavailable too.
Deviation, on purpose: a 5xx, 429 or network failure also means "no rules", but only for
`error_ttl_s` (5 minutes by default) before it is fetched again, rather than RFC 9309's "assume
complete disallow". A merchant registered its hosts to be verified, and the page fetch that
follows meets the same outage and reports it as fetch_error or rate_limited, which is truer
than "blocked by robots.txt".
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from protego import Protego
from yarl import URL

if TYPE_CHECKING:
    from verifier.fetcher import FetchResult

RobotsFetch = Callable[[str, Sequence[str]], Awaitable["FetchResult"]]


def user_agent_token(user_agent: str) -> str:
    """Return the product token robots.txt groups are matched against ("name" of "name/1.0")."""
    first = user_agent.strip().split(maxsplit=1)[0] if user_agent.strip() else ""
    token = first.split("/", 1)[0]
    return token or "*"


@dataclass(frozen=True, slots=True)
class RobotsRules:
    """The rules of one origin; `parser` None means everything is allowed."""

    parser: Protego | None
    expires_at: float
    source: str  # "file", "missing" or "unavailable", for logs and tests

    def allows(self, url: URL, token: str) -> bool:
        """Return True when `token` may fetch `url` under these rules."""
        if self.parser is None:
            return True
        return bool(self.parser.can_fetch(str(url), token))


class RobotsCache:
    """robots.txt rules cached per scheme+host+port, with a TTL and a bounded size."""

    def __init__(
        self,
        fetch: RobotsFetch,
        user_agent: str,
        *,
        ttl_s: float = 3600.0,
        error_ttl_s: float = 300.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._token = user_agent_token(user_agent)
        self._ttl_s = ttl_s
        self._error_ttl_s = error_ttl_s
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, RobotsRules] = OrderedDict()
        # One lock per origin so concurrent fetches to a cold origin load robots.txt once.
        self._locks: dict[str, asyncio.Lock] = {}

    @property
    def token(self) -> str:
        """The user-agent token matched against robots.txt groups."""
        return self._token

    async def allowed(self, url: URL, allowed_hosts: Sequence[str]) -> bool:
        """Return True when the origin's robots.txt lets this user agent fetch `url`."""
        rules = await self.rules_for(url, allowed_hosts)
        return rules.allows(url, self._token)

    async def rules_for(self, url: URL, allowed_hosts: Sequence[str]) -> RobotsRules:
        """Return the cached rules of `url`'s origin, loading them when missing or expired."""
        key = str(url.origin())
        cached = self._fresh(key)
        if cached is not None:
            return cached
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                cached = self._fresh(key)
                if cached is not None:
                    return cached
                rules = await self._load(url, allowed_hosts)
                self._store(key, rules)
                return rules
        finally:
            if not lock.locked() and self._locks.get(key) is lock:
                del self._locks[key]

    def _fresh(self, key: str) -> RobotsRules | None:
        rules = self._entries.get(key)
        if rules is None or rules.expires_at <= self._clock():
            return None
        self._entries.move_to_end(key)
        return rules

    def _store(self, key: str, rules: RobotsRules) -> None:
        self._entries[key] = rules
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    async def _load(self, url: URL, allowed_hosts: Sequence[str]) -> RobotsRules:
        robots_url = url.origin().with_path("/robots.txt")
        result = await self._fetch(str(robots_url), allowed_hosts)
        now = self._clock()
        if result.outcome == "ok" and result.body is not None:
            text = result.body.decode("utf-8", errors="replace").lstrip("\ufeff")
            return RobotsRules(Protego.parse(text), now + self._ttl_s, "file")
        status = result.http_status
        if result.outcome in ("not_found", "blocked") or (
            status is not None and 400 <= status < 500 and status != 429
        ):
            return RobotsRules(None, now + self._ttl_s, "missing")
        return RobotsRules(None, now + self._error_ttl_s, "unavailable")
