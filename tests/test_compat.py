"""The private internals of asgiref and Django that ``prism_storage.compat`` reads: these
tests fail loudly when a new release changes their shape or meaning."""

from __future__ import annotations

import asyncio
import threading

from asgiref.sync import AsyncToSync, async_to_sync, sync_to_async

from prism_storage.compat import sync_caller_waits


def test_async_to_sync_keeps_the_attributes_compat_reads():
    # ``executors`` is a per-thread (and per-context) local whose ``current`` is the
    # executor of a sync caller waiting in async_to_sync; ``loop_thread_executors`` maps
    # the loops asgiref runs on a sync caller's own thread to that caller's executor.
    assert hasattr(AsyncToSync, "executors"), "asgiref.sync.AsyncToSync.executors is gone"
    assert hasattr(AsyncToSync, "loop_thread_executors"), (
        "asgiref.sync.AsyncToSync.loop_thread_executors is gone")
    assert isinstance(AsyncToSync.loop_thread_executors, dict)
    AsyncToSync.executors.probe = 1  # a Local takes attributes of its own
    try:
        assert AsyncToSync.executors.probe == 1
    finally:
        del AsyncToSync.executors.probe


def test_a_plain_event_loop_serves_no_sync_caller():
    async def ask() -> bool:
        return sync_caller_waits()

    assert asyncio.run(ask()) is False


def test_code_called_through_async_to_sync_serves_a_sync_caller():
    seen: list[bool] = []

    async def ask() -> None:
        seen.append(sync_caller_waits())

    def sync_code() -> None:
        async_to_sync(ask)()

    # From a thread with no loop of its own (a sync view, a management command).
    worker = threading.Thread(target=sync_code)
    worker.start()
    worker.join()
    # From sync code that an event loop called through sync_to_async.
    asyncio.run(sync_to_async(sync_code, thread_sensitive=False)())
    assert seen == [True, True], (
        "asgiref no longer marks a sync caller waiting in async_to_sync as compat expects")


def test_thread_sensitive_work_then_runs_in_the_sync_callers_thread():
    # The behaviour the orm backend relies on when sync_caller_waits() is true: its
    # connection-thread work lands in the caller's own thread (its connection and
    # transaction).
    threads: list[int] = []

    async def hop() -> None:
        assert sync_caller_waits()
        await sync_to_async(lambda: threads.append(threading.get_ident()),
                            thread_sensitive=True)()

    def sync_code() -> None:
        threads.append(threading.get_ident())
        async_to_sync(hop)()

    worker = threading.Thread(target=sync_code)
    worker.start()
    worker.join()
    assert len(threads) == 2 and threads[0] == threads[1]
