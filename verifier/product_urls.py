"""Product URLs and merchant hosts: which URLs a product may have, and host comparison.

A product URL must be an absolute http(s) URL without credentials on one of the merchant's
allowed hosts (any port). Hosts compare in a normal form: lower case, no trailing dot, IDNA for
international names, the canonical spelling of IP literals.
"""

from __future__ import annotations

import functools
import re

from verifier import netguard

MAX_URL_CHARS = 2048

_UNSTORABLE_RE = re.compile("[\x00\ud800-\udfff]")
_URL_FORBIDDEN_RE = re.compile(r"[\x00-\x20\x7f\\]")
# Scheme and authority of an absolute http(s) URL; the authority ends where the path begins.
_HTTP_URL_RE = re.compile(r"(?i:https?)://([^/?#]+)(?:[/?#]|$)")
# The common case in one match: no credentials, spaces, control characters or backslashes.
_PLAIN_HTTP_URL_RE = re.compile(
    "(?i:https?)://([^/?#@\x00-\x20\x7f\\\\\ud800-\udfff]+)"
    "(?:[/?#][^\x00-\x20\x7f\\\\\ud800-\udfff]*)?"
)
# Printable ASCII but the space and the backslash; an authority also leaves out /?#@:[].
_PLAIN_CHARS = "".join(re.escape(chr(code)) for code in range(0x21, 0x7F) if chr(code) != "\\")
_PLAIN_AUTHORITY_CHARS = "".join(
    re.escape(chr(code)) for code in range(0x21, 0x7F) if chr(code) not in "\\/?#@:[]"
)
_PLAIN_HOST_RE = re.compile(r"[a-z0-9.-]+")
# host[:port] or [v6]:port, without credentials.
_AUTHORITY_RE = re.compile(r"(?:\[([0-9A-Fa-f:.]+)\]|([^:\[\]@]+))(?::([0-9]{0,5}))?")


@functools.lru_cache(maxsize=4096)
def normalize_host(host: str) -> str:
    """A host name or IP literal in the form used for comparisons (cached netguard form)."""
    return netguard.normalize_host(host)


@functools.lru_cache(maxsize=1024)
def host_set(hosts: tuple[str, ...]) -> frozenset[str]:
    """The normalised set of allowed hosts (cached: merchants reuse the same tuple)."""
    return frozenset(normalize_host(host) for host in hosts)


def _authority(url: str) -> str | None:
    match = _HTTP_URL_RE.match(url)
    return match.group(1) if match else None


@functools.lru_cache(maxsize=4096)
def _authority_host(authority: str) -> str | None:
    match = _AUTHORITY_RE.fullmatch(authority)
    if match is None or (match.group(3) and int(match.group(3)) > 65535):
        return None
    return normalize_host(match.group(1) or match.group(2))


@functools.lru_cache(maxsize=1024)
def plain_url_pattern(hosts: frozenset[str] | None) -> re.Pattern[str]:
    """A pattern whose full matches are URLs that ``check_http_url(url, hosts)`` returns as is.

    It knows only the common spelling (lower-case scheme, printable ASCII, no port, a host
    spelled as in ``hosts``): a URL it does not match may still be valid.
    """
    if hosts is None:
        authority = f"[{_PLAIN_AUTHORITY_CHARS}]+"
    else:
        # Only names that stay the same when normalised (IP literals and IDNs need the slow path).
        names = sorted(h for h in hosts if _PLAIN_HOST_RE.fullmatch(h) and normalize_host(h) == h)
        authority = f"(?:{'|'.join(map(re.escape, names))})" if names else "(?!)"
    return re.compile(f"https?://{authority}(?:[/?#][{_PLAIN_CHARS}]*)?")


def url_host(url: str) -> str | None:
    """The normalised host of an absolute http(s) URL, or None when it has none."""
    authority = _authority(url)
    return None if authority is None else _authority_host(authority)


def check_http_url(value: object, hosts: frozenset[str] | None) -> str:
    """An absolute http(s) URL on one of ``hosts`` (None: any host); raises ValueError."""
    if type(value) is str and len(value) <= MAX_URL_CHARS:
        match = _PLAIN_HTTP_URL_RE.fullmatch(value)
        if match is not None:
            host = _authority_host(match.group(1))
            if host is not None and (hosts is None or host in hosts):
                return value
    # The slow path finds the precise reason (or trims, or completes a protocol-relative URL).
    if not isinstance(value, str):
        raise ValueError("must be a string")
    text = value.strip()
    if len(text) > MAX_URL_CHARS:
        raise ValueError(f"must be at most {MAX_URL_CHARS} characters")
    if _UNSTORABLE_RE.search(text):
        raise ValueError("must not contain NUL or unpaired surrogate characters")
    if text.startswith("//"):
        text = "https:" + text
    if _URL_FORBIDDEN_RE.search(text):
        raise ValueError("must not contain spaces, backslashes or control characters")
    authority = _authority(text)
    if authority is None:
        raise ValueError("must be an absolute http(s) URL")
    if "@" in authority:
        raise ValueError("must not contain credentials")
    host = _authority_host(authority)
    if host is None:
        raise ValueError("must be an absolute http(s) URL with a valid host and port")
    if hosts is not None and host not in hosts:
        raise ValueError(f"host {host!r} is not one of the merchant's allowed hosts")
    return text
