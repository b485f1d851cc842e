"""The verification state machine (verifier.outcomes.decide), without IO."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from tests.test_backoff import FixedRandom
from verifier.fetcher import FetchResult
from verifier.outcomes import Policy, ProductState, decide
from verifier.parser_model import PageProduct, ParseResult

URL = "https://shop.example/p/1"
HOSTS = ("shop.example",)
STORED = {
    "product_id": "1",
    "url": URL,
    "name": "Kettle",
    "unit_price": "20.00",
    "currency": "EUR",
}


def _state(**overrides: Any) -> ProductState:
    values: dict[str, Any] = {
        "product_id": "1",
        "url": URL,
        "status": "unverified",
        "availability": None,
        "data": STORED,
        "pending": None,
        "content_sha256": None,
        "not_found_count": 0,
        "attempts": 0,
    }
    values.update(overrides)
    return ProductState(**values)


def _fetch(outcome: str = "ok", status: int = 200, body: bytes = b"<html></html>") -> FetchResult:
    return FetchResult(
        outcome=outcome,
        http_status=status,
        url=URL,
        body=body if outcome == "ok" else None,
        content_type="text/html",
        etag='"v1"',
        last_modified=None,
        retry_after_s=None,
        error=None if outcome == "ok" else f"HTTP {status}",
        elapsed_s=0.01,
        bytes_read=len(body),
    )


def _page(price: str = "19.90", availability: str | None = "in_stock") -> ParseResult:
    product = PageProduct(
        source="tag",
        product_id="1",
        name="Kettle",
        url=URL,
        unit_price=Decimal(price),
        currency="EUR",
        availability=availability,
        availability_detail="InStock" if availability else None,
    )
    return ParseResult(not_found=False, product=product)


def _decide(state: ProductState, fetch: FetchResult, parsed: ParseResult | None, **kw: Any) -> Any:
    return decide(
        state,
        fetch,
        parsed,
        hosts=HOSTS,
        currency="EUR",
        policy=kw.get("policy", Policy()),
        rng=kw.get("rng", FixedRandom(0.5)),
    )


def test_page_data_becomes_the_verified_snapshot_and_the_change_is_logged() -> None:
    """A parsed page gives outcome verified, its price in the snapshot and a logged change."""
    decision = _decide(_state(), _fetch(), _page("19.90"))
    assert decision.outcome == "verified"
    assert decision.status == "verified"
    assert decision.data["unit_price"] == "19.90"
    assert decision.availability == "in_stock"
    fields = {change.field: (change.old, change.new) for change in decision.changes}
    assert fields["unit_price"] == ("20.00", "19.90")
    assert fields["status"] == ("unverified", "verified")


def test_same_product_on_a_different_page_is_unchanged_content() -> None:
    """The digest covers what the page states, not its bytes: new page bytes, same product."""
    first = _decide(_state(), _fetch(body=b"<html>token=abc</html>"), _page())
    verified = _state(
        status="verified",
        availability=first.availability,
        data=first.data,
        content_sha256=first.content_sha256,
    )
    again = _decide(verified, _fetch(body=b"<html>token=xyz</html>"), _page())
    assert again.outcome == "verified"
    assert again.unchanged_content
    assert again.data is None


def test_a_new_price_is_not_unchanged_content() -> None:
    """Any change of the stated product changes the digest and rewrites the snapshot."""
    first = _decide(_state(), _fetch(), _page("19.90"))
    verified = _state(
        status="verified",
        availability=first.availability,
        data=first.data,
        content_sha256=first.content_sha256,
    )
    for parsed in (_page("18.00"), _page("19.90", availability="out_of_stock")):
        again = _decide(verified, _fetch(), parsed)
        assert not again.unchanged_content
        assert again.content_sha256 != first.content_sha256
        assert again.data is not None


def test_unchanged_content_still_confirms_matching_tag_data() -> None:
    """Tag data equal to the unchanged page is cleared; contradicting tag data stays pending."""
    first = _decide(_state(), _fetch(), _page("19.90"))
    verified: dict[str, Any] = {
        "status": "verified",
        "availability": first.availability,
        "data": first.data,
        "content_sha256": first.content_sha256,
    }
    matching = _decide(_state(**verified, pending={"unit_price": "19.9"}), _fetch(), _page())
    assert matching.unchanged_content and matching.clear_pending
    other = _decide(_state(**verified, pending={"unit_price": "15.00"}), _fetch(), _page())
    assert other.unchanged_content and not other.clear_pending


def test_page_of_another_product_is_a_mismatch() -> None:
    """A page stating another product id is a mismatch and changes nothing."""
    parsed = ParseResult(
        not_found=False, product=PageProduct(source="tag", product_id="2", name="Other")
    )
    decision = _decide(_state(), _fetch(), parsed)
    assert decision.outcome == "mismatch"
    assert decision.data is None and decision.counts_as_failure


def test_first_404_in_a_sweep_waits_for_confirmation() -> None:
    """With confirm_not_found, one 404 is recorded and retried; the second discontinues."""
    policy = Policy(confirm_not_found=True)
    first = _decide(_state(), _fetch("not_found", 404), None, policy=policy)
    assert first.outcome == "not_found" and not first.final and first.data is None
    second = _decide(_state(not_found_count=1), _fetch("not_found", 404), None, policy=policy)
    assert second.final and second.availability == "discontinued"


def test_fetch_errors_retry_with_jittered_growing_delays_until_the_limit() -> None:
    """fetch_error is retried after base * 2**n jittered into its upper half, then final."""
    policy = Policy(max_attempts=3, retry_base_s=5.0, retry_cap_s=600.0)
    for draw, factor in ((0.0, 0.5), (0.999999, 1.0)):
        delays = []
        for attempts in range(3):
            decision = _decide(
                _state(attempts=attempts),
                _fetch("fetch_error", 500),
                None,
                policy=policy,
                rng=FixedRandom(draw),
            )
            delays.append(decision.retry_in_s)
        assert delays[0] == pytest.approx(5.0 * factor, rel=1e-5)
        assert delays[1] == pytest.approx(10.0 * factor, rel=1e-5)
        assert delays[2] is None
        assert decision.final and decision.data is None


def test_retry_after_is_honoured_within_the_policy_bounds() -> None:
    """A 429's Retry-After sets the retry delay, raised to the base and capped."""
    policy = Policy(max_attempts=5, retry_base_s=2.0, retry_cap_s=60.0)
    for retry_after, expected in ((30.0, 30.0), (0.5, 2.0), (3600.0, 60.0)):
        fetch = replace(_fetch("rate_limited", 429), retry_after_s=retry_after)
        decision = _decide(_state(), fetch, None, policy=policy)
        assert decision.outcome == "rate_limited" and not decision.final
        assert decision.retry_in_s == expected


def test_a_page_without_product_data_is_unparseable() -> None:
    """No product on the page: unparseable, stored data kept."""
    decision = _decide(_state(), _fetch(), ParseResult(not_found=False, product=None))
    assert decision.outcome == "unparseable" and decision.data is None


def test_same_page_after_a_404_restores_the_product() -> None:
    """Discontinued by a 404, then the unchanged page again: verified in stock, data written."""
    first = _decide(_state(), _fetch(), _page())
    verified: dict[str, Any] = {
        "status": "verified",
        "availability": first.availability,
        "data": first.data,
        "content_sha256": first.content_sha256,
    }
    gone = _decide(_state(**verified), _fetch("not_found", 404), None)
    assert gone.availability == "discontinued"
    # The 404 keeps the stored digest (it is no verification of a page).
    after_404 = _state(**{**verified, "availability": gone.availability, "data": gone.data})
    back = _decide(after_404, _fetch(), _page())
    assert not back.unchanged_content
    assert back.availability == "in_stock" and back.data is not None


def test_same_page_after_an_api_change_rewrites_the_page_data() -> None:
    """Data the merchant's API changed since the last page is overwritten by the same page."""
    first = _decide(_state(), _fetch(), _page("19.90"))
    edited = {**first.data, "unit_price": "25.00"}
    state = _state(
        status="verified",
        availability=first.availability,
        data=edited,
        content_sha256=first.content_sha256,
    )
    again = _decide(state, _fetch(), _page("19.90"))
    assert not again.unchanged_content
    assert again.data is not None and again.data["unit_price"] == "19.90"
