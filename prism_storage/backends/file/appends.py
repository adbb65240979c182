"""Appends to one key from concurrent tasks, written together (group commit).

An ``append`` takes the key's lock (:mod:`.locks`), reads the record, writes a temp file
and renames it: tasks appending to one hot key take turns for that whole step. While a
write of a key is in progress, :class:`AppendQueue` queues the appends to that key that
arrive on the same event loop; when the write ends, the queued calls are handed to the
worker thread as ONE batch, which the store applies under one lock acquisition: one read,
each call in arrival order, one write. Atomicity across processes does not change: the
lock is the same, and a batch is one read-modify-write under it.

The store applies each call of a batch as if it were alone (its own field, ``max_items``
and ``ttl``, one after another on the value read), so each caller gets its own length,
a call whose field is not a list fails alone (the value is unchanged by it), and a batch
in which no call succeeds writes nothing. A caller cancelled while queued is dropped
before its batch is handed over; once the batch is handed over, its items are written
(as a single append's are when its caller is cancelled during the write).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Append", "AppendQueue", "Outcome"]

#: What one call of a batch gets: the list's length after its items, or its error.
Outcome = int | BaseException


@dataclass(slots=True)
class Append:
    """One caller's ``append``, waiting for its batch."""

    field: str
    items: list[Any]
    max_items: int | None
    ttl: float | None
    future: asyncio.Future[int]


#: Starts the write of a batch of one key in a worker thread; its future gets one outcome
#: per call, in order.
StartWrite = Callable[[str, list[Append]], "asyncio.Future[list[Outcome]]"]


class AppendQueue:
    """The appends of one event loop: at most one batch per key in progress at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop, start_write: StartWrite) -> None:
        self._loop = loop
        self._start_write = start_write
        # key -> the calls queued behind its write in progress; a key is here exactly
        # while one of its batches is being written.
        self._queued: dict[str, list[Append]] = {}

    def append(
        self, key: str, field: str, items: list[Any], max_items: int | None, ttl: float | None
    ) -> asyncio.Future[int]:
        """Queue one ``append``; the future gets the list's length after its items."""
        call = Append(field, items, max_items, ttl, self._loop.create_future())
        queued = self._queued.get(key)
        if queued is not None:
            queued.append(call)
        else:
            self._queued[key] = []
            self._write(key, [call])
        return call.future

    def _write(self, key: str, batch: list[Append]) -> None:
        try:
            written = self._start_write(key, batch)
        except Exception as exc:  # e.g. the loop's executor is shut down
            self._settle(batch, [exc] * len(batch))
            self._next(key)
            return
        written.add_done_callback(lambda done: self._written(key, batch, done))

    def _written(self, key: str, batch: list[Append], done: asyncio.Future[list[Outcome]]) -> None:
        if done.cancelled():  # nothing cancels it today; its callers then are too
            for call in batch:
                call.future.cancel()
        elif (error := done.exception()) is not None:
            self._settle(batch, [error] * len(batch))
        else:
            self._settle(batch, done.result())
        self._next(key)

    def _next(self, key: str) -> None:
        """Hand the calls queued for ``key`` over as the next batch, or mark it idle."""
        batch = [call for call in self._queued[key] if not call.future.done()]
        if batch:
            self._queued[key] = []
            self._write(key, batch)
        else:
            del self._queued[key]

    @staticmethod
    def _settle(batch: list[Append], outcomes: list[Outcome]) -> None:
        for call, outcome in zip(batch, outcomes, strict=True):
            if call.future.done():  # its caller was cancelled during the write
                continue
            if isinstance(outcome, BaseException):
                call.future.set_exception(outcome)
            else:
                call.future.set_result(outcome)
