"""The one metadata-filter language of ``search(..., filter=...)``, parsed once.

A filter is a dict over the value's top-level scalar fields, MongoDB-style::

    {"kind": "note"}                                  # implicit $eq
    {"score": {"$gte": 0.5, "$lt": 0.9}}              # several operators: all must hold
    {"$or": [{"kind": "note"}, {"tags_count": {"$in": [1, 2]}}]}

Operators: ``$eq $ne $in $nin $gt $gte $lt $lte $and $or``. ``$ne`` and ``$nin`` also
match records that lack the field. Range operators take numbers only; numbers compare as
numbers (``3 == 3.0``), and booleans are not numbers. Strings compared by a filter are at
most :data:`MAX_FILTER_STRING` characters, because longer strings are not indexed.

:func:`parse_filter` validates the whole filter before any I/O and returns a small tree
that each provider module translates to its engine's native filter.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Literal

from ...exceptions import InvalidValueError, UnsupportedOperationError

__all__ = [
    "MAX_FILTER_STRING",
    "And",
    "Compare",
    "Node",
    "Or",
    "Scalar",
    "filterable_fields",
    "parse_filter",
]

#: Top-level string fields longer than this are stored but not filterable.
MAX_FILTER_STRING = 1024
#: Field names a filter may use; other top-level fields are stored but not filterable.
FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
#: Field names the backend keeps for itself (and the vector, which is not metadata).
RESERVED_PREFIX = "_prism"
VECTOR_FIELD = "embedding"

Scalar = str | bool | float
Op = Literal["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin"]
_COMPARISONS = frozenset({"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin"})
_RANGES = frozenset({"$gt", "$gte", "$lt", "$lte"})


@dataclass(frozen=True)
class Compare:
    """``field <op> value``; ``value`` is a tuple of scalars for ``$in``/``$nin``."""

    field: str
    op: Op
    value: Scalar | tuple[Scalar, ...]


@dataclass(frozen=True)
class And:
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    parts: tuple[Node, ...]


Node = Compare | And | Or


def is_filterable_name(name: str) -> bool:
    return (
        FIELD_NAME.fullmatch(name) is not None
        and not name.startswith(RESERVED_PREFIX)
        and name != VECTOR_FIELD
    )


def _metadata_scalar(value: Any) -> Scalar | None:
    """The indexed form of a top-level field value, or ``None`` if it is not indexed."""
    kind = type(value)
    if kind is bool:
        return bool(value)
    if kind is int or kind is float:
        # Every engine compares numbers as float64; storing them so keeps them equal.
        number = float(value)
        return number if math.isfinite(number) else None
    if kind is str and len(value) <= MAX_FILTER_STRING:
        return str(value)
    return None


def filterable_fields(value: dict[str, Any]) -> dict[str, Scalar]:
    """The top-level fields of ``value`` that filters can use, in their indexed form."""
    fields: dict[str, Scalar] = {}
    for name, item in value.items():
        if is_filterable_name(name):
            scalar = _metadata_scalar(item)
            if scalar is not None:
                fields[name] = scalar
    return fields


def _operand(op: str, field: str, value: Any) -> Scalar:
    kind = type(value)
    if op in _RANGES:
        if kind not in (int, float) or not math.isfinite(value):
            raise InvalidValueError(
                f"filter: {field}.{op} takes a finite number, not {value!r}.", f"$.{field}"
            )
        return float(value)
    if kind is str:
        if len(value) > MAX_FILTER_STRING:
            raise InvalidValueError(
                f"filter: {field}.{op} compares a string longer than {MAX_FILTER_STRING} "
                "characters; such strings are not indexed.",
                f"$.{field}",
            )
        return str(value)
    if kind is bool:
        return bool(value)
    if kind in (int, float) and math.isfinite(value):
        return float(value)
    raise InvalidValueError(
        f"filter: {field}.{op} takes a str, number or bool, not {value!r}.", f"$.{field}"
    )


def _compare(field: str, op: str, value: Any) -> Compare:
    if op in ("$in", "$nin"):
        if type(value) is not list or not value:
            raise InvalidValueError(f"filter: {field}.{op} takes a non-empty list.", f"$.{field}")
        return Compare(field, op, tuple(_operand(op, field, v) for v in value))  # type: ignore[arg-type]
    return Compare(field, op, _operand(op, field, value))  # type: ignore[arg-type]


def _field(field: str, condition: Any) -> Node:
    if not is_filterable_name(field):
        raise InvalidValueError(
            f"filter: {field!r} is not a filterable field (top-level names matching "
            f"{FIELD_NAME.pattern}, not starting with {RESERVED_PREFIX!r}, not "
            f"{VECTOR_FIELD!r}).",
            "$",
        )
    if type(condition) is not dict:
        return _compare(field, "$eq", condition)
    if not condition:
        raise InvalidValueError(f"filter: {field} has an empty condition.", f"$.{field}")
    parts: list[Node] = []
    for op, operand in condition.items():
        if op not in _COMPARISONS:
            raise UnsupportedOperationError(
                f"filter: unsupported operator {op!r} on {field!r}; supported: "
                f"{', '.join(sorted(_COMPARISONS))}, $and, $or."
            )
        parts.append(_compare(field, op, operand))
    return parts[0] if len(parts) == 1 else And(tuple(parts))


def _node(spec: Any, depth: int = 0) -> Node:
    if type(spec) is not dict or not spec:
        raise InvalidValueError("filter: each condition must be a non-empty dict.", "$")
    if depth > 32:
        raise InvalidValueError("filter: nested deeper than 32 levels.", "$")
    parts: list[Node] = []
    for name, condition in spec.items():
        if type(name) is not str:
            raise InvalidValueError(f"filter: field names must be str, not {name!r}.", "$")
        if name in ("$and", "$or"):
            if type(condition) is not list or not condition:
                raise InvalidValueError(f"filter: {name} takes a non-empty list of dicts.", "$")
            children = tuple(_node(child, depth + 1) for child in condition)
            parts.append(And(children) if name == "$and" else Or(children))
        elif name.startswith("$"):
            raise UnsupportedOperationError(
                f"filter: unsupported operator {name!r}; supported at the top level: $and, $or."
            )
        else:
            parts.append(_field(name, condition))
    return parts[0] if len(parts) == 1 else And(tuple(parts))


def parse_filter(spec: dict[str, Any] | None) -> Node | None:
    """Validate a filter dict and return its tree (``None`` for no filter)."""
    if spec is None:
        return None
    return _node(spec)
