"""Tick batching for the ``orm`` backend: the operations that concurrent tasks issue while
the store is busy (or within one event-loop tick) go to the database together.

A :class:`Batcher` belongs to one event loop. Callers :meth:`~Batcher.submit` an
:class:`Op` and await its future; at the end of the loop tick the pending operations are
grouped, consecutive operations of the same kind into one :class:`Request` (a run of reads
becomes one ``key IN (...)`` select, a run of writes one multi-row upsert), and handed, in
call order, to an :class:`Executor` that talks to the database. Operations submitted while
batches are in flight form the next batch; an executor with room for several batches at
once (``capacity``) gets a new one only if it shares no key with those in flight.

Guarantees:

* call order: requests run in the order their operations were submitted; within a run of
  writes the last write of a key wins;
* isolation of failures: a write request that fails for a reason other than the database
  being unreachable is retried operation by operation, so a bad record fails only its own
  caller (``perform_sync``/``perform_async``); an unreachable database fails the whole batch;
* cancellation: a caller cancelled before its batch is sent is left out of it; a caller
  cancelled while its batch is in flight does not disturb the batch or the other callers.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

__all__ = ["Batcher", "Executor", "Op", "Request", "perform_async", "perform_sync"]

Kind = Literal["read", "exists", "write", "delete"]
#: A record to write: key, value (the dict), its JSON text, expiry timestamp or None.
Row = tuple[str, dict[str, Any], str, float | None]
#: What an executor returns for each request: a result, or the exception it raised.
Outcome = Any

ACTIONS: dict[str, str] = {"read": "read", "exists": "read", "write": "write", "delete": "delete"}


class Op:
    """One caller's operation: ``keys`` to read/check/delete, or ``rows`` to write."""

    __slots__ = ("future", "keys", "kind", "rows", "single", "ttl")

    def __init__(
        self,
        kind: Kind,
        future: asyncio.Future[Any],
        *,
        keys: Sequence[str] = (),
        rows: Sequence[tuple[str, dict[str, Any], str]] = (),
        ttl: float | None = None,
        single: bool = False,
    ) -> None:
        self.kind = kind
        self.future = future
        #: Every key the operation touches (for a write, those of its rows).
        self.keys = keys if kind != "write" else [row[0] for row in rows]
        self.rows = rows
        self.ttl = ttl
        #: The caller wants one value (``get``/``exists``) rather than a dict.
        self.single = single


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


class Executor(Protocol):
    """Runs requests against one database; one instance per batcher (so per event loop)."""

    async def run(self, requests: list[Request]) -> list[Outcome]:
        """Return one outcome per request: for ``read`` ``{key: payload}``, for ``exists``
        the set of keys present, else ``None``; a failed write request that held several
        operations yields a list of per-operation outcomes."""
        ...

    def unavailable(self, exc: BaseException) -> bool:
        """Whether ``exc`` means the database could not be reached (fails the batch)."""
        ...

    def take(self, payload: Any, first: bool) -> dict[str, Any]:
        """The caller's own copy of a read payload (``first``: no one took it yet)."""
        ...

    #: How many batches it can run at once (its connections).
    capacity: int

    async def close(self) -> None: ...

    def abandon(self) -> None:
        """Release resources without a running loop (the batcher's loop is closed)."""
        ...


def perform_sync(
    requests: list[Request], execute: Callable[[Request], Any], executor: Executor
) -> list[Outcome]:
    """Run requests in order, isolating failed writes (see the module doc); thread-bound."""
    outcomes: list[Outcome] = []
    for index, request in enumerate(requests):
        try:
            outcomes.append(execute(request))
        except Exception as exc:
            if executor.unavailable(exc):
                return outcomes + [exc] * (len(requests) - index)
            if request.kind != "write" or len(request.groups) == 1:
                outcomes.append(exc)
                continue
            isolated: list[Outcome] = []
            for single in request.split():
                try:
                    isolated.append(execute(single))
                except Exception as inner:
                    isolated.append(inner)
            outcomes.append(isolated)
    return outcomes


async def perform_async(
    requests: list[Request], execute: Callable[[Request], Awaitable[Any]], executor: Executor
) -> list[Outcome]:
    """The async twin of :func:`perform_sync`."""
    outcomes: list[Outcome] = []
    for index, request in enumerate(requests):
        try:
            outcomes.append(await execute(request))
        except Exception as exc:
            if executor.unavailable(exc):
                return outcomes + [exc] * (len(requests) - index)
            if request.kind != "write" or len(request.groups) == 1:
                outcomes.append(exc)
                continue
            isolated: list[Outcome] = []
            for single in request.split():
                try:
                    isolated.append(await execute(single))
                except Exception as inner:
                    isolated.append(inner)
            outcomes.append(isolated)
    return outcomes


#: Maps a driver exception to what the caller of an operation of ``kind`` receives.
ErrorMapper = Callable[[BaseException, Kind], BaseException]


class Batcher:
    """Merges the operations of one event loop's tasks into batches (see the module doc)."""

    def __init__(
        self, executor: Executor, clock: Callable[[], float], map_error: ErrorMapper
    ) -> None:
        self.executor = executor
        self._clock = clock
        self._map_error = map_error
        self._loop = asyncio.get_running_loop()
        self._pending: list[Op] = []
        self._dispatch_scheduled = False
        #: The keys of each batch in flight (batches in flight never share a key).
        self._busy: list[set[str]] = []
        self._flushes: set[asyncio.Task[None]] = set()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def new_future(self) -> asyncio.Future[Any]:
        return self._loop.create_future()

    async def submit(self, op: Op) -> Any:
        """Queue ``op`` and return its result (or raise its error)."""
        self._pending.append(op)
        if not self._dispatch_scheduled:
            # After the callbacks already due in this tick (the other callers), and in a
            # clean context: a batch serves every task of the loop, so it must not inherit
            # (and outlive) the context of the task that happened to start it.
            self._dispatch_scheduled = True
            self._loop.call_soon(self._dispatch, context=contextvars.Context())
        return await op.future

    async def close(self) -> None:
        """Let queued operations finish, then close the executor."""
        while self._flushes or self._pending:
            if self._flushes:
                await asyncio.wait(set(self._flushes))  # callers see the outcome, not close()
            else:
                await asyncio.sleep(0)  # a dispatch is due in this tick
        await self.executor.close()

    def _dispatch(self) -> None:
        """Send pending operations, in call order, while the executor has room.

        A batch may go out while others are in flight only if it touches none of their
        keys, so the operations on any one key always reach the database in call order.
        """
        self._dispatch_scheduled = False
        while self._pending and len(self._busy) < self.executor.capacity:
            busy = set().union(*self._busy)
            batch: list[Op] = []
            keys: set[str] = set()
            taken = 0
            for op in self._pending:
                if not op.future.done():  # a cancelled caller is left out
                    if busy and not busy.isdisjoint(op.keys):
                        break
                    batch.append(op)
                    keys.update(op.keys)
                taken += 1
            del self._pending[:taken]
            if not batch:
                if taken:
                    continue
                return  # the next operation waits for a batch in flight on its keys
            room = self.executor.capacity - len(self._busy)
            for part, part_keys in _split(batch, keys, room):
                self._busy.append(part_keys)
                task = self._loop.create_task(self._run(part, part_keys))
                self._flushes.add(task)

    async def _run(self, ops: list[Op], keys: set[str]) -> None:
        try:
            await self._flush(ops)
        except BaseException:
            for op in (*ops, *self._pending):
                op.future.cancel()
            self._pending.clear()
            raise
        finally:
            self._busy.remove(keys)
            self._flushes.discard(asyncio.current_task())  # type: ignore[arg-type,unused-ignore]
            if self._pending:
                self._dispatch()

    async def _flush(self, ops: list[Op]) -> None:
        live = [op for op in ops if not op.future.done()]
        if not live:
            return
        now = self._clock()
        runs: list[list[Op]] = []
        for op in live:
            if runs and runs[-1][0].kind == op.kind:
                runs[-1].append(op)
            else:
                runs.append([op])
        requests = [self._request(run, now) for run in runs]
        try:
            outcomes = await self.executor.run(requests)
        except Exception as exc:  # the executor itself failed: every caller learns why
            outcomes = [exc] * len(requests)
        for run, outcome in zip(runs, outcomes, strict=True):
            self._deliver(run, outcome)

    @staticmethod
    def _request(run: list[Op], now: float) -> Request:
        kind = run[0].kind
        if kind == "write":
            groups = [
                [(key, value, data, None if op.ttl is None else now + op.ttl)
                 for key, value, data in op.rows]
                for op in run
            ]
            return Request(kind, now, [], groups)
        if len(run) == 1:
            return Request(kind, now, list(run[0].keys), [])
        return Request(kind, now, list(dict.fromkeys(k for op in run for k in op.keys)), [])

    def _deliver(self, run: list[Op], outcome: Outcome) -> None:
        kind = run[0].kind
        if isinstance(outcome, BaseException):
            for op in run:
                self._fail(op, outcome)
        elif kind == "read":
            taken: set[str] = set()
            for op in run:
                if op.future.done():
                    continue
                try:
                    op.future.set_result(self._values(op, outcome, taken))
                except Exception as exc:  # a stored record that does not decode
                    op.future.set_exception(exc)
        elif kind == "exists":
            for op in run:
                if not op.future.done():
                    op.future.set_result(op.keys[0] in outcome)
        elif kind == "write" and isinstance(outcome, list):
            for op, result in zip(run, outcome, strict=True):
                if isinstance(result, BaseException):
                    self._fail(op, result)
                elif not op.future.done():
                    op.future.set_result(None)
        else:
            for op in run:
                if not op.future.done():
                    op.future.set_result(None)

    def _values(self, op: Op, found: dict[str, Any], taken: set[str]) -> Any:
        take = self.executor.take
        if op.single:
            key = op.keys[0]
            if key not in found:
                return None
            first = key not in taken
            taken.add(key)
            return take(found[key], first)
        values: dict[str, dict[str, Any]] = {}
        for key in op.keys:
            if key in found:
                values[key] = take(found[key], key not in taken)
                taken.add(key)
        return values

    def _fail(self, op: Op, exc: BaseException) -> None:
        if not op.future.done():
            op.future.set_exception(self._map_error(exc, op.kind))


#: A batch of at least twice this many operations is split when two connections are free:
#: the halves then finish at different moments, so the callers of one prepare their next
#: operations while the database works on the other (Python and PostgreSQL overlap).
SPLIT_AT = 16


def _split(batch: list[Op], keys: set[str], room: int) -> list[tuple[list[Op], set[str]]]:
    if room < 2 or len(batch) < 2 * SPLIT_AT:
        return [(batch, keys)]
    middle = len(batch) // 2
    first, second = batch[:middle], batch[middle:]
    first_keys = {key for op in first for key in op.keys}
    second_keys = {key for op in second for key in op.keys}
    if not first_keys.isdisjoint(second_keys):
        return [(batch, keys)]
    return [(first, first_keys), (second, second_keys)]
