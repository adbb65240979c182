"""Tick batching for the ``orm`` backend: the operations that concurrent tasks issue while
the store is busy (or within one event-loop tick) go to the database together.

A :class:`Batcher` belongs to one event loop. Callers :meth:`~Batcher.submit` an
:class:`Op` and await its future; at the end of the loop tick the pending operations are
grouped, consecutive operations of the same kind into one :class:`Request` (a run of reads
becomes one ``key IN (...)`` select, a run of writes one multi-row upsert; a versioned-record
operation, kind ``call``, is a request of its own; see :mod:`.merging`), and handed, in
call order, to an :class:`Executor` that talks to the database. Operations submitted while
batches are in flight form the next batch; an executor with room for several batches at
once (its :class:`~.policy.BatchPolicy`'s ``capacity``) gets a new one only if it shares no
key with those in flight (and, if the policy says so, only of the kinds it lets overlap).

Guarantees:

* call order: requests run in the order their operations were submitted; within a run of
  writes the last write of a key wins;
* isolation of failures: a write request that fails for a reason other than the database
  being unreachable is retried operation by operation, so a bad record fails only its own
  caller (:func:`~.requests.perform`); an unreachable database fails the whole batch;
* cancellation: a caller cancelled before its batch is sent is left out of it; a caller
  cancelled while its batch is in flight does not disturb the batch or the other callers.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["Batcher", "ErrorMapper", "Executor"]


from .merging import all_versioned_reads, own_records, request_for, split_batch
from .policy import BatchPolicy
from .requests import Op, Outcome, Request


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

    #: How the batcher cuts batches for it; an executor may replace it as it learns.
    policy: BatchPolicy

    #: Whether it runs the ``keys`` call (a page of a listing); otherwise the store lists
    #: on its own ORM path.
    lists_keys: bool

    async def close(self) -> None: ...

    def abandon(self) -> None:
        """Release resources without a running loop (the batcher's loop is closed)."""
        ...


#: Maps a driver exception to what the caller of an operation receives, given what the
#: operation was doing (its :attr:`~.requests.Op.action`).
ErrorMapper = Callable[[BaseException, str], BaseException]


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
        #: Callers have been coming one at a time (the last operation had no company).
        self._solo = True
        #: The keys of the reads that callers run on their own (``direct_reads``), with
        #: how many such reads hold each.
        self._reading: dict[str, int] = {}

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def new_future(self) -> asyncio.Future[Any]:
        return self._loop.create_future()

    async def submit(self, op: Op) -> Any:
        """Queue ``op`` and return its result (or raise its error).

        With a ``direct`` policy, a caller that finds the store idle after operations
        that came one at a time runs its operation itself, without a driver task: a
        single caller pays no batching overhead. Operations that arrive meanwhile queue
        behind it and go out as one batch when it is done. With ``direct_reads`` too, a
        read runs itself whenever nothing waits and no batch in flight holds its keys;
        operations on those keys then wait for it.
        """
        policy = self.executor.policy
        if policy.direct and not self._pending:
            if self._solo and not self._busy and not self._reading:
                return await self._direct(op)
            if (
                op.kind == "read"
                and policy.direct_reads
                and not any(not keys.isdisjoint(op.keys) for keys in self._busy)
            ):
                return await self._read_alone(op)
        self._pending.append(op)
        if not self._dispatch_scheduled and len(self._busy) < policy.capacity:
            # A driver task starts after the steps already due in this tick (the other
            # callers'), so it sends them all. Its context is a clean one: it serves every
            # task of the loop, so it must not inherit (and outlive) the context of the
            # task that happened to start it. With every connection busy nothing is
            # scheduled: the driver that finishes first takes the pending operations.
            self._dispatch_scheduled = True
            task = self._loop.create_task(self._drive(None), context=contextvars.Context())
            self._flushes.add(task)
        return await op.future

    async def close(self) -> None:
        """Let queued operations finish, then close the executor."""
        while self._flushes or self._pending:
            if self._flushes:
                await asyncio.wait(set(self._flushes))  # callers see the outcome, not close()
            else:
                await asyncio.sleep(0)  # a driver is due in this tick
        await self.executor.close()

    def _take(self) -> list[tuple[list[Op], set[str]]]:
        """Take batches of pending operations, in call order, while the executor has room.

        A batch may go out while others are in flight only if it touches none of their
        keys, so the operations on any one key always reach the database in call order.
        Each batch taken is marked busy; the caller runs it.
        """
        parts: list[tuple[list[Op], set[str]]] = []
        policy = self.executor.policy
        read_limit, write_limit = policy.read_limit, policy.write_limit
        while self._pending and len(self._busy) < policy.capacity:
            busy = set().union(*self._busy, self._reading)
            kinds = policy.concurrent_kinds if self._busy else None
            batch: list[Op] = []
            keys: set[str] = set()
            taken = reads = written = 0
            for op in self._pending:
                if not op.future.done():  # a cancelled caller is left out
                    if busy and not busy.isdisjoint(op.keys):
                        break
                    if kinds is not None and op.kind not in kinds:
                        break
                    if op.kind == "read" and read_limit is not None:
                        if reads >= read_limit:
                            break
                        reads += 1
                    elif op.kind == "write" and write_limit is not None:
                        size = sum(len(row[2]) for row in op.rows)
                        if written and written + size > write_limit:
                            break
                        written += size
                    batch.append(op)
                    keys.update(op.keys)
                taken += 1
            del self._pending[:taken]
            if not batch:
                if taken:
                    continue
                break  # the next operation waits for a batch in flight on its keys
            room = policy.capacity - len(self._busy)
            if policy.concurrent_kinds is not None:
                room = 1  # halves of one batch would be in flight together
            for part in split_batch(batch, keys, room):
                self._busy.append(part[1])
                parts.append(part)
        return parts

    def _start(self, parts: list[tuple[list[Op], set[str]]]) -> tuple[list[Op], set[str]] | None:
        """Give every batch but the first its own driver; return the first."""
        for part in parts[1:]:
            task = self._loop.create_task(self._drive(part), context=contextvars.Context())
            self._flushes.add(task)
        return parts[0] if parts else None

    async def _direct(self, op: Op) -> Any:
        keys = set(op.keys)
        self._busy.append(keys)
        try:
            outcome = await self._run_one(op)
        finally:
            self._busy.remove(keys)
            self._solo = not self._pending
            if self._pending:
                self._dispatch_scheduled = True
                task = self._loop.create_task(self._drive(None), context=contextvars.Context())
                self._flushes.add(task)
        return self._result(op, outcome)

    async def _run_one(self, op: Op) -> Outcome:
        """Run ``op`` alone; its outcome (an exception is returned, not raised)."""
        try:
            request = request_for([op], self._clock())
            return (await self.executor.run([request]))[0]
        except Exception as exc:
            return exc

    async def _read_alone(self, op: Op) -> Any:
        reading = self._reading
        for key in op.keys:
            reading[key] = reading.get(key, 0) + 1
        try:
            outcome = await self._run_one(op)
        finally:
            for key in op.keys:
                left = reading[key] - 1
                if left:
                    reading[key] = left
                else:
                    del reading[key]
            if (
                self._pending
                and not self._dispatch_scheduled
                and len(self._busy) < self.executor.policy.capacity
            ):
                # An operation on this read's keys waited for it.
                self._dispatch_scheduled = True
                task = self._loop.create_task(self._drive(None), context=contextvars.Context())
                self._flushes.add(task)
        return self._result(op, outcome)

    def _result(self, op: Op, outcome: Outcome) -> Any:
        """What the caller of ``op`` that ran on its own gets (or raises)."""
        if isinstance(outcome, BaseException):
            raise self._map_error(outcome, op.action)
        if op.kind == "read":
            return self._values(op, outcome, set())
        if op.kind == "exists":
            return op.keys[0] in outcome
        if op.kind == "call":
            return outcome
        return None

    async def _drive(self, part: tuple[list[Op], set[str]] | None) -> None:
        """Run ``part`` (or, for a new driver, what is pending), then, while operations
        are pending and there is room, the next batches: one task sends batch after batch
        without a hop through the event loop in between."""
        try:
            if part is None:
                self._dispatch_scheduled = False
                part = self._start(self._take())
            while part is not None:
                ops, keys = part
                try:
                    await self._flush(ops)
                except BaseException:
                    for op in (*ops, *self._pending):
                        op.future.cancel()
                    self._pending.clear()
                    raise
                finally:
                    self._busy.remove(keys)
                    self._solo = len(ops) == 1 and not self._pending
                part = self._start(self._take()) if self._pending else None
        finally:
            self._flushes.discard(asyncio.current_task())  # type: ignore[arg-type,unused-ignore]

    async def _flush(self, ops: list[Op]) -> None:
        live = [op for op in ops if not op.future.done()]
        if not live:
            return
        now = self._clock()
        runs: list[list[Op]] = []
        for op in live:
            if (
                runs
                and runs[-1][0].kind == op.kind
                and (op.kind != "call" or all_versioned_reads(runs[-1], op))
            ):
                runs[-1].append(op)
            else:
                runs.append([op])
        requests = [request_for(run, now) for run in runs]
        try:
            outcomes = await self.executor.run(requests)
        except Exception as exc:  # the executor itself failed: every caller learns why
            outcomes = [exc] * len(requests)
        for run, outcome in zip(runs, outcomes, strict=True):
            self._deliver(run, outcome)

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
        elif kind == "call" and len(run) > 1:
            given: set[str] = set()
            for op in run:
                if not op.future.done():
                    op.future.set_result(own_records(op.keys, outcome, given))
        elif kind == "call":
            if not run[0].future.done():
                run[0].future.set_result(outcome)
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
            op.future.set_exception(self._map_error(exc, op.action))
