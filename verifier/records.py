"""``record``: the dataclass of the values created for every verified page.

A page's verification creates about ten small immutable values (the job, the fetch result, the
parsed product, the decision...). ``@dataclass(frozen=True)`` builds each field with an
``object.__setattr__`` call, five times the cost of a plain assignment: about 10 us per page,
2% of the engine's CPU. A ``record`` is a slotted dataclass that the type checker holds
read-only (``frozen_default``: assigning to a field is a mypy error, which CI runs) and that
assigns its fields plainly when built. It hashes as a frozen dataclass does (by its fields).
"""

from __future__ import annotations

import dataclasses
from typing import TypeVar, dataclass_transform

T = TypeVar("T")


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field, dataclasses.Field))
def record(cls: type[T]) -> type[T]:
    """A slotted dataclass, read-only to the type checker (see the module docstring)."""
    return dataclasses.dataclass(slots=True, unsafe_hash=True)(cls)
