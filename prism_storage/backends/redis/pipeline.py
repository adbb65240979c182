"""Automatic pipelining for the ``redis`` backend's single-key commands.

The commands (``GET``, ``DEL``, ``EXISTS``, the ``EVALSHA`` of the write and read scripts)
that the tasks of one event loop issue in the same loop step are written to one
connection as one pipeline (no ``MULTI``): one
``send`` for all of them, one read of all the replies, one connection taken from the pool
instead of one each. Replies and errors go back to each caller; a reply that is an error
(``WRONGTYPE``...) fails only its own caller.

While callers come one at a time, a caller that finds nothing in flight sends its command
itself, as a plain client call: a single caller pays nothing for the pipelining. A command
carrying a large value is always sent on its own, and at most :data:`LARGE_AT_ONCE` of
them are in flight at once: a megabyte-sized transfer is bound by copying bytes, not by
waiting, and 64 of them interleaved on 64 connections made each ``get`` of a ~1 MB record
wait for all the others (about 1.5x fewer reads per second than two at a time, measured
in docs/redis.md). Two, so that one reply is decoded while the next one arrives. Once
calls overlap, they are pipelined until a pipeline goes out with a single command again.

Semantics, as with separate client calls: the commands of one pipeline run in call order;
a caller cancelled before its pipeline is sent is left out of it; a caller cancelled while
the pipeline is in flight stops waiting and the others are served. A pipeline that cannot
reach the server, or takes longer than ``timeout``, fails every caller in it.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

__all__ = ["LARGE_AT_ONCE", "Pipeliner"]

#: Commands carrying a large value in flight at once, per event loop.
LARGE_AT_ONCE = 2


class Pipeliner:
    """Pipelines the single-key commands of one event loop on ``client`` (a standalone
    ``redis.asyncio.Redis``)."""

    def __init__(self, client: Any, timeout: float) -> None:
        self.client = client
        self._timeout = timeout
        self._loop = asyncio.get_running_loop()
        self._queue: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []
        self._scheduled = False
        self._in_flight = 0
        #: The last command had no company: the next one may go on its own.
        self._solo = True
        self._flushes: set[asyncio.Task[None]] = set()
        self._large = asyncio.Semaphore(LARGE_AT_ONCE)

    async def call(self, *command: Any, alone: bool = False) -> Any:
        """Send ``command`` and return its reply (or raise its error); ``alone``: on its
        own connection even when others are pipelined (a large value gains nothing from
        company and would hold up the small commands of its pipeline)."""
        if alone:
            # The wait for a turn counts against the call's deadline, as a wait for a
            # pooled connection does.
            async with asyncio.timeout(self._timeout), self._large:
                return await self.client.execute_command(*command)
        if self._solo and not self._in_flight and not self._queue:
            self._in_flight += 1
            try:
                async with asyncio.timeout(self._timeout):
                    return await self.client.execute_command(*command)
            finally:
                self._in_flight -= 1
                self._solo = not self._queue
        future = self._loop.create_future()
        self._queue.append((command, future))
        if not self._scheduled:
            # After the steps already due in this loop step (the other callers'), in a
            # clean context: a pipeline serves every task of the loop.
            self._scheduled = True
            task = self._loop.create_task(self._flush(), context=contextvars.Context())
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)
        return await future

    async def _flush(self) -> None:
        self._scheduled = False
        batch = [(command, future) for command, future in self._queue if not future.done()]
        self._queue = []
        if not batch:
            return
        self._in_flight += 1
        try:
            pipe = self.client.pipeline(transaction=False)
            for command, _future in batch:
                pipe.execute_command(*command)
            try:
                async with asyncio.timeout(self._timeout):
                    replies = await pipe.execute(raise_on_error=False)
            except Exception as exc:  # unreachable, timed out: every caller learns why
                replies = [exc] * len(batch)
            for (_command, future), reply in zip(batch, replies, strict=True):
                if future.done():
                    continue  # its caller was cancelled meanwhile
                if isinstance(reply, Exception):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)
        except BaseException:
            for _command, future in batch:
                future.cancel()
            raise
        finally:
            self._in_flight -= 1
            self._solo = len(batch) == 1 and not self._queue

    async def close(self) -> None:
        """Let the pipelines in flight finish, then close the client."""
        while self._flushes:
            await asyncio.wait(set(self._flushes))
        await self.client.aclose()
