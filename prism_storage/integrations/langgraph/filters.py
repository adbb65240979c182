"""The ``filter`` of a LangGraph store search, with the semantics of LangGraph's
``InMemoryStore`` (which follow PostgreSQL's JSONB containment), so that moving an agent
from one store to the other changes no answer.

A filter maps top-level fields of the value to a condition: a plain value (equal; a
dict matches the fields it names, recursively; a list matches an equal list) or a dict
of operators ``$eq``, ``$ne``, ``$gt``, ``$gte``, ``$lt``, ``$lte`` (the order ones
compare numbers).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["matches"]

_ORDER: dict[str, Callable[[float, float], bool]] = {
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
}


def matches(value: Mapping[str, Any], filter: Mapping[str, Any]) -> bool:
    return all(_holds(value.get(field), wanted) for field, wanted in filter.items())


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
