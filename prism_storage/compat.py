"""The one place that touches private internals of asgiref and Django.

Where no public API gives what the package needs, the access is isolated here, behind a
small function with a test (``tests/test_compat.py``) that fails loudly when the library
changes the shape of what is used.
"""

from __future__ import annotations

import asyncio

from asgiref.sync import AsyncToSync

__all__ = ["sync_caller_waits"]


def sync_caller_waits() -> bool:
    """Whether the running coroutine serves sync code blocked in ``async_to_sync``.

    asgiref then runs ``sync_to_async(thread_sensitive=True)`` work in that sync caller's
    thread (so on its database connection and inside its ``transaction.atomic``). asgiref
    decides this from ``AsyncToSync.executors.current`` (set while the coroutine runs in a
    thread of its own) and ``AsyncToSync.loop_thread_executors`` (the loops it runs on the
    caller's thread); no public API tells, so the same two attributes are read here.
    Must be called with a running event loop.
    """
    return (getattr(AsyncToSync.executors, "current", None) is not None
            or asyncio.get_running_loop() in AsyncToSync.loop_thread_executors)
