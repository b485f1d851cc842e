"""Network policy for outgoing fetches: which hosts and which addresses may be reached.

The fetcher only talks to a merchant's allowed hosts, and only on public unicast addresses, so
that a product URL (or a redirect) cannot make the daemon probe loopback services, the cloud
metadata endpoint or the private network it runs in. Two layers enforce the address rule:
`literal_address` + `is_public_address` for URLs whose host is already an address (aiohttp skips
the resolver for those), and `PublicOnlyResolver` for names, checked after resolution and before
any connection is opened.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import re
import socket
from collections.abc import Callable, Sequence

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# Decides whether an address string may be connected to; swappable so tests can treat one
# loopback address as "the internet".
AddressPolicy = Callable[[str], bool]

# An explicit table rather than `ipaddress.is_global`: the stdlib tables changed between patch
# releases, and multicast counts as "global" there. Sources: the IANA IPv4/IPv6 special-purpose
# address registries; ranges that are only partly global are blocked whole.
_BLOCKED_V4 = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",  # "this network", unspecified
        "10.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, cloud metadata endpoints
        "172.16.0.0/12",
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation
        "192.88.99.0/24",  # deprecated 6to4 relay anycast
        "192.168.0.0/16",
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation
        "203.0.113.0/24",  # documentation
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, includes limited broadcast
    )
)

# Only 2000::/3 is allocated as global unicast; inside it these are not reachable on the
# internet. Mapped, NAT64, 6to4 and Teredo forms are judged by the IPv4 address they carry.
_GLOBAL_UNICAST_V6 = ipaddress.IPv6Network("2000::/3")
_BLOCKED_V6 = tuple(
    ipaddress.IPv6Network(n)
    for n in (
        "2001::/23",  # IETF protocol assignments (Teredo, 2001::/32, is handled before)
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation
    )
)
_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
_TEREDO = ipaddress.IPv6Network("2001::/32")

# Legacy numeric IPv4 spellings (2130706433, 0x7f.1, 0177.0.0.1, 127.1) that inet_aton and
# getaddrinfo still accept; only digits, hex prefixes and dots can form one.
_LEGACY_V4_CHARS = re.compile(r"^[0-9a-fx.]+$", re.IGNORECASE)


class NonPublicAddressError(OSError):
    """Raised by `PublicOnlyResolver` when a host name resolves to a non-public address."""

    def __init__(self, host: str, address: str) -> None:
        super().__init__(f"{host} resolves to non-public address {address}")
        self.host = host
        self.address = address


def _is_public_v4(addr: ipaddress.IPv4Address) -> bool:
    return not any(addr in net for net in _BLOCKED_V4)


def _is_public_v6(addr: ipaddress.IPv6Address) -> bool:
    mapped = addr.ipv4_mapped
    if mapped is not None:
        return _is_public_v4(mapped)
    if addr in _NAT64_WELL_KNOWN:
        return _is_public_v4(ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF))
    if addr.sixtofour is not None:
        return _is_public_v4(addr.sixtofour)
    if addr in _TEREDO:
        assert addr.teredo is not None
        server, client = addr.teredo
        return _is_public_v4(server) and _is_public_v4(client)
    # Everything outside 2000::/3 is blocked here: ::/128, ::1, IPv4-compatible ::/96,
    # 100::/64 discard, fc00::/7 ULA, fe80::/10 link-local, fec0::/10, ff00::/8 multicast.
    if addr not in _GLOBAL_UNICAST_V6:
        return False
    return not any(addr in net for net in _BLOCKED_V6)


def parse_address(ip: str) -> IPAddress | None:
    """Parse an IPv4/IPv6 address (brackets and an IPv6 zone allowed), or None."""
    text = ip.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def is_public_address(ip: str) -> bool:
    """Return True when `ip` is a globally routable unicast address (False if not an address)."""
    addr = parse_address(ip)
    if addr is None:
        return False
    if isinstance(addr, ipaddress.IPv4Address):
        return _is_public_v4(addr)
    return _is_public_v6(addr)


def literal_address(host: str) -> IPAddress | None:
    """Return the address a URL host denotes without DNS (incl. legacy IPv4 forms), or None."""
    addr = parse_address(host)
    if addr is not None:
        return addr
    text = host.rstrip(".")
    if not text or not _LEGACY_V4_CHARS.match(text):
        return None
    try:
        packed = socket.inet_aton(text)
    except OSError:
        return None
    return ipaddress.IPv4Address(packed)


def normalize_host(host: str) -> str:
    """Return the comparable form of a host: lower case, IDNA, no brackets or trailing dot."""
    text = host.strip()
    addr = parse_address(text)
    if addr is not None:
        return addr.compressed
    text = text.rstrip(".").lower()
    if not text.isascii():
        try:
            encoded = URL.build(scheme="http", host=text).raw_host
        except ValueError:
            return text
        if encoded:
            text = encoded
    return text


@functools.lru_cache(maxsize=4096)
def _allowed_set(allowed_hosts: tuple[str, ...]) -> frozenset[str]:
    # Merchants pass the same tuple for every product: normalise their hosts once.
    return frozenset(normalize_host(entry) for entry in allowed_hosts if entry)


# Every fetch checks its host: remember the few thousand hosts seen lately (pure functions).
_normalized_host = functools.lru_cache(maxsize=8192)(normalize_host)
_literal_address = functools.lru_cache(maxsize=8192)(literal_address)


def host_allowed(host: str, allowed_hosts: Sequence[str]) -> bool:
    """Return True when `host` is one of `allowed_hosts` (exact host match, any port)."""
    if not host:
        return False
    return _normalized_host(host) in _allowed_set(tuple(allowed_hosts))


def url_violation(
    url: URL,
    allowed_hosts: Sequence[str],
    *,
    allow_private_networks: bool,
    is_public: AddressPolicy = is_public_address,
) -> str | None:
    """Say why `url` may not be fetched (scheme, host, literal address), or None if it may."""
    if url.scheme not in ("http", "https"):
        return f"scheme not allowed: {url.scheme or '(none)'}"
    host = url.raw_host
    if not host:
        return "URL has no host"
    if not host_allowed(host, allowed_hosts):
        return f"host not allowed: {host}"
    if not allow_private_networks:
        addr = _literal_address(host)
        if addr is not None and not is_public(str(addr)):
            return f"non-public address: {addr}"
    return None


class PublicOnlyResolver(AbstractResolver):
    """Resolver that refuses names resolving to any non-public address.

    One non-public answer rejects the whole name, so a record set mixing a public and a
    loopback address cannot steer a connection inward. The lookup is bounded by
    `timeout_s` because aiohttp's socket-connect timeout does not cover resolution.
    """

    def __init__(
        self,
        inner: AbstractResolver | None = None,
        *,
        allow_private_networks: bool = False,
        timeout_s: float | None = None,
        is_public: AddressPolicy = is_public_address,
    ) -> None:
        self._inner = inner if inner is not None else DefaultResolver()
        self._allow_private_networks = allow_private_networks
        self._timeout_s = timeout_s
        self._is_public = is_public

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Resolve `host` and fail with NonPublicAddressError if any answer is non-public."""
        try:
            async with asyncio.timeout(self._timeout_s):
                results = await self._inner.resolve(host, port, family)
        except TimeoutError as exc:
            # An OSError with an errno makes aiohttp report it as a DNS failure.
            raise OSError(socket.EAI_AGAIN, f"resolving {host} timed out") from exc
        if not self._allow_private_networks:
            for result in results:
                if not self._is_public(result["host"]):
                    raise NonPublicAddressError(host, result["host"])
        return results

    async def close(self) -> None:
        """Close the wrapped resolver."""
        await self._inner.close()
