"""Merchants (tenants) and their API keys.

An API key reads ``cvk_<key_id>_<secret>``: ``key_id`` (16 hex digits) finds the row, the
256-bit ``secret`` is checked against its stored sha256 with a constant-time comparison. The
database never holds a secret, and the full key is shown once, when it is created.

Authentication is not cached: every request looks the key up (one primary-key read), so a
revoked key is refused from the next request on.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from verifier import netguard
from verifier.config import SLUG_RE
from verifier.database import Database
from verifier.exceptions import Conflict, InvalidInput, NotFound

KEY_PREFIX = "cvk_"
_KEY_RE = re.compile(r"^cvk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
_HOST_LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
# Compared against when the key id is unknown, so a miss costs the same as a wrong secret.
_DUMMY_SHA256 = hashlib.sha256(b"catalog-verifier: no such key").digest()


@dataclass(frozen=True, slots=True)
class Merchant:
    """One shop: the tenant every product, key and sweep belongs to."""

    id: int
    slug: str
    name: str
    hosts: tuple[str, ...]
    currency: str
    ingest_token: str
    created_at: datetime

    def as_dict(self) -> dict[str, Any]:
        """The public JSON form (the internal id stays inside)."""
        return {
            "slug": self.slug,
            "name": self.name,
            "hosts": list(self.hosts),
            "currency": self.currency,
            "ingest_token": self.ingest_token,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    """What is known about a key besides its secret."""

    key_id: str
    slug: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "key_id": self.key_id,
            "slug": self.slug,
            "created_at": self.created_at.isoformat(),
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


@dataclass(frozen=True, slots=True)
class NewApiKey:
    """A freshly created key; ``key`` is the only copy of the secret."""

    key_id: str
    key: str


def _merchant(row: Mapping[str, Any]) -> Merchant:
    return Merchant(
        id=row["id"],
        slug=row["slug"],
        name=row["name"],
        hosts=tuple(row["hosts"]),
        currency=row["currency"],
        ingest_token=row["ingest_token"],
        created_at=row["created_at"],
    )


def _key_info(row: Mapping[str, Any]) -> ApiKeyInfo:
    return ApiKeyInfo(
        key_id=row["key_id"],
        slug=row["slug"],
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
    )


def normalize_host(value: str) -> str:
    """A merchant host in canonical form (lower-case name or IP literal); raises InvalidInput."""
    ascii_host = netguard.normalize_host(value)
    if netguard.parse_address(ascii_host) is not None:
        return ascii_host
    labels = ascii_host.split(".")
    if len(ascii_host) > 253 or not all(_HOST_LABEL_RE.match(label) for label in labels):
        raise InvalidInput(f"host {value!r} is not a host name or IP address (no port, no path)")
    return ascii_host


def validate_merchant_fields(slug: str, hosts: Sequence[str], currency: str) -> tuple[str, ...]:
    """Check a new merchant's fields; returns its canonical hosts. Raises InvalidInput."""
    if not SLUG_RE.match(slug):
        raise InvalidInput(f"slug {slug!r} must match {SLUG_RE.pattern}")
    if not _CURRENCY_RE.match(currency):
        raise InvalidInput(f"currency {currency!r} must be an ISO 4217 code such as EUR")
    canonical = tuple(dict.fromkeys(normalize_host(host) for host in hosts))
    if not canonical:
        raise InvalidInput("a merchant needs at least one host")
    return canonical


def parse_api_key(key: str) -> tuple[str, str] | None:
    """Split ``cvk_<key_id>_<secret>`` into (key_id, secret), or None when malformed."""
    match = _KEY_RE.match(key)
    if match is None:
        return None
    return match.group(1), match.group(2)


def _secret_sha256(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("ascii")).digest()


class MerchantStore:
    """Creates and finds merchants."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self, slug: str, hosts: Sequence[str], *, name: str | None = None, currency: str = "EUR"
    ) -> Merchant:
        """Create a merchant with a random ingest token; Conflict when the slug is taken."""
        canonical_hosts = validate_merchant_fields(slug, hosts, currency)
        token = secrets.token_urlsafe(24)
        row = await self.db.pool.fetchrow(
            self.db.queries["insert_merchant"],
            slug,
            name or slug,
            list(canonical_hosts),
            currency,
            token,
        )
        if row is None:
            raise Conflict(f"merchant {slug!r} already exists")
        return _merchant(row)

    async def list(self) -> list[Merchant]:
        """Every merchant, by slug."""
        rows = await self.db.pool.fetch(self.db.queries["list_merchants"])
        return [_merchant(row) for row in rows]

    async def get(self, slug: str) -> Merchant:
        """The merchant with this slug; NotFound otherwise."""
        row = await self.db.pool.fetchrow(self.db.queries["get_merchant_by_slug"], slug)
        if row is None:
            raise NotFound(f"no merchant {slug!r}")
        return _merchant(row)

    async def get_by_id(self, merchant_id: int) -> Merchant:
        """The merchant with this internal id; NotFound otherwise."""
        row = await self.db.pool.fetchrow(self.db.queries["get_merchant_by_id"], merchant_id)
        if row is None:
            raise NotFound(f"no merchant with id {merchant_id}")
        return _merchant(row)


class ApiKeyStore:
    """Creates, lists, revokes and checks API keys."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, merchant: Merchant) -> NewApiKey:
        """A new key for ``merchant``; the returned secret is not stored anywhere."""
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        await self.db.pool.execute(
            self.db.queries["insert_api_key"], key_id, merchant.id, _secret_sha256(secret)
        )
        return NewApiKey(key_id=key_id, key=f"{KEY_PREFIX}{key_id}_{secret}")

    async def list(self, merchant: Merchant) -> list[ApiKeyInfo]:
        """A merchant's keys, newest first, revoked ones included."""
        rows = await self.db.pool.fetch(self.db.queries["list_api_keys"], merchant.id)
        return [_key_info(row) for row in rows]

    async def revoke(self, key_id: str) -> ApiKeyInfo:
        """Revoke a key at once (idempotent); NotFound when there is no such key."""
        row = await self.db.pool.fetchrow(self.db.queries["revoke_api_key"], key_id)
        if row is None:
            raise NotFound(f"no API key {key_id!r}")
        return _key_info(row)

    async def authenticate(self, key: str) -> Merchant | None:
        """The merchant of a live key, or None for a malformed, unknown, wrong or revoked key."""
        parsed = parse_api_key(key)
        if parsed is None:
            return None
        key_id, secret = parsed
        row = await self.db.pool.fetchrow(self.db.queries["get_api_key_for_auth"], key_id)
        stored = bytes(row["secret_sha256"]) if row is not None else _DUMMY_SHA256
        if not hmac.compare_digest(stored, _secret_sha256(secret)) or row is None:
            return None
        if row["last_used_at"] is None or _stale(row["last_used_at"]):
            await self.db.pool.execute(self.db.queries["touch_api_key"], key_id)
        return _merchant(row)


def _stale(last_used_at: datetime) -> bool:
    """Whether last_used_at is old enough to be worth a write (the SQL re-checks)."""
    return (datetime.now(last_used_at.tzinfo) - last_used_at).total_seconds() >= 60
