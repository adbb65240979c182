"""The ``filter`` of a LangGraph store search, with the semantics of LangGraph's
``InMemoryStore`` (which follow PostgreSQL's JSONB containment), so that moving an agent
from one store to the other changes no answer.

A filter maps top-level fields of the value to a condition: a plain value (equal; a
dict matches the fields it names, recursively; a list matches an equal list) or a dict
of operators ``$eq``, ``$ne``, ``$gt``, ``$gte``, ``$lt``, ``$lte`` (the order ones
compare numbers).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["containment_part", "matches"]

_ORDER: dict[str, Callable[[float, float], bool]] = {
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
}


def matches(value: Mapping[str, Any], filter: Mapping[str, Any]) -> bool:
    return all(_holds(value.get(field), wanted) for field, wanted in filter.items())


def containment_part(filter: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``filter`` split in two: the fields whose condition PostgreSQL's jsonb containment
    (``value @> {field: condition}``) decides exactly as :func:`matches` does, and the
    others. Both hold for a value when the filter does."""
    pushed: dict[str, Any] = {}
    rest: dict[str, Any] = {}
    for field, wanted in filter.items():
        (pushed if _contained_alike(wanted) else rest)[field] = wanted
    return pushed, rest


def _contained_alike(wanted: Any) -> bool:
    """Whether containment decides ``wanted`` as :func:`_holds` does. Not: ``None``
    (an absent field equals it here), booleans and the numbers 0 and 1 (``True == 1``
    here, not in JSON), lists (containment is a subset, not equality), operators."""
    if isinstance(wanted, str):
        return True
    if isinstance(wanted, bool):
        return False
    if isinstance(wanted, int | float):
        return math.isfinite(wanted) and wanted not in (0, 1)
    if isinstance(wanted, dict):
        return all(
            isinstance(name, str) and not name.startswith("$") and _contained_alike(value)
            for name, value in wanted.items()
        )
    return False


def _holds(actual: Any, wanted: Any) -> bool:
    if isinstance(wanted, dict):
        if any(name.startswith("$") for name in wanted):
            return all(_compare(actual, name, operand) for name, operand in wanted.items())
        return isinstance(actual, dict) and matches(actual, wanted)
    if isinstance(wanted, list | tuple):
        return (
            isinstance(actual, list | tuple)
            and len(actual) == len(wanted)
            and all(_holds(a, w) for a, w in zip(actual, wanted, strict=True))
        )
    return bool(actual == wanted)


def _compare(actual: Any, name: str, operand: Any) -> bool:
    if name == "$eq":
        return bool(actual == operand)
    if name == "$ne":
        return bool(actual != operand)
    if name in _ORDER:
        # A value that is not a number (or absent) does not match, where InMemoryStore
        # would raise from float(): one item of another shape must not fail a search.
        try:
            return _ORDER[name](float(actual), float(operand))
        except (TypeError, ValueError):
            return False
    raise ValueError(f"Unsupported operator: {name}")
