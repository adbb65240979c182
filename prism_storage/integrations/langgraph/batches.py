"""Identical reads of one batch of a LangGraph store, executed once.

LangGraph's own stores run each distinct read of a batch once and hand its result to every
operation that asked for it. :class:`~.store.PrismStore` does the same, with two cautions
of its own: operations are identical only when they are so as JSON (``True`` and ``1``,
equal in Python, are not; an operation holding something JSON cannot write is never
merged), and every caller but the first gets its own copy of the result, so that one
caller changing an item it was handed never changes another's: the result is
snapshotted before anyone is handed it, and each repeat takes its copy in its own task
(copies made there live as long as their caller needs them, where copies made for all
at once would be many objects alive together, which the garbage collector scans).
"""

from __future__ import annotations

import copy
import json
import pickle
from collections.abc import Hashable
from typing import Any

from langgraph.store.base import GetOp, Item, ListNamespacesOp, Op, Result, SearchItem, SearchOp

__all__ = ["Snapshot", "repeated_reads"]


def repeated_reads(ops: list[Op]) -> dict[int, list[int]]:
    """``{position: positions of the later operations identical to it}`` for the reads of
    ``ops`` that are repeated. Gets are identical when they read the same item (whether
    they refresh its expiry is decided for each, where the items are read)."""
    first: dict[Hashable, int] = {}
    repeats: dict[int, list[int]] = {}
    for position, op in enumerate(ops):
        identity = _identity(op)
        if identity is None:
            continue
        earlier = first.setdefault(identity, position)
        if earlier != position:
            repeats.setdefault(earlier, []).append(position)
    return repeats


def _identity(op: Op) -> Hashable | None:
    """What makes two reads identical; ``None`` for a write, or a read never merged (one
    holding what JSON cannot write: a key that is no string, an object)."""
    try:
        if isinstance(op, GetOp):
            # Labels are strings (validated before), so plain equality is exact.
            return ("get", tuple(op.namespace), op.key) if type(op.key) is str else None
        if isinstance(op, SearchOp | ListNamespacesOp):
            return type(op).__name__, _OP_ENCODER.encode(op)
    except (TypeError, ValueError):
        pass
    return None


def _not_json(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not JSON")


# ``json.dumps`` with these options builds an encoder per call (a microsecond of each read).
_OP_ENCODER = json.JSONEncoder(sort_keys=True, default=_not_json)


class Snapshot:
    """A read's result as it was when read, for the repeats of the read: each takes a copy
    of its own (:meth:`take`) in its own task, when it is handed its result. The value of
    each item is pickled once, here, and unpickled per copy when the copy's value is first
    read (C code, several times faster than ``copy.deepcopy``); a value pickle refuses is
    deep-copied."""

    __slots__ = ("_many", "_parts")

    def __init__(self, result: Result) -> None:
        self._many = isinstance(result, list)
        parts: list[Any] = result if isinstance(result, list) else [result]
        self._parts = [
            (part, _freeze(part.value)) if isinstance(part, Item) else (part, None)
            for part in parts
        ]

    def take(self) -> Result:
        parts = [part if frozen is None else _thaw(part, frozen) for part, frozen in self._parts]
        return parts if self._many else parts[0]


def _freeze(value: dict[str, Any]) -> bytes | dict[str, Any]:
    try:
        return pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError):  # an object pickle refuses
        return copy.deepcopy(value)


def _thaw(item: Item, frozen: bytes | dict[str, Any]) -> Item:
    if not isinstance(frozen, bytes) or _VALUE_SLOT is None:
        value = _unpickled(frozen) if isinstance(frozen, bytes) else copy.deepcopy(frozen)
        if isinstance(item, SearchItem):
            return SearchItem(
                item.namespace, item.key, value, item.created_at, item.updated_at, item.score
            )
        return Item(
            namespace=item.namespace,
            key=item.key,
            value=value,
            created_at=item.created_at,
            updated_at=item.updated_at,
        )
    copied: LazyItem | LazySearchItem
    if isinstance(item, SearchItem):
        copied = LazySearchItem.__new__(LazySearchItem)
        copied.score = item.score
    else:
        copied = LazyItem.__new__(LazyItem)
    copied.namespace = item.namespace
    copied.key = item.key
    copied.created_at = item.created_at
    copied.updated_at = item.updated_at
    copied._frozen = frozen
    return copied


# The slot Item keeps its value in, which the copies below fill on first read. Should a
# release of LangGraph keep the value otherwise, copies are made whole instead.
_VALUE_SLOT: Any = Item.__dict__.get("value")
if _VALUE_SLOT is not None and not hasattr(_VALUE_SLOT, "__set__"):
    _VALUE_SLOT = None


def _unpickled(frozen: bytes) -> dict[str, Any]:
    # Unpickles only what _freeze pickled, never outside data.
    value: dict[str, Any] = pickle.loads(frozen)  # noqa: S301
    return value


def _read_value(item: Any) -> dict[str, Any]:
    frozen = item._frozen
    if frozen is not None:
        item._frozen = None
        _VALUE_SLOT.__set__(item, _unpickled(frozen))
    return _VALUE_SLOT.__get__(item)  # type: ignore[no-any-return]


def _write_value(item: Any, value: dict[str, Any]) -> None:
    item._frozen = None
    _VALUE_SLOT.__set__(item, value)


class LazyItem(Item):
    """An ``Item`` copied from a snapshot, whose value is unpickled when first read: a
    caller that reads only keys and namespaces pays for no copy."""

    __slots__ = ("_frozen",)
    _frozen: bytes | None
    value = property(_read_value, _write_value)


class LazySearchItem(SearchItem):
    """A ``SearchItem`` copied from a snapshot, its value unpickled when first read."""

    __slots__ = ("_frozen",)
    _frozen: bytes | None
    value = property(_read_value, _write_value)
