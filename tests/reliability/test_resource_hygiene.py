"""Open/close cycles leave nothing behind: file descriptors, threads and memory stay flat.

Each cycle builds a store, uses it from the running loop and from the sync facade (which
runs on short-lived loops), and closes it. After a warm-up, further cycles must not grow
the process's open descriptors or threads, nor its traced memory beyond a small slack.
"""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import tracemalloc

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from prism_storage import Registry, SyncStore
from tests.support.stores import STORE_KINDS

WARMUP, CYCLES = 15, 60
#: Allocations of in-process test servers (stand-ins for cloud APIs) are theirs, not ours.
SERVER_SIDE = [
    tracemalloc.Filter(False, "*/tests/standins/*"),
    tracemalloc.Filter(False, "*/http/server.py"),
    tracemalloc.Filter(False, "*/socketserver.py"),
    tracemalloc.Filter(False, "*/email/*"),
    tracemalloc.Filter(False, "*/urllib/parse.py"),
]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.django_db(transaction=True, databases=["default"])
@pytest.mark.parametrize("kind", sorted(STORE_KINDS))
async def test_open_close_cycles_do_not_leak(kind, store_config, close_db_connections):
    config = store_config(kind, "hygiene")

    async def cycle(i: int) -> None:
        store = Registry.create(config["BACKEND"], **config.get("OPTIONS", {}))
        await store.set(f"k{i % 5}", {"i": i, "text": "x" * 200})
        assert await store.get(f"k{i % 5}") == {"i": i, "text": "x" * 200}
        facade = SyncStore(store)
        assert await asyncio.to_thread(facade.get, f"k{i % 5}") == {"i": i, "text": "x" * 200}
        await store.close()

    async def settle() -> tracemalloc.Snapshot:
        await sync_to_async(connections.close_all, thread_sensitive=True)()
        gc.collect()
        return tracemalloc.take_snapshot().filter_traces(SERVER_SIDE)

    for i in range(WARMUP):
        await cycle(i)
    tracemalloc.start()
    await settle()
    # Two equal windows: a leak grows in both, while a one-off lazy allocation (an import, a
    # cache filled once, an executor pool reaching its size) lands in at most one of them.
    for i in range(CYCLES):
        await cycle(i)
    middle = await settle()
    fds, threads = open_fds(), threading.active_count()
    for i in range(CYCLES):
        await cycle(i)
    diffs = (await settle()).compare_to(middle, "filename")
    tracemalloc.stop()
    grown = sum(s.size_diff for s in diffs)
    top = "; ".join(str(d) for d in diffs[:5])
    assert open_fds() <= fds + 2, f"file descriptors grew from {fds} to {open_fds()}"
    # A leaked thread per cycle would add sixty; thread pools grow lazily up to their size
    # (asyncio's default executor to min(32, CPUs + 4)), so a few more may still appear.
    assert threading.active_count() <= threads + 8, (
        f"threads grew from {threads} to {threading.active_count()}")
    # A few hundred bytes per cycle would be caches; a leaked client or loop is far more.
    assert grown < CYCLES * 2_000, f"memory grew by {grown} bytes in {CYCLES} cycles: {top}"
