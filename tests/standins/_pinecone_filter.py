"""Pinecone's metadata filter language, as the Pinecone test stand-in evaluates it.

A subset of MongoDB's operators, as Pinecone documents them: ``$eq $ne $gt $gte $lt $lte
$in $nin $exists`` on a field, ``$and $or`` over a list of filters, and ``{"field": value}``
as shorthand for ``$eq``. Numbers compare as numbers (ints and floats alike; booleans are
not numbers). A list-of-strings metadata value matches ``$eq``/``$in`` when any element
does, and ``$ne``/``$nin`` only when no element does. ``$ne`` and ``$nin`` also match
records that lack the field, as in MongoDB. Anything else is a :class:`FilterError`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

MAX_IN_VALUES = 10_000

Metadata = Mapping[str, Any]
Predicate = Callable[[Metadata], bool]


class FilterError(ValueError):
    """The filter is not valid Pinecone filter syntax (answered with a 400)."""


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_scalar(value: object) -> bool:
    return isinstance(value, str | bool) or _is_number(value)


def _equal(stored: object, wanted: object) -> bool:
    if _is_number(stored) and _is_number(wanted):
        return float(stored) == float(wanted)  # type: ignore[arg-type]
    return type(stored) is type(wanted) and stored == wanted


def _any_equal(stored: object, wanted: object) -> bool:
    if isinstance(stored, list):
        return any(_equal(element, wanted) for element in stored)
    return _equal(stored, wanted)


def _field_predicate(field: str, operator: str, operand: Any) -> Predicate:
    if operator in ("$eq", "$ne"):
        if not _is_scalar(operand):
            raise FilterError(f"{operator} on {field!r} needs a string, number or boolean")
        if operator == "$eq":
            return lambda md: field in md and _any_equal(md[field], operand)
        return lambda md: field not in md or not _any_equal(md[field], operand)
    if operator in ("$gt", "$gte", "$lt", "$lte"):
        if not _is_number(operand):
            raise FilterError(f"{operator} on {field!r} needs a number, got {operand!r}")
        bound = float(operand)
        compare: Callable[[float], bool] = {
            "$gt": lambda v: v > bound,
            "$gte": lambda v: v >= bound,
            "$lt": lambda v: v < bound,
            "$lte": lambda v: v <= bound,
        }[operator]
        return lambda md: _is_number(md.get(field)) and compare(float(md[field]))
    if operator in ("$in", "$nin"):
        if not isinstance(operand, list) or not all(_is_scalar(v) for v in operand):
            raise FilterError(f"{operator} on {field!r} needs a list of strings or numbers")
        if len(operand) > MAX_IN_VALUES:
            raise FilterError(f"{operator} accepts at most {MAX_IN_VALUES} values")
        values = list(operand)

        def contains(md: Metadata) -> bool:
            return field in md and any(_any_equal(md[field], v) for v in values)

        if operator == "$in":
            return contains
        return lambda md: not contains(md)
    if operator == "$exists":
        if not isinstance(operand, bool):
            raise FilterError(f"$exists on {field!r} needs true or false")
        return lambda md: (field in md) is operand
    raise FilterError(f"{operator} is not a valid operator")


def _field_clause(field: str, condition: Any) -> Predicate:
    if field.startswith("$"):
        raise FilterError(f"{field} is not a valid operator")
    if not isinstance(condition, dict):
        return _field_predicate(field, "$eq", condition)
    if not condition:
        raise FilterError(f"empty condition for field {field!r}")
    parts = [_field_predicate(field, op, operand) for op, operand in condition.items()]
    return lambda md: all(part(md) for part in parts)


def _logical_clause(operator: str, operand: Any) -> Predicate:
    if not isinstance(operand, list) or not operand:
        raise FilterError(f"{operator} needs a non-empty list of filters")
    parts = [compile_filter(sub) for sub in operand]
    if operator == "$and":
        return lambda md: all(part(md) for part in parts)
    return lambda md: any(part(md) for part in parts)


def compile_filter(expression: Any) -> Predicate:
    """Turn a Pinecone filter expression into a predicate over a record's metadata.

    Raises :class:`FilterError` for anything Pinecone would reject as a bad filter.
    """
    if not isinstance(expression, dict):
        raise FilterError("a filter must be a JSON object")
    parts: list[Predicate] = []
    for key, value in expression.items():
        if key in ("$and", "$or"):
            parts.append(_logical_clause(key, value))
        else:
            parts.append(_field_clause(key, value))
    return lambda md: all(part(md) for part in parts)
