"""Reads that concurrent tasks start in one turn of an event loop, executed as one.

``BaseStore.aget``, ``asearch`` and ``alist_namespaces`` each send a batch of one
operation; LangGraph's own stores queue them and run what accumulated together. Here a
read waits for the end of the current loop turn, joined by those other tasks start
meanwhile, and the whole goes to the executor at once: for the store, one read of many
keys and each distinct search once (see :mod:`.batches`); for the checkpointer, one
``get_many`` for the channel values of many checkpoints.

Guarantees: each caller gets the results of its own operations, in order; an error of the
merged batch makes every call run again alone, so a bad operation fails only its own
caller; a cancelled caller is left out (or, once its batch runs, its result dropped). The
merged batch runs in a task with a clean context, as it serves every task of the loop.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["ConcurrentReads"]

T = TypeVar("T")
R = TypeVar("R")
_Call = tuple[list[T], "asyncio.Future[list[R]]"]


class ConcurrentReads(Generic[T, R]):
    """Gathers the reads of each event loop, one merged call per turn; ``execute`` gives
    one result per item read (operation or key)."""

    def __init__(self, execute: Callable[[list[T]], Awaitable[list[R]]]) -> None:
        self._execute = execute
        self._waiting: dict[asyncio.AbstractEventLoop, list[_Call[T, R]]] = {}
        self._running: set[asyncio.Task[None]] = set()

    async def run(self, ops: list[T]) -> list[R]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[R]] = loop.create_future()
        waiting = self._waiting.get(loop)
        if waiting is None:
            waiting = self._waiting[loop] = []
            # After the callbacks already due: tasks woken in this turn join the batch.
            loop.call_soon(self._start, loop)
        waiting.append((ops, future))
        return await future

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        calls = self._waiting.pop(loop)
        task = loop.create_task(self._run_together(calls), context=contextvars.Context())
        self._running.add(task)  # a task nobody references may be collected mid-run
        task.add_done_callback(self._running.discard)

    async def _run_together(self, calls: list[_Call[T, R]]) -> None:
        calls = [(ops, future) for ops, future in calls if not future.done()]
        if len(calls) == 1:
            await self._run_alone(*calls[0])
            return
        if not calls:
            return
        try:
            results = await self._execute([op for ops, _ in calls for op in ops])
        except asyncio.CancelledError:
            for _, future in calls:
                future.cancel()
            raise
        except Exception:
            # One call's bad operation must not fail the others: each runs on its own.
            await asyncio.gather(*(self._run_alone(ops, future) for ops, future in calls))
            return
        start = 0
        for ops, future in calls:
            if not future.done():
                future.set_result(results[start : start + len(ops)])
            start += len(ops)

    async def _run_alone(self, ops: list[T], future: asyncio.Future[list[R]]) -> None:
        try:
            results = await self._execute(ops)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as error:
            if not future.done():
                future.set_exception(error)
            return
        if not future.done():
            future.set_result(results)
