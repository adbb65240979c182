"""How :mod:`.batching` merges the operations of a batch: a run of consecutive operations
of one kind becomes one request, a large batch is cut into two halves that share no key,
and a merged versioned read is shared out among its callers, each owning its values.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from typing import Any

from .requests import Call, Op, Request

__all__ = [
    "RECORDS",
    "SPLIT_AT",
    "all_versioned_reads",
    "own_records",
    "request_for",
    "split_batch",
]


def request_for(run: list[Op], now: float) -> Request:
    """The one request that runs ``run`` (consecutive operations of one kind) at ``now``."""
    kind = run[0].kind
    if kind == "write":
        groups = [
            [
                (key, value, data, None if op.ttl is None else now + op.ttl)
                for key, value, data in op.rows
            ]
            for op in run
        ]
        return Request(kind, now, [], groups)
    if kind == "call" and len(run) > 1:
        # Versioned reads one after another: one read of all their keys.
        keys = list(dict.fromkeys(k for op in run for k in op.keys))
        return Request(kind, now, keys, [], Call(RECORDS, (keys,), "read"))
    if kind == "call":
        return Request(kind, now, list(run[0].keys), [], run[0].call)
    if len(run) == 1:
        return Request(kind, now, list(run[0].keys), [])
    return Request(kind, now, list(dict.fromkeys(k for op in run for k in op.keys)), [])


#: A batch of at least twice this many operations is split when two connections are free:
#: the halves then finish at different moments, so the callers of one prepare their next
#: operations while the database works on the other (Python and PostgreSQL overlap).
SPLIT_AT = 16


def split_batch(batch: list[Op], keys: set[str], room: int) -> list[tuple[list[Op], set[str]]]:
    """``batch`` (whose operations hold ``keys``) as it goes out with ``room`` batches free:
    whole, or in two halves that share no key, each with its own keys."""
    if room < 2 or len(batch) < 2 * SPLIT_AT:
        return [(batch, keys)]
    middle = len(batch) // 2
    first, second = batch[:middle], batch[middle:]
    first_keys = {key for op in first for key in op.keys}
    second_keys = {key for op in second for key in op.keys}
    if not first_keys.isdisjoint(second_keys):
        return [(batch, keys)]
    return [(first, first_keys), (second, second_keys)]


#: The versioned read (``get_many_records``): the one call merged with its neighbours.
RECORDS = "records"


def all_versioned_reads(run: list[Op], op: Op) -> bool:
    """Whether ``op`` and the calls of ``run`` are all versioned reads."""
    return (
        op.call is not None
        and op.call.name == RECORDS
        and run[0].call is not None
        and (run[0].call.name == RECORDS)
    )


def own_records(keys: Sequence[str], found: Any, given: set[str]) -> Any:
    """The records of ``keys`` out of a merged read, a record another caller was given
    copied (each caller owns the values it gets)."""
    mine = {}
    for key in keys:
        record = found.get(key)
        if record is None or key in mine:
            continue
        if key in given:
            record = dataclasses.replace(record, value=copy.deepcopy(record.value))
        given.add(key)
        mine[key] = record
    return mine
