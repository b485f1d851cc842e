"""robots.txt: obeyed per origin, cached with a TTL, and lenient when the file is unavailable."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from yarl import URL

from tests.shop_server import Page, ShopState, running_shop
from verifier.fetcher import Fetcher, FetchOptions
from verifier.robots import RobotsCache, user_agent_token

UA = "catalog-verifier/0.1.0 (+https://verifier.example/bot)"
PAGE = b"<html><body>product</body></html>"


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def _options(**overrides: object) -> FetchOptions:
    base: dict[str, object] = {
        "user_agent": UA,
        "timeout_s": 5.0,
        "connect_timeout_s": 2.0,
        "allow_private_networks": True,
        "respect_robots_txt": True,
    }
    base.update(overrides)
    return FetchOptions(**base)  # type: ignore[arg-type]


def _state(robots_txt: str | None = None, robots_status: int | None = None) -> ShopState:
    return ShopState(
        pages={"/p/1": Page(PAGE), "/private/1": Page(PAGE), "/open/1": Page(PAGE)},
        robots_txt=robots_txt,
        robots_status=robots_status,
    )


@pytest.fixture
async def fetcher() -> AsyncIterator[Fetcher]:
    """A fetcher that honours robots.txt, allowed on loopback."""
    async with Fetcher(_options()) as f:
        yield f


@pytest.mark.parametrize(
    ("user_agent", "token"),
    [
        ("catalog-verifier/0.1.0 (+https://x.example)", "catalog-verifier"),
        ("catalog-verifier", "catalog-verifier"),
        ("  MyBot/2 extra", "MyBot"),
        ("", "*"),
    ],
)
def test_user_agent_token_is_the_product_name(user_agent: str, token: str) -> None:
    """robots.txt groups are matched on the product token of the User-Agent."""
    assert user_agent_token(user_agent) == token


async def test_disallowed_path_is_blocked_without_requesting_it(fetcher: Fetcher) -> None:
    """A path disallowed for all agents is blocked and never requested."""
    async with running_shop(_state("User-agent: *\nDisallow: /private\n")) as shop:
        result = await fetcher.fetch(shop.url("/private/1"), [shop.host])
    assert result.outcome == "blocked"
    assert result.error == "disallowed by robots.txt"
    assert shop.state.count("/private/1") == 0
    assert shop.state.count("/robots.txt") == 1


async def test_allowed_paths_are_fetched_and_robots_is_cached(fetcher: Fetcher) -> None:
    """Allowed paths are fetched; robots.txt is requested once for many fetches of one origin."""
    async with running_shop(_state("User-agent: *\nDisallow: /private\n")) as shop:
        results = [await fetcher.fetch(shop.url(p), [shop.host]) for p in ("/p/1", "/open/1")]
        results.append(await fetcher.fetch(shop.url("/p/1"), [shop.host]))
    assert [r.outcome for r in results] == ["ok", "ok", "ok"]
    assert shop.state.count("/robots.txt") == 1
    assert shop.state.last("/robots.txt").headers["User-Agent"] == UA


@pytest.mark.parametrize(
    ("robots_txt", "outcome"),
    [
        ("User-agent: catalog-verifier\nDisallow: /\n", "blocked"),
        ("User-agent: Catalog-Verifier\nDisallow: /p/\n", "blocked"),
        ("User-agent: otherbot\nDisallow: /\n", "ok"),
        ("User-agent: otherbot\nDisallow: /\n\nUser-agent: *\nDisallow: /p/\n", "blocked"),
        ("User-agent: catalog-verifier\nAllow: /p/\n\nUser-agent: *\nDisallow: /\n", "ok"),
        ("User-agent: *\nDisallow: /\nAllow: /p/1\n", "ok"),
        ("User-agent: verifier\nDisallow: /\n", "ok"),  # not our token, only a substring of it
    ],
)
async def test_groups_are_matched_on_our_token(
    fetcher: Fetcher, robots_txt: str, outcome: str
) -> None:
    """The group naming our token wins over "*", other agents' groups do not apply."""
    async with running_shop(_state(robots_txt)) as shop:
        result = await fetcher.fetch(shop.url("/p/1"), [shop.host])
    assert result.outcome == outcome


@pytest.mark.parametrize("status", [404, 410, 401, 403])
async def test_missing_or_forbidden_robots_allows_everything(fetcher: Fetcher, status: int) -> None:
    """A 4xx robots.txt means no rules (RFC 9309), cached for the full TTL."""
    async with running_shop(_state(robots_status=status)) as shop:
        first = await fetcher.fetch(shop.url("/private/1"), [shop.host])
        second = await fetcher.fetch(shop.url("/private/1"), [shop.host])
    assert (first.outcome, second.outcome) == ("ok", "ok")
    assert shop.state.count("/robots.txt") == 1


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_unavailable_robots_allows_but_is_retried_soon(status: int) -> None:
    """A 5xx/429 robots.txt allows fetching, and is fetched again after error_ttl_s, not ttl_s."""
    clock = FakeClock()
    async with (
        running_shop(_state(robots_status=status)) as shop,
        Fetcher(_options(respect_robots_txt=False)) as fetcher,
    ):
        cache = RobotsCache(fetcher.fetch_robots_txt, UA, ttl_s=3600, error_ttl_s=60, clock=clock)
        page = URL(shop.url("/private/1"))
        assert await cache.allowed(page, [shop.host]) is True
        clock.now_s += 30
        assert await cache.allowed(page, [shop.host]) is True
        assert shop.state.count("/robots.txt") == 1
        clock.now_s += 31
        assert (await cache.rules_for(page, [shop.host])).source == "unavailable"
        assert shop.state.count("/robots.txt") == 2


async def test_unreachable_robots_host_allows_everything(fetcher: Fetcher) -> None:
    """A robots.txt that cannot be connected to does not block (the page fetch reports it)."""
    clock = FakeClock()
    cache = RobotsCache(fetcher.fetch_robots_txt, UA, clock=clock)
    rules = await cache.rules_for(URL("http://127.0.0.1:1/p/1"), ["127.0.0.1"])
    assert rules.parser is None
    assert rules.source == "unavailable"


async def test_rules_expire_after_ttl(fetcher: Fetcher) -> None:
    """A parsed robots.txt is reused until ttl_s passes, then fetched again and re-read."""
    clock = FakeClock()
    async with running_shop(_state("User-agent: *\nDisallow: /private\n")) as shop:
        cache = RobotsCache(fetcher.fetch_robots_txt, UA, ttl_s=100, clock=clock)
        page = URL(shop.url("/private/1"))
        assert await cache.allowed(page, [shop.host]) is False
        shop.state.robots_txt = "User-agent: *\nDisallow:\n"
        clock.now_s += 99
        assert await cache.allowed(page, [shop.host]) is False
        clock.now_s += 2
        assert await cache.allowed(page, [shop.host]) is True
    assert shop.state.count("/robots.txt") == 2


async def test_each_origin_has_its_own_rules(fetcher: Fetcher) -> None:
    """Rules are cached per scheme+host+port: two ports on one host are two origins."""
    async with (
        running_shop(_state("User-agent: *\nDisallow: /private\n")) as strict,
        running_shop(_state("User-agent: *\nDisallow:\n")) as lenient,
    ):
        hosts = [strict.host]
        blocked = await fetcher.fetch(strict.url("/private/1"), hosts)
        allowed = await fetcher.fetch(lenient.url("/private/1"), hosts)
    assert (blocked.outcome, allowed.outcome) == ("blocked", "ok")
    assert strict.state.count("/robots.txt") == 1
    assert lenient.state.count("/robots.txt") == 1


async def test_concurrent_fetches_load_robots_once(fetcher: Fetcher) -> None:
    """Many fetches racing to a cold origin share one robots.txt request."""
    async with running_shop(_state("User-agent: *\nDisallow: /private\n")) as shop:
        results = await asyncio.gather(
            *(fetcher.fetch(shop.url("/p/1"), [shop.host]) for _ in range(10))
        )
    assert all(r.outcome == "ok" for r in results)
    assert shop.state.count("/robots.txt") == 1


async def test_redirect_into_a_disallowed_path_is_blocked(fetcher: Fetcher) -> None:
    """Every redirect hop is checked against robots.txt too."""
    async with running_shop(_state("User-agent: *\nDisallow: /private\n")) as shop:
        result = await fetcher.fetch(shop.url("/redirect-to?url=/private/1"), [shop.host])
    assert result.outcome == "blocked"
    assert result.url == shop.url("/private/1")
    assert shop.state.count("/private/1") == 0


async def test_oversized_robots_is_read_up_to_512_kib(fetcher: Fetcher) -> None:
    """A robots.txt over 512 KiB is parsed from its first 512 KiB instead of being dropped."""
    padding = "# filler line of a very long robots file\n" * 20_000  # about 800 KB
    async with running_shop(_state("User-agent: *\nDisallow: /private\n" + padding)) as shop:
        result = await fetcher.fetch(shop.url("/private/1"), [shop.host])
    assert result.outcome == "blocked"


async def test_robots_is_not_consulted_when_disabled() -> None:
    """With respect_robots_txt off, robots.txt is never requested."""
    async with (
        running_shop(_state("User-agent: *\nDisallow: /\n")) as shop,
        Fetcher(_options(respect_robots_txt=False)) as fetcher,
    ):
        result = await fetcher.fetch(shop.url("/private/1"), [shop.host])
    assert result.outcome == "ok"
    assert shop.state.count("/robots.txt") == 0


async def test_cache_is_bounded(fetcher: Fetcher) -> None:
    """The least recently used origin is evicted beyond max_entries and fetched again later."""
    async with (
        running_shop(_state("User-agent: *\nDisallow:\n")) as first,
        running_shop(_state("User-agent: *\nDisallow:\n")) as second,
    ):
        cache = RobotsCache(fetcher.fetch_robots_txt, UA, max_entries=1, clock=FakeClock())
        hosts = [first.host]
        await cache.allowed(URL(first.url("/p/1")), hosts)
        await cache.allowed(URL(second.url("/p/1")), hosts)
        await cache.allowed(URL(first.url("/p/1")), hosts)
    assert first.state.count("/robots.txt") == 2
    assert second.state.count("/robots.txt") == 1
