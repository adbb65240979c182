"""The assumptions prism_storage.compat makes about asgiref's private state.

A failure here means an asgiref release changed what a compat function reads: update the
function named in the failure message (and this test) before anything else.
"""

from __future__ import annotations

import asyncio
import os
import threading

from asgiref.sync import SyncToAsync, async_to_sync, sync_to_async

from prism_storage.compat import outer_event_loop_running

UPDATE = "asgiref changed; update prism_storage.compat.outer_event_loop_running"


async def test_sync_to_async_records_the_outer_loop_where_compat_reads_it():
    loop = asyncio.get_running_loop()

    def inside() -> tuple[object, object]:
        threadlocal = SyncToAsync.threadlocal
        return (getattr(threadlocal, "main_event_loop", None),
                getattr(threadlocal, "main_event_loop_pid", None))

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

