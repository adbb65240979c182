"""Where the ORM path's blocking work runs: the thread that holds Django's connection.

:func:`on_connection_thread` is the one way the package hops there (batches and single
calls alike); :func:`serves_sync_caller` tells whether that thread is a sync caller's own,
blocked in ``async_to_sync`` (then the call must not be batched: it belongs to that caller's
connection and transaction).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import sync_to_async

from ...compat import sync_caller_waits

__all__ = ["on_connection_thread", "serves_sync_caller"]

P = ParamSpec("P")
T = TypeVar("T")


def on_connection_thread(function: Callable[P, T]) -> Callable[P, Awaitable[T]]:
    """``function`` as a coroutine function that runs it in the connection's thread.

    That is asgiref's thread-sensitive thread, or the sync caller's own thread when one
    waits in ``async_to_sync``: the thread Django's async ORM methods use too.
    """
    return sync_to_async(function, thread_sensitive=True)


def serves_sync_caller() -> bool:
    """Whether this coroutine serves sync code blocked in ``async_to_sync``.

    The answer holds for a task's whole life (it follows from the task's loop and the
    context it started with), so it is kept per task.
    """
    task = asyncio.current_task()
    found = _SYNC_CALLER.get(task) if task is not None else None
    if found is None:
        found = sync_caller_waits()
        if task is not None:
            _SYNC_CALLER[task] = found
    return found


_SYNC_CALLER: weakref.WeakKeyDictionary[asyncio.Task[Any], bool] = weakref.WeakKeyDictionary()
