"""Run the file store's blocking calls off the event loop, many calls per thread hop.

``asyncio.to_thread`` pays for one executor hand-off and one thread wake-up each way per
call (tens of µs on a small VM), which is more than a whole small-file read or write on
a warm filesystem. :class:`BatchedThreadRunner` queues the calls of one event loop and
lets a few drain workers in the loop's default executor take them one after another: a
worker that finds more calls queued runs them without another hand-off, hands the results
back a few at a time, and waits a moment for the next call before it leaves. Each call
still runs whole in one worker thread; calls of concurrent tasks may run in parallel on
different workers, as with ``to_thread``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["BatchedThreadRunner"]

#: Drain workers at once: enough to overlap a write stalled on a busy disk.
MAX_WORKERS = 4
#: A worker hands back results when it holds RESULT_BATCH of them, when RESULT_DELAY
#: seconds have passed since the first of them started, or when the queue is empty.
RESULT_BATCH = 8
RESULT_DELAY = 0.0002
#: Seconds an idle worker waits for the next call before it leaves: a caller that awaits
#: one call and then makes the next is served without a new hand-off to the executor.
LINGER = 0.001

_Call = tuple["asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]
_Outcome = tuple["asyncio.Future[Any]", Any, BaseException | None]


class BatchedThreadRunner:
    """Runs blocking calls for one event loop: ``await runner.run(fn, *args)``.

    Like ``to_thread``, a cancelled caller stops waiting but its call still runs to the
    end. Unlike it, context variables are not copied into the worker.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()  # guards _queue, _workers and _idle
        self._more = threading.Condition(self._lock)
        self._queue: deque[_Call] = deque()
        self._workers = 0
        self._idle = 0

    def run(self, function: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """Queue ``function(*args)``; the returned future gets its result or exception."""
        future = self._loop.create_future()
        with self._lock:
            self._queue.append((future, function, args))
            if self._idle:
                self._more.notify()
            start = self._workers < min(MAX_WORKERS, len(self._queue))
            if start:
                self._workers += 1
        if start:
            try:
                self._loop.run_in_executor(None, self._drain)
            except RuntimeError as exc:  # the executor is shut down
                with self._lock:
                    self._workers -= 1
                    self._queue.remove((future, function, args))
                raise exc from None
        return future

    def _drain(self) -> None:
        """Worker thread: run queued calls until the queue is empty."""
        done: list[_Outcome] = []
        held_since = 0.0
        while True:
            with self._lock:
                if not self._queue and not done:
                    self._idle += 1
                    self._more.wait(LINGER)
                    self._idle -= 1
                    if not self._queue:
                        self._workers -= 1
                        return
                call = self._queue.popleft() if self._queue else None
            if call is None:
                # Hand back what is done, then look again before leaving.
                self._loop.call_soon_threadsafe(self._settle, done)
                done = []
                continue
            future, function, args = call
            if not done:
                held_since = time.perf_counter()
            try:
                done.append((future, function(*args), None))
            except BaseException as exc:  # handed to the caller, as to_thread does
                done.append((future, None, exc))
            if len(done) >= RESULT_BATCH or time.perf_counter() - held_since > RESULT_DELAY:
                self._loop.call_soon_threadsafe(self._settle, done)
                done = []

    @staticmethod
    def _settle(done: list[_Outcome]) -> None:
        for future, result, exc in done:
            if future.done():  # the caller was cancelled
                continue
            if exc is None:
                future.set_result(result)
            else:
                future.set_exception(exc)
