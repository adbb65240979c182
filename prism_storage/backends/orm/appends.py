"""Appends of one batch merged into one operation.

64 tasks appending to lists each wait for their own statement, and on PostgreSQL for its
commit (a sync to disk): a run of consecutive ``append`` requests in a batch becomes one
``append_many`` call instead, which appends every caller's items, in call order, to each
list in one atomic operation (one statement on the PostgreSQL fast path, one transaction on
the ORM path). The end state is the one the appends would have made one by one, and each
caller's length follows from the merged one: the list's final length less the items that
later callers appended to it.

Appends merge when they share what applies to the whole list: the field, ``ttl`` and the
store's default (``max_items`` trims after each append, so appends that trim stay alone).
Appends to different keys reorder freely; those to one key keep their order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .requests import Call, Outcome, Request

__all__ = ["merge_appends"]

Expand = Callable[[list[Outcome]], list[Outcome]]


def _mergeable(call: Call | None) -> tuple[Any, ...] | None:
    """What appends must share to merge (field, ttl, default ttl), or ``None``."""
    if call is None or call.name != "append" or call.args[4] is not None:
        return None
    return (call.args[1], *call.args[5:])


def merge_appends(requests: list[Request]) -> tuple[list[Request], Expand]:
    """``requests`` with runs of mergeable appends merged, and the function that turns the
    outcomes of the merged requests into one per request given."""
    runs: list[list[Request]] = []
    for request in requests:
        shared = _mergeable(request.call)
        if shared is not None and runs and _mergeable(runs[-1][0].call) == shared:
            runs[-1].append(request)
        else:
            runs.append([request])
    if len(runs) == len(requests):
        return requests, lambda outcomes: outcomes
    return [_merged(run) for run in runs], lambda outcomes: _expand(runs, outcomes)


def _merged(run: list[Request]) -> Request:
    if len(run) == 1:
        return run[0]
    lists: dict[str, tuple[list[Any], list[str]]] = {}
    for request in run:
        assert request.call is not None
        key, _field, items, data = request.call.args[:4]
        merged_items, parts = lists.setdefault(key, ([], []))
        merged_items.extend(items)
        if data != "[]":
            parts.append(data[1:-1])
    first = run[0].call
    assert first is not None
    _key, field, _items, _data, _max, ttl, default_ttl = first.args
    entries = [(key, items, "[" + ",".join(parts) + "]") for key, (items, parts) in lists.items()]
    call = Call("append_many", (field, entries, ttl, default_ttl), first.action)
    return Request("call", run[0].now, list(lists), [], call)


def _expand(runs: list[list[Request]], outcomes: list[Outcome]) -> list[Outcome]:
    expanded: list[Outcome] = []
    for run, outcome in zip(runs, outcomes, strict=True):
        if len(run) == 1 or isinstance(outcome, BaseException):
            expanded.extend([outcome] * len(run))
            continue
        # ``outcome``: {key: the list's final length, or the error of that list}.
        later: dict[str, int] = {}
        lengths: list[Outcome] = []
        for request in reversed(run):
            assert request.call is not None
            key, _field, items = request.call.args[:3]
            final = outcome[key]
            if isinstance(final, BaseException):
                lengths.append(final)
                continue
            lengths.append(final - later.get(key, 0))
            later[key] = later.get(key, 0) + len(items)
        expanded.extend(reversed(lengths))
    return expanded
