"""What the ``orm`` backend's batcher hands to an executor, and how an executor runs it.

An :class:`Op` is one caller's operation; a :class:`Request` is one statement's worth of
work built from a run of operations of one kind. :func:`perform` is the one rule for
running a list of requests, whichever connection runs them: in order, a write request that
fails for a reason other than the database being unreachable retried operation by
operation (so a bad record fails only its own caller), an unreachable database failing
every request left. It is written once, as a generator of the requests to run; the ORM
path drives it in the connection's thread (:func:`drive`), the fast path on its event loop
(:func:`drive_async`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "ACTIONS",
    "Call",
    "Kind",
    "Op",
    "Outcome",
    "Request",
    "Row",
    "drive",
    "drive_async",
    "perform",
]

#: ``call``: one versioned-record operation (:class:`Call`), never merged with another.
Kind = Literal["read", "exists", "write", "delete", "call"]
#: A record to write: key, value (the dict), its JSON text, expiry timestamp or None.
Row = tuple[str, dict[str, Any], str, float | None]
#: What an executor returns for each request: a result, or the exception it raised.
Outcome = Any

ACTIONS: dict[str, str] = {
    "read": "read",
    "exists": "read",
    "write": "write",
    "delete": "delete",
    "call": "write",
}


@dataclass(frozen=True)
class Call:
    """A versioned-record operation (``records``, ``put``, ``remove``, ``append``,
    ``pop``) and its arguments after the database alias and the time; each executor runs
    it as one atomic operation of its database (see :mod:`.locked`, :mod:`.pg_records`)."""

    name: str
    args: tuple[Any, ...]
    #: What the store could not do when the database is unreachable ("read", "append"...).
    action: str


class Op:
    """One caller's operation: ``keys`` to read/check/delete, or ``rows`` to write."""

    __slots__ = ("call", "future", "keys", "kind", "rows", "single", "ttl")

    def __init__(
        self,
        kind: Kind,
        future: asyncio.Future[Any],
        *,
        keys: Sequence[str] = (),
        rows: Sequence[tuple[str, dict[str, Any], str]] = (),
        ttl: float | None = None,
        single: bool = False,
        call: Call | None = None,
    ) -> None:
        self.kind = kind
        self.future = future
        #: Every key the operation touches (for a write, those of its rows).
        self.keys = keys if kind != "write" else [row[0] for row in rows]
        self.rows = rows
        self.ttl = ttl
        #: The caller wants one value (``get``/``exists``) rather than a dict.
        self.single = single
        self.call = call

    @property
    def action(self) -> str:
        """What the store could not do if the operation fails for want of a database."""
        return ACTIONS[self.kind] if self.call is None else self.call.action


@dataclass
class Request:
    """One statement's worth of work for an executor, built from a run of operations.

    ``keys`` for reads and deletes; for writes ``groups`` holds each operation's rows, in
    call order (the executor writes them as one statement, last row of a key winning).
    """

    kind: Kind
    now: float
    keys: list[str]
    groups: list[list[Row]]
    call: Call | None = None

    def rows(self) -> list[Row]:
        """Every row to write, one per key: the last written wins."""
        if len(self.groups) == 1:
            return self.groups[0]
        latest: dict[str, Row] = {}
        for group in self.groups:
            for row in group:
                latest.pop(row[0], None)
                latest[row[0]] = row
        return list(latest.values())

    def split(self) -> list[Request]:
        """One write request per operation (to isolate the one that fails)."""
        return [Request("write", self.now, [], [group]) for group in self.groups]


#: The requests still to run: each is sent its outcome (a result, or the exception it
#: raised); the generator's return value is one outcome per request given to it.
Plan = Generator[Request, Outcome, list[Outcome]]


def perform(requests: list[Request], unavailable: Callable[[BaseException], bool]) -> Plan:
    """Run ``requests`` in order, isolating failed writes (see the module doc); appends to
    one list that follow each other go as one (:func:`merge_appends`)."""
    merged, sizes = merge_appends(requests)
    outcomes = yield from _perform(merged, unavailable)
    return _expand(outcomes, sizes) if len(merged) < len(requests) else outcomes


def merge_appends(requests: list[Request]) -> tuple[list[Request], list[list[int]]]:
    """``requests`` with each run of consecutive ``append`` calls to the same list (same
    key and field, no ``max_items``, same expiry) merged into one appending all their
    items in call order; and, per request returned, the item counts of those it stands
    for. On a hot key, 64 appenders then cost one statement per batch rather than 64: the
    same end state, and each caller's length follows from the merged one's."""
    merged: list[Request] = []
    sizes: list[list[int]] = []
    for request in requests:
        call = request.call
        if call is not None and call.name == "append" and call.args[4] is None and merged:
            last = merged[-1].call
            if (
                last is not None
                and last.name == "append"
                and last.args[4] is None
                and (last.args[0], last.args[1], last.args[5:])
                == (call.args[0], call.args[1], call.args[5:])
            ):
                key, field, items, data, _max, *rest = last.args
                more = call.args[3][1:-1]
                joined = (
                    data if not more else f"[{more}]" if data == "[]" else f"{data[:-1]},{more}]"
                )
                args = (key, field, [*items, *call.args[2]], joined, None, *rest)
                merged[-1] = Request(
                    "call", request.now, request.keys, [], Call("append", args, call.action)
                )
                sizes[-1].append(len(call.args[2]))
                continue
        merged.append(request)
        sizes.append([len(call.args[2])] if call is not None and call.name == "append" else [0])
    return merged, sizes


def _expand(outcomes: list[Outcome], sizes: list[list[int]]) -> list[Outcome]:
    """One outcome per request :func:`merge_appends` was given."""
    expanded: list[Outcome] = []
    for outcome, counts in zip(outcomes, sizes, strict=True):
        if len(counts) == 1 or isinstance(outcome, BaseException):
            expanded.extend([outcome] * len(counts))
            continue
        later = sum(counts)
        for count in counts:
            later -= count
            expanded.append(outcome - later)  # the length once this caller's items were in
    return expanded


def _perform(requests: list[Request], unavailable: Callable[[BaseException], bool]) -> Plan:
    outcomes: list[Outcome] = []
    for index, request in enumerate(requests):
        outcome = yield request
        if not isinstance(outcome, Exception):
            outcomes.append(outcome)
            continue
        if unavailable(outcome):
            return outcomes + [outcome] * (len(requests) - index)
        if request.kind != "write" or len(request.groups) == 1:
            outcomes.append(outcome)
            continue
        isolated: list[Outcome] = []
        for single in request.split():
            isolated.append((yield single))
        outcomes.append(isolated)
    return outcomes


def drive(plan: Plan, execute: Callable[[Request], Any]) -> list[Outcome]:
    """Run ``plan`` with a blocking ``execute`` (in the thread that holds the connection)."""
    try:
        request = next(plan)
        while True:
            try:
                outcome = execute(request)
            except Exception as exc:
                outcome = exc
            request = plan.send(outcome)
    except StopIteration as done:
        outcomes: list[Outcome] = done.value
        return outcomes


async def drive_async(plan: Plan, execute: Callable[[Request], Awaitable[Any]]) -> list[Outcome]:
    """Run ``plan`` with a coroutine ``execute`` (on the event loop)."""
    try:
        request = next(plan)
        while True:
            try:
                outcome = await execute(request)
            except Exception as exc:
                outcome = exc
            request = plan.send(outcome)
    except StopIteration as done:
        outcomes: list[Outcome] = done.value
        return outcomes
