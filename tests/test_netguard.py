"""Address and host policy: the classifier table, host matching and the guarded resolver."""

from __future__ import annotations

import asyncio
import socket

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from verifier.netguard import (
    NonPublicAddressError,
    PublicOnlyResolver,
    host_allowed,
    is_public_address,
    literal_address,
    url_violation,
)

NON_PUBLIC = [
    "0.0.0.0",
    "0.1.2.3",
    "10.0.0.1",
    "10.255.255.255",
    "100.64.0.1",  # CGNAT
    "100.127.255.254",
    "127.0.0.1",
    "127.255.255.254",
    "169.254.169.254",  # cloud metadata
    "172.16.0.1",
    "172.31.255.255",
    "192.0.0.8",
    "192.0.2.10",
    "192.88.99.1",
    "192.168.1.1",
    "198.18.0.1",
    "198.51.100.7",
    "203.0.113.9",
    "224.0.0.251",  # multicast
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "::",
    "::1",
    "[::1]",
    "::ffff:127.0.0.1",  # IPv4-mapped loopback
    "::ffff:10.1.2.3",
    "::ffff:169.254.169.254",
    "::127.0.0.1",  # IPv4-compatible (deprecated)
    "::8.8.8.8",
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "64:ff9b::7f00:1",
    "100::1",  # discard-only
    "2001:db8::1",  # documentation
    "2002:7f00:1::1",  # 6to4 carrying 127.0.0.1
    "2002:c0a8:101::1",  # 6to4 carrying 192.168.1.1
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1
    "2001:2::1",  # benchmarking inside 2001::/23
    "3fff::1",
    "fc00::1",
    "fd12:3456::1",  # unique local
    "fe80::1",
    "fe80::1%eth0",
    "febf::1",
    "fec0::1",
    "ff02::1",
    "4000::1",  # outside 2000::/3
    "not-an-address",
    "",
    "2130706433",  # a host spelling, not an address: classified as not public
]

PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "100.63.255.255",  # just below CGNAT
    "100.128.0.1",  # just above CGNAT
    "172.15.255.255",
    "172.32.0.1",
    "192.167.255.255",
    "223.255.255.254",
    "2606:4700:4700::1111",
    "2a00:1450:4001:80b::200e",
    "[2606:4700:4700::1111]",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",  # NAT64 of 8.8.8.8
    "2002:808:808::1",  # 6to4 of 8.8.8.8
    "2001:0:4136:e378:8000:63bf:f7f7:f7f7",  # Teredo, client 8.8.8.8
]


@pytest.mark.parametrize("ip", NON_PUBLIC)
def test_non_public_addresses_are_rejected(ip: str) -> None:
    """Loopback, private, link-local, CGNAT, multicast, reserved, tunnelled forms: not public."""
    assert is_public_address(ip) is False


@pytest.mark.parametrize("ip", PUBLIC)
def test_public_addresses_are_accepted(ip: str) -> None:
    """Global unicast addresses, also when mapped or tunnelled from a public IPv4, are public."""
    assert is_public_address(ip) is True


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254"),
        ("[::1]", "::1"),
        ("::ffff:7f00:1", "::ffff:7f00:1"),
        ("shop.example", None),
        ("cafe.be", None),
        ("deadbeef", None),
        ("", None),
    ],
)
def test_literal_address_reads_every_numeric_spelling(host: str, expected: str | None) -> None:
    """Legacy IPv4 spellings that getaddrinfo accepts are recognised as addresses; names are not."""
    addr = literal_address(host)
    assert (str(addr) if addr is not None else None) == expected


@pytest.mark.parametrize(
    ("host", "allowed", "expected"),
    [
        ("shop.example", ["shop.example"], True),
        ("SHOP.Example", ["shop.example"], True),
        ("shop.example", ["Shop.Example."], True),
        ("shop.example.", ["shop.example"], True),
        ("www.shop.example", ["shop.example"], False),
        ("shop.example", ["www.shop.example"], False),
        ("evilshop.example", ["shop.example"], False),
        ("shop.example.evil", ["shop.example"], False),
        ("xn--bcher-kva.example", ["bücher.example"], True),
        ("bücher.example", ["xn--bcher-kva.example"], True),
        ("127.0.0.1", ["127.0.0.1"], True),
        ("::1", ["[::1]"], True),
        ("[0:0::1]", ["::1"], True),
        ("127.0.0.1", ["localhost"], False),
        ("shop.example", [], False),
        ("", ["shop.example"], False),
        ("shop.example", ["", "other.example", "shop.example"], True),
    ],
)
def test_host_allowed_matches_exact_hosts(host: str, allowed: list[str], expected: bool) -> None:
    """Hosts match ignoring case, a trailing dot, IDNA and IPv6 spelling; never by suffix."""
    assert host_allowed(host, allowed) is expected


@pytest.mark.parametrize(
    ("url", "reason_start"),
    [
        ("ftp://shop.example/x", "scheme not allowed"),
        ("file:///etc/passwd", "scheme not allowed"),
        ("javascript:alert(1)", "scheme not allowed"),
        ("http:///x", "URL has no host"),
        ("http://other.example/", "host not allowed"),
        ("http://shop.example@other.example/", "host not allowed"),
        ("http://127.0.0.1:8080/", "non-public address"),
        ("http://2130706433/", "non-public address"),
        ("http://0x7f.1/", "non-public address"),
        ("http://[::1]/", "non-public address"),
        ("http://[::ffff:127.0.0.1]/", "non-public address"),
        ("http://169.254.169.254/latest/meta-data/", "non-public address"),
    ],
)
def test_url_violation_names_the_broken_rule(url: str, reason_start: str) -> None:
    """Scheme, host and literal-address rules each produce a reason."""
    allowed = [
        "shop.example",
        "127.0.0.1",
        "2130706433",
        "0x7f.1",
        "::1",
        "::ffff:127.0.0.1",
        "169.254.169.254",
    ]
    reason = url_violation(URL(url), allowed, allow_private_networks=False)
    assert reason is not None
    assert reason.startswith(reason_start)


def test_url_violation_allows_allowed_public_host_on_any_port() -> None:
    """An allowed host name over http or https on any port passes the pre-connection check."""
    for url in ("http://shop.example/p/1", "https://SHOP.example:8443/p?id=1"):
        assert url_violation(URL(url), ["shop.example"], allow_private_networks=False) is None


def test_url_violation_lets_private_literals_through_when_allowed() -> None:
    """allow_private_networks=True lifts only the address rule, not the host rule."""
    assert (
        url_violation(URL("http://127.0.0.1/"), ["127.0.0.1"], allow_private_networks=True) is None
    )
    reason = url_violation(URL("http://10.0.0.1/"), ["127.0.0.1"], allow_private_networks=True)
    assert reason is not None and reason.startswith("host not allowed")


class _FixedResolver(AbstractResolver):
    """Answers every name with the given addresses (stands in for DNS, which this box lacks)."""

    def __init__(self, addresses: list[str]) -> None:
        self._addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host,
                host=a,
                port=port,
                family=socket.AF_INET6 if ":" in a else socket.AF_INET,
                proto=0,
                flags=0,
            )
            for a in self._addresses
        ]

    async def close(self) -> None:
        return None


async def test_resolver_passes_public_answers_through() -> None:
    """A name resolving only to public addresses is returned unchanged."""
    resolver = PublicOnlyResolver(_FixedResolver(["93.184.216.34", "2606:4700::1"]))
    results = await resolver.resolve("shop.example", 443)
    assert [r["host"] for r in results] == ["93.184.216.34", "2606:4700::1"]


@pytest.mark.parametrize("bad", ["127.0.0.1", "10.0.0.5", "169.254.169.254", "::1", "fe80::1"])
async def test_resolver_rejects_a_name_with_any_private_answer(bad: str) -> None:
    """One non-public answer among public ones rejects the whole name (no rebinding mix)."""
    resolver = PublicOnlyResolver(_FixedResolver(["93.184.216.34", bad]))
    with pytest.raises(NonPublicAddressError) as info:
        await resolver.resolve("shop.example", 80)
    assert info.value.address == bad


async def test_resolver_allows_private_answers_when_configured() -> None:
    """With allow_private_networks the resolver does not filter."""
    resolver = PublicOnlyResolver(_FixedResolver(["127.0.0.1"]), allow_private_networks=True)
    results = await resolver.resolve("localhost", 80)
    assert [r["host"] for r in results] == ["127.0.0.1"]


@pytest.mark.parametrize("name", ["localhost", "0x7f.1", "127.1"])
async def test_resolver_rejects_real_lookups_of_loopback_names(name: str) -> None:
    """Through the system resolver, localhost and numeric loopback spellings are refused."""
    resolver = PublicOnlyResolver(ThreadedResolver())
    with pytest.raises(NonPublicAddressError):
        await resolver.resolve(name, 80)
    await resolver.close()


async def test_resolver_turns_a_slow_lookup_into_an_os_error() -> None:
    """A lookup longer than timeout_s fails as an OSError that aiohttp reports as DNS failure."""

    class _Hanging(_FixedResolver):
        async def resolve(
            self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
        ) -> list[ResolveResult]:
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

    resolver = PublicOnlyResolver(_Hanging([]), timeout_s=0.05)
    with pytest.raises(OSError) as info:
        await resolver.resolve("shop.example", 80)
    assert not isinstance(info.value, TimeoutError)
