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
        if isinstance(op, SearchOp):
            plain = _plain_search(op)
            if plain is not None:
                return plain
            if not _string_keys(op.filter):
                return None  # JSON would write {1: x} as {"1": x}, which filters otherwise
        if isinstance(op, SearchOp | ListNamespacesOp):
            return type(op).__name__, _OP_ENCODER.encode(op)
    except (TypeError, ValueError):
        pass
    return None


def _string_keys(value: Any) -> bool:
    """Whether every object in ``value`` has only string keys."""
    if isinstance(value, dict):
        return all(type(k) is str and _string_keys(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(_string_keys(v) for v in value)
    return True


_PLAIN_FIELDS = frozenset({str, int})
_QUERIES = frozenset({str, type(None)})
_FLAGS = frozenset({bool, type(None)})


def _plain_search(op: SearchOp) -> Hashable | None:
    """The identity of the usual search, a third of the cost of its JSON: no filter, or
    one of strings and integers (exactly those types, so that two such searches are
    identical here exactly when they are as JSON); ``None`` for any other search."""
    filter = op.filter
    fields = None
    if filter is not None:
        if type(filter) is not dict:
            return None
        for name, wanted in filter.items():
            if type(name) is not str or type(wanted) not in _PLAIN_FIELDS:
                return None
        fields = frozenset(filter.items())
    if (
        type(op.limit) is not int
        or type(op.offset) is not int
        or type(op.query) not in _QUERIES
        or type(op.refresh_ttl) not in _FLAGS
    ):
        return None
    # Labels are strings (validated before), so tuple equality is JSON's.
    return (
        "search",
        tuple(op.namespace_prefix),
        fields,
        op.limit,
        op.offset,
        op.query,
        op.refresh_ttl,
    )


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
        # (part, its frozen value or None for a part that is no item, the lazy class its
        # copies are made of or None for copies made whole): decided once, for every copy.
        self._parts: list[tuple[Any, bytes | dict[str, Any] | None, type[Item] | None]] = []
        for part in parts:
            if not isinstance(part, Item):
                self._parts.append((part, None, None))
                continue
            frozen = _freeze(part.value)
            lazy = None
            if isinstance(frozen, bytes) and _VALUE_SLOT is not None:
                lazy = LazySearchItem if isinstance(part, SearchItem) else LazyItem
            self._parts.append((part, frozen, lazy))

    def take(self) -> Result:
        # Inlined, as this runs for every item of every repeat.
        copies: list[Any] = []
        for part, frozen, lazy in self._parts:
            if lazy is None:
                copies.append(part if frozen is None else _whole_copy(part, frozen))
                continue
            copied: Any = lazy.__new__(lazy)
            copied.namespace = part.namespace
            copied.key = part.key
            copied.created_at = part.created_at
            copied.updated_at = part.updated_at
            if lazy is LazySearchItem:
                copied.score = part.score
            copied._frozen = frozen
            copies.append(copied)
        return copies if self._many else copies[0]


def _freeze(value: dict[str, Any]) -> bytes | dict[str, Any]:
    try:
        return pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError):  # an object pickle refuses
        return copy.deepcopy(value)


def _whole_copy(item: Item, frozen: bytes | dict[str, Any]) -> Item:
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
