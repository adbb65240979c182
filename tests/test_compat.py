"""The assumptions prism_storage.compat makes about asgiref's private state.

A failure here means an asgiref release changed what a compat function reads: update the
function named in the failure message (and this test) before anything else.
"""

from __future__ import annotations

import asyncio
import os
import threading

from asgiref.sync import AsyncToSync, SyncToAsync, async_to_sync, sync_to_async

from prism_storage.compat import outer_event_loop_running, sync_caller_waits


def test_async_to_sync_keeps_the_attributes_compat_reads():
    # ``executors`` is a per-thread (and per-context) local whose ``current`` is the
    # executor of a sync caller waiting in async_to_sync; ``loop_thread_executors`` maps
    # the loops asgiref runs on a sync caller's own thread to that caller's executor.
    assert hasattr(AsyncToSync, "executors"), "asgiref.sync.AsyncToSync.executors is gone"
    assert hasattr(AsyncToSync, "loop_thread_executors"), (
        "asgiref.sync.AsyncToSync.loop_thread_executors is gone"
    )
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
        "asgiref no longer marks a sync caller waiting in async_to_sync as compat expects"
    )


def test_thread_sensitive_work_then_runs_in_the_sync_callers_thread():
    # The behaviour the orm backend relies on when sync_caller_waits() is true: its
    # connection-thread work lands in the caller's own thread (its connection and
    # transaction).
    threads: list[int] = []

    async def hop() -> None:
        assert sync_caller_waits()
        await sync_to_async(lambda: threads.append(threading.get_ident()), thread_sensitive=True)()

    def sync_code() -> None:
        threads.append(threading.get_ident())
        async_to_sync(hop)()

    worker = threading.Thread(target=sync_code)
    worker.start()
    worker.join()
    assert len(threads) == 2 and threads[0] == threads[1]


UPDATE = "asgiref changed; update prism_storage.compat.outer_event_loop_running"


async def test_sync_to_async_records_the_outer_loop_where_compat_reads_it():
    loop = asyncio.get_running_loop()

    def inside() -> tuple[object, object]:
        threadlocal = SyncToAsync.threadlocal
        return (
            getattr(threadlocal, "main_event_loop", None),
            getattr(threadlocal, "main_event_loop_pid", None),
        )

    assert isinstance(SyncToAsync.threadlocal, threading.local), UPDATE
    for thread_sensitive in (True, False):
        seen_loop, seen_pid = await sync_to_async(inside, thread_sensitive=thread_sensitive)()
        assert seen_loop is loop, UPDATE
        assert seen_pid == os.getpid(), UPDATE


async def test_true_where_async_to_sync_reuses_the_outer_loop():
    loop = asyncio.get_running_loop()

    async def where() -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    def sync_code() -> tuple[bool, asyncio.AbstractEventLoop]:
        return outer_event_loop_running(), async_to_sync(where)()

    for thread_sensitive in (True, False):
        running, ran_on = await sync_to_async(sync_code, thread_sensitive=thread_sensitive)()
        assert running is True, UPDATE
        assert ran_on is loop, UPDATE


def test_false_where_async_to_sync_starts_a_loop_of_its_own():
    loops: list[asyncio.AbstractEventLoop] = []

    async def where() -> None:
        loops.append(asyncio.get_running_loop())

    assert outer_event_loop_running() is False
    async_to_sync(where)()
    assert loops and loops[0].is_closed(), UPDATE  # the loop ended with the call

    results: list[bool] = []
    thread = threading.Thread(target=lambda: results.append(outer_event_loop_running()))
    thread.start()
    thread.join()
    assert results == [False]
