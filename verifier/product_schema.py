"""Product objects: validation into the canonical JSON form, and rendering of product rows.

The canonical form is what ``products.data`` and ``products.pending`` hold and what every writer
(tag ingest, merchant API, import, page verification) produces: only the fields present (absent,
null and blank optional fields are omitted), strings trimmed, prices and
``discounted_percentage`` as normalised decimal strings (``"1234.50"``: at least two and at most
six decimals, never float arithmetic), ``availability`` as ``in_stock``/``out_of_stock``/
``discontinued`` plus the precise ``availability_detail``, ``categories`` as ``"/A/B"`` paths,
``currency`` always set (the merchant's by default), ``rating_value`` a JSON number (0..5, two
decimals), counts non-negative integers, keys listed as jsonb stores them (shorter names
first). Validation never raises on bad input: it returns :class:`FieldError` records, one per
offending field. A fast path decides plainly spelled objects of the tag's common shape in
straight-line code; everything else goes through the per-field normalisers of
:mod:`verifier.product_fields`, with the same result.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from verifier.product_fastpath import FLAT_CUSTOM_FIELDS, availability_of, fast_product
from verifier.product_fields import (
    ANY_HOST,
    NORMALISERS,
    FieldContext,
    InvalidField,
    format_decimal,
    normalize_price,
    parse_decimal,
    parse_product_id,
    to_decimal,
)
from verifier.product_urls import (
    host_set,
    normalize_host,
    url_host,
)

__all__ = [
    "FIELDS",
    "MATERIAL_FIELDS",
    "REQUIRED_FIELDS",
    "FieldError",
    "differs_materially",
    "format_decimal",
    "normalize_host",
    "normalize_price",
    "parse_decimal",
    "parse_product_id",
    "render_product",
    "url_host",
    "validate_product",
    "validate_product_generally",
]

FIELDS: tuple[str, ...] = (
    "product_id",
    "url",
    "name",
    "unit_price",
    "description",
    "image_url",
    "thumbnail_url",
    "availability",
    "brand",
    "categories",
    "tags",
    "unit_price_original",
    "unit_price_without_vat",
    "discounted_percentage",
    "discounted_amount",
    "currency",
    "rating_value",
    "rating_count",
    "review_count",
    "published_at",
    "priority",
    "related_product_ids",
    "custom_fields",
)
REQUIRED_FIELDS: tuple[str, ...] = ("product_id", "url", "name", "unit_price")
MATERIAL_FIELDS: tuple[str, ...] = ("unit_price", "availability", "name")


@dataclass(frozen=True, slots=True)
class FieldError:
    """Why one field of one product (``index`` in its batch, or None) was rejected."""

    index: int | None
    field: str | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        """The JSON form used in error details: ``{"index", "field", "message"}``."""
        return {"index": self.index, "field": self.field, "message": self.message}


_FLAT_CUSTOM_SET = frozenset(FLAT_CUSTOM_FIELDS)
# Field -> normaliser; availability (None here) also sets availability_detail.
_NORMALISER_BY_FIELD = {field: NORMALISERS.get(field) for field in FIELDS}
_FIELD_ORDER = {field: position for position, field in enumerate(FIELDS)}
# The canonical dict lists its keys as jsonb stores them (shorter first, then bytewise), however
# the object listed them: PostgreSQL then finds them sorted, which makes storing cheaper.
_KEY_ORDER = tuple(
    sorted((*FIELDS, "availability_detail"), key=lambda key: (len(key), key.encode()))
)


@functools.lru_cache(maxsize=1024)
def _context(hosts: tuple[str, ...]) -> FieldContext:
    return FieldContext(host_set(hosts))


def validate_product(
    obj: object,
    *,
    allowed_hosts: Sequence[str],
    default_currency: str,
    index: int | None = None,
    require_url_host: bool = True,
) -> tuple[dict[str, Any] | None, list[FieldError]]:
    """Check and normalise one product object: (canonical dict, []) or (None, errors)."""
    if type(obj) is dict:
        ctx = _context(tuple(allowed_hosts)) if require_url_host else ANY_HOST
        product = fast_product(obj, ctx, default_currency)
        if product is not None:
            return product, []
    return validate_product_generally(
        obj,
        allowed_hosts=allowed_hosts,
        default_currency=default_currency,
        index=index,
        require_url_host=require_url_host,
    )


def validate_product_generally(
    obj: object,
    *,
    allowed_hosts: Sequence[str],
    default_currency: str,
    index: int | None = None,
    require_url_host: bool = True,
) -> tuple[dict[str, Any] | None, list[FieldError]]:
    """:func:`validate_product` without its fast path (which must agree with this)."""
    if not isinstance(obj, dict):
        return None, [FieldError(index, None, "a product must be a JSON object")]
    ctx = _context(tuple(allowed_hosts)) if require_url_host else ANY_HOST
    if not _FLAT_CUSTOM_SET.isdisjoint(obj) and "custom_fields" not in obj:
        # The browser tag sends custom_field_1..3 as separate properties.
        obj = {**obj, "custom_fields": {key: obj.get(key) for key in FLAT_CUSTOM_FIELDS}}
    out: dict[str, Any] = {}
    errors: list[FieldError] = []
    # Walk the object rather than FIELDS: tags send a dozen fields out of 23.
    for field, value in obj.items():
        if value is None or value == "" or field not in _NORMALISER_BY_FIELD:
            continue
        normaliser = _NORMALISER_BY_FIELD[field]
        if normaliser is None:
            _availability(value, out, errors, index)
            continue
        try:
            normalised = normaliser(value, ctx)
        except InvalidField as exc:
            errors.append(FieldError(index, field, str(exc)))
            continue
        if normalised or normalised == 0:
            out[field] = normalised
        elif field in REQUIRED_FIELDS:
            errors.append(FieldError(index, field, "must not be empty"))
    for field in REQUIRED_FIELDS:
        if field not in out and not any(error.field == field for error in errors):
            errors.append(FieldError(index, field, "is required"))
    if errors:
        errors.sort(key=lambda error: _FIELD_ORDER.get(error.field or "", 0))
        return None, errors
    if "currency" not in out:
        out["currency"] = default_currency
    return {key: out[key] for key in _KEY_ORDER if key in out}, errors


def _availability(
    value: object, out: dict[str, Any], errors: list[FieldError], index: int | None
) -> None:
    if not isinstance(value, str):
        errors.append(FieldError(index, "availability", "must be a string such as InStock"))
        return
    if not value.strip():
        return
    availability, detail = availability_of(value)
    if availability is None:
        message = "must be InStock, OutOfStock, Discontinued or another schema.org availability"
        errors.append(FieldError(index, "availability", message))
        return
    out["availability"] = availability
    out["availability_detail"] = detail


# --- comparison and rendering ------------------------------------------------------------------


def same_price(a: object, b: object) -> bool:
    """Whether two price values are the same amount ("12.5" == "12.50"); unparsable: False."""
    if a == b:
        return True
    try:
        return to_decimal(a) == to_decimal(b)
    except InvalidField:
        return False


def differs_materially(verified: Mapping[str, Any], observed: Mapping[str, Any]) -> bool:
    """Whether observed data contradicts verified data on price, availability or name.

    A field the observation does not state is not a contradiction. ``sql/queries_ingest.sql``
    applies the same rule inside the ingest upsert.
    """
    name = observed.get("name")
    if name is not None and name != verified.get("name"):
        return True
    price = observed.get("unit_price")
    if price is not None and not same_price(price, verified.get("unit_price")):
        return True
    availability = observed.get("availability")
    return availability is not None and availability != verified.get("availability")


def _json_object(value: object) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, str | bytes):
        value = orjson.loads(value)
    return dict(value) if isinstance(value, Mapping) else None


def _timestamp(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def render_product(row: Mapping[str, Any]) -> dict[str, Any]:
    """The response object of a products row (asyncpg Record or dict of its columns)."""
    data = _json_object(row["data"]) or {}
    out: dict[str, Any] = {field: data[field] for field in FIELDS if field in data}
    status = row["status"]
    availability = row["availability"]
    checked_at = row["last_checked_at"]
    out.update(
        product_id=row["product_id"],
        url=row["url"],
        status=status,
        availability=availability,
        availability_detail=row["availability_detail"],
        usable=status == "verified" and availability == "in_stock",
        source=row["source"],
        first_seen_at=_timestamp(row["first_seen_at"]),
        updated_at=_timestamp(row["updated_at"]),
        verified_at=_timestamp(row["verified_at"]),
        last_verification=None
        if checked_at is None
        else {
            "at": _timestamp(checked_at),
            "outcome": row["last_outcome"],
            "http_status": row["last_http_status"],
            "error": row["last_error"],
        },
        pending_observation=_json_object(row["pending"]),
        pending_observed_at=_timestamp(row["pending_at"]),
    )
    return out
