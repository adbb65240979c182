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
    several lists that follow each other go as one (:func:`.appends.merge_appends`)."""
    from .appends import merge_appends  # here: .appends builds the requests of this module

    merged, expand = merge_appends(requests)
    outcomes = yield from _perform(merged, unavailable)
    return expand(outcomes)


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
