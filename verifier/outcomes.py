"""The verification state machine, in one place: (product, fetch, parse) -> decision.

Pure: no IO, no clock reads beyond the ``now`` passed in. The engine applies the decision to the
database. Outcomes (INTERFACE.md): verified, not_modified, not_found, mismatch, unparseable,
blocked, fetch_error, rate_limited.

Rules worth knowing:
- A page that states no availability but renders the product counts as in stock (the shop
  serves it); the precise detail stays null.
- ``not_found`` (404/410 or a cn_product_not_found tag) discontinues the product, except that a
  sweep's first 404 is only recorded: a second fetch must confirm it before discontinuing.
- ``fetch_error`` and ``rate_limited`` are retried with jittered exponential backoff (or after
  the server's Retry-After, capped) up to
  ``max_attempts``; the last good data always stays.
- Tag data (the pending observation) is cleared once a verification confirmed it.
- ``content_sha256`` is the digest of the verified snapshot the page yields (data,
  availability, detail), not of the page's bytes: shop pages carry per-request tokens and
  counters, and what matters is whether the product changed. An identical digest on a
  verified product skips rewriting its data.
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, get_args

import orjson

from verifier.backoff import RandomSource, retry_delay_s
from verifier.fetcher import FetchResult
from verifier.parser_model import PageProduct, ParseResult
from verifier.product_fields import ANY_HOST, NORMALISERS, InvalidField, format_decimal
from verifier.product_schema import differs_materially, same_price
from verifier.records import record

# Fields whose changes the sync log records (the product object's own fields).
TRACKED_FIELDS = (
    "name",
    "unit_price",
    "currency",
    "availability",
    "availability_detail",
    "brand",
    "unit_price_original",
    "categories",
    "image_url",
    "url",
)
VerificationOutcome = Literal[
    "verified",
    "not_modified",
    "not_found",
    "mismatch",
    "unparseable",
    "blocked",
    "fetch_error",
    "rate_limited",
]
OUTCOMES: tuple[VerificationOutcome, ...] = get_args(VerificationOutcome)


@record
class ProductState:
    """What the engine knows about a product when its verification starts."""

    product_id: str
    url: str
    status: str
    availability: str | None
    data: Mapping[str, Any]
    pending: Mapping[str, Any] | None
    content_sha256: bytes | None
    not_found_count: int
    attempts: int  # verification attempts already made for this request (0 on the first)


@record
class Change:
    """One field that changed: the sync log's row."""

    field: str
    old: Any
    new: Any


@record
class Decision:
    """What to write after one verification attempt."""

    outcome: VerificationOutcome
    http_status: int | None
    error: str | None
    # Final: the request is finished; else retry after retry_in_s.
    final: bool = True
    retry_in_s: float | None = None
    # New verified snapshot (None: keep the stored data).
    data: dict[str, Any] | None = None
    status: str | None = None
    availability: str | None = None
    availability_detail: str | None = None
    clear_pending: bool = False
    content_sha256: bytes | None = None
    etag: str | None = None
    last_modified: str | None = None
    not_found_count: int = 0
    counts_as_failure: bool = False
    # The page's content is byte-identical to the last verified one: nothing to rewrite.
    unchanged_content: bool = False
    changes: tuple[Change, ...] = field(default_factory=tuple)


# Fields a page states that the snapshot takes (availability is decided separately).
_STATED_FIELDS = (
    "name",
    "unit_price",
    "currency",
    "brand",
    "description",
    "image_url",
    "thumbnail_url",
    "unit_price_original",
    "unit_price_without_vat",
    "discounted_percentage",
    "discounted_amount",
    "rating_value",
    "rating_count",
    "review_count",
    "published_at",
    "categories",
    "tags",
    "related_product_ids",
    "custom_fields",
)

_stated_values = operator.attrgetter(*_STATED_FIELDS)


def _snapshot(
    page: PageProduct, stored: Mapping[str, Any], state: ProductState, currency: str
) -> dict[str, Any]:
    """The verified snapshot: stored fields, overwritten by what the page states.

    The stored data is already canonical; each stated field goes through the same normaliser
    as every other source, and one the page states badly (e.g. a negative price) keeps the
    stored value rather than failing the verification.
    """
    snapshot = dict(stored)
    snapshot["product_id"] = state.product_id
    snapshot["url"] = state.url
    for name, value in zip(_STATED_FIELDS, _stated_values(page), strict=True):
        if not value and (value is None or isinstance(value, tuple | dict)):
            continue  # not stated (a Decimal zero or an empty string is)
        if isinstance(value, Decimal):
            # Canonical spelling first ("77.3" -> "77.30") so a stated price equal to the
            # stored one is recognised below; the normaliser still checks it otherwise.
            value = format_decimal(value) if value.is_finite() else str(value)
        elif isinstance(value, tuple):
            value = list(value)
        if value == snapshot.get(name):
            # Equal to the stored canonical value, hence canonical (normalising is idempotent):
            # the common case of a page that states what is stored.
            continue
        try:
            normalised = NORMALISERS[name](value, ANY_HOST)
        except InvalidField:
            continue
        if normalised or normalised == 0:
            snapshot[name] = normalised
    snapshot.setdefault("currency", currency)
    return snapshot


def _stored_snapshot(state: ProductState) -> dict[str, Any]:
    return {
        key: value
        for key, value in state.data.items()
        if key not in ("availability", "availability_detail")
    }


def content_digest(snapshot: Mapping[str, Any], availability: str, detail: str | None) -> bytes:
    """SHA-256 of what a verification stores: the snapshot (keys sorted) and availability."""
    encoded = orjson.dumps([snapshot, availability, detail], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(encoded).digest()


def _changes(
    old_data: Mapping[str, Any],
    new_data: Mapping[str, Any],
    old_status: str,
    new_status: str,
) -> tuple[Change, ...]:
    out = []
    if old_status != new_status:
        out.append(Change("status", old_status, new_status))
    for name in TRACKED_FIELDS:
        old, new = old_data.get(name), new_data.get(name)
        same = same_price(old, new) if name == "unit_price" and None not in (old, new) else False
        if old != new and not same:
            out.append(Change(name, old, new))
    return tuple(out)


def _page_id_matches(page: PageProduct, product_id: str) -> bool:
    stated = [v.strip() for v in (page.product_id, page.sku) if v and v.strip()]
    # A page without any id cannot contradict the product it was fetched for.
    return not stated or product_id.strip() in stated


@dataclass(frozen=True, slots=True)
class Policy:
    """Knobs of the state machine."""

    max_attempts: int = 5
    retry_base_s: float = 5.0
    retry_cap_s: float = 600.0
    confirm_not_found: bool = False  # True for sweeps: one 404 needs a second fetch


def _retry_in_s(
    attempt: int, retry_after_s: float | None, policy: Policy, rng: RandomSource
) -> float:
    """Delay before retry number ``attempt``: Retry-After when given, else jittered exponential."""
    if retry_after_s is not None:
        return min(max(retry_after_s, policy.retry_base_s), policy.retry_cap_s)
    return retry_delay_s(attempt, base_s=policy.retry_base_s, cap_s=policy.retry_cap_s, rng=rng)


def decide(
    state: ProductState,
    fetch: FetchResult,
    parsed: ParseResult | None,
    *,
    hosts: Sequence[str],
    currency: str,
    policy: Policy,
    rng: RandomSource,
) -> Decision:
    """Decide the outcome of one verification attempt (``rng`` jitters retry delays)."""
    status = fetch.http_status
    outcome = fetch.outcome
    if outcome == "fetch_error" or outcome == "rate_limited":  # retried up to the policy
        attempts = state.attempts + 1
        final = attempts >= policy.max_attempts
        delay = _retry_in_s(attempts, fetch.retry_after_s, policy, rng)
        return Decision(
            outcome,
            error=fetch.error,
            final=final,
            retry_in_s=None if final else delay,
            counts_as_failure=True,
            not_found_count=state.not_found_count,
            http_status=status,
        )
    if fetch.outcome == "blocked":
        return Decision(
            "blocked",
            error=fetch.error,
            counts_as_failure=True,
            not_found_count=state.not_found_count,
            http_status=status,
        )
    if fetch.outcome == "not_modified":
        return Decision(
            "not_modified",
            error=None,
            etag=fetch.etag,
            last_modified=fetch.last_modified,
            not_found_count=0,
            http_status=status,
        )
    gone = fetch.outcome == "not_found" or (parsed is not None and parsed.not_found)
    if gone:
        if policy.confirm_not_found and state.not_found_count == 0:
            # First sighting in a sweep: recorded, re-checked, nothing discontinued yet.
            return Decision(
                "not_found",
                error="not found once; waiting for confirmation",
                final=False,
                retry_in_s=policy.retry_base_s,
                not_found_count=1,
                http_status=status,
            )
        data = dict(state.data)
        return Decision(
            "not_found",
            error=None,
            data=data,
            status="verified",
            availability="discontinued",
            availability_detail="discontinued",
            clear_pending=True,
            not_found_count=state.not_found_count + 1,
            changes=_changes(
                {**state.data, "availability": state.availability},
                {**data, "availability": "discontinued"},
                state.status,
                "verified",
            ),
            http_status=status,
        )
    assert fetch.body is not None
    if parsed is None or parsed.product is None:
        return Decision(
            "unparseable",
            error="no cn_product_visited tag and no schema.org Product data",
            counts_as_failure=True,
            not_found_count=0,
            http_status=status,
        )
    page = parsed.product
    if not _page_id_matches(page, state.product_id):
        stated = page.product_id or page.sku
        return Decision(
            "mismatch",
            error=f"the page describes product {stated!r}",
            counts_as_failure=True,
            not_found_count=0,
            http_status=status,
        )
    availability = page.availability or (
        state.availability if state.status == "verified" and state.availability else "in_stock"
    )
    detail = page.availability_detail if page.availability else None
    stored = _stored_snapshot(state)
    snapshot = _snapshot(page, stored, state, currency)
    digest = content_digest(snapshot, availability, detail)
    observed = state.pending
    confirmed = observed is None or not differs_materially(
        {**snapshot, "availability": availability}, observed
    )
    if (
        state.status == "verified"
        and digest == state.content_sha256
        # The digest is that of the last verified page: a 404 or the merchant's API may have
        # changed the row since, and then the same page must write its data back.
        and availability == state.availability
        and snapshot == stored
    ):
        return Decision(
            "verified",
            error=None,
            unchanged_content=True,
            clear_pending=confirmed,
            content_sha256=digest,
            etag=fetch.etag,
            last_modified=fetch.last_modified,
            http_status=status,
        )
    return Decision(
        "verified",
        error=None,
        data=snapshot,
        status="verified",
        availability=availability,
        availability_detail=detail,
        clear_pending=confirmed,
        content_sha256=digest,
        etag=fetch.etag,
        last_modified=fetch.last_modified,
        not_found_count=0,
        changes=_changes(
            {**state.data, "availability": state.availability},
            {**snapshot, "availability": availability},
            state.status,
            "verified",
        ),
        http_status=status,
    )
