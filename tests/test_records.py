"""Records: the per-page values, read-only to mypy, equal and hashable by their fields."""

from __future__ import annotations

from dataclasses import replace

from verifier.outcomes import Change
from verifier.records import record


@record
class _Point:
    x: int
    y: int = 0


def test_records_compare_and_hash_by_their_fields() -> None:
    """Two records with the same fields are equal and one set member, as frozen ones were."""
    assert _Point(1, 2) == _Point(1, 2) and _Point(1, 2) != _Point(1, 3)
    assert len({_Point(1, 2), _Point(1, 2), _Point(2, 2)}) == 2
    assert {Change("name", "a", "b"): 1}[Change("name", "a", "b")] == 1


def test_replace_builds_a_new_record() -> None:
    """dataclasses.replace copies a record with some fields changed, the original untouched."""
    point = _Point(1)
    moved = replace(point, y=5)
    assert (point.y, moved.y, moved.x) == (0, 5, 1)
    assert not hasattr(point, "__dict__")  # slotted
