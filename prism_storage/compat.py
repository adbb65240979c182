"""The one place that reads private state of asgiref or Django.

Each function here stands in for a public API that does not exist. tests/test_compat.py
checks the assumptions each makes about the installed versions and fails loudly, naming
the function to update, when a release changes them.
"""

from __future__ import annotations

import asyncio
import os

from asgiref.sync import AsyncToSync, SyncToAsync

__all__ = ["outer_event_loop_running", "sync_caller_waits"]


def outer_event_loop_running() -> bool:
    """Whether ``async_to_sync`` called from this thread runs on an outer, long-lived loop.

    That is the case in sync code that an event loop reached through ``sync_to_async``
    (a sync view under an ASGI server); elsewhere ``async_to_sync`` starts a loop for the
    call, and clients bound to that loop must be closed before it ends. asgiref decides
    this from ``SyncToAsync.threadlocal`` and offers no public way to ask; the same
    attributes are read here, the same way.
    """
    threadlocal = SyncToAsync.threadlocal
    if getattr(threadlocal, "main_event_loop_pid", None) != os.getpid():
        return False
    loop = getattr(threadlocal, "main_event_loop", None)
    return loop is not None and loop.is_running()


def sync_caller_waits() -> bool:
    """Whether the running coroutine serves sync code blocked in ``async_to_sync``.

    asgiref then runs ``sync_to_async(thread_sensitive=True)`` work in that sync caller's
    thread (so on its database connection and inside its ``transaction.atomic``). asgiref
    decides this from ``AsyncToSync.executors.current`` (set while the coroutine runs in a
    thread of its own) and ``AsyncToSync.loop_thread_executors`` (the loops it runs on the
    caller's thread); no public API tells, so the same two attributes are read here.
    Must be called with a running event loop.
    """
    return (
        getattr(AsyncToSync.executors, "current", None) is not None
        or asyncio.get_running_loop() in AsyncToSync.loop_thread_executors
    )
