"""Open/close cycles leave nothing behind: file descriptors, threads and memory stay flat.

Each cycle builds a store, uses it from the running loop and from the sync facade (which
runs on short-lived loops), and closes it. After a warm-up, further cycles must not grow
the process's open descriptors or threads, nor its traced memory beyond a small slack.
"""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import threading
import tracemalloc
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from prism_storage import Registry, SyncStore
from tests.support.stores import STORE_KINDS

# Long-running: left out of the default run, run by CI (`bash scripts/test.sh -m slow`).
pytestmark = pytest.mark.slow

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

        def in_a_worker_thread(key: str) -> object:
            # A sync caller on the orm store uses its own thread's Django connection, which
            # is the thread's to close, as after any ORM call (docs/orm.md); a worker that
            # did not would leave it to the garbage collector when the thread ends.
            try:
                return facade.get(key)
            finally:
                connections.close_all()

        assert await asyncio.to_thread(in_a_worker_thread, f"k{i % 5}") == {
            "i": i,
            "text": "x" * 200,
        }
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
        f"threads grew from {threads} to {threading.active_count()}"
    )
    # A few hundred bytes per cycle would be caches; a leaked client or loop is far more.
    assert grown < CYCLES * 2_000, f"memory grew by {grown} bytes in {CYCLES} cycles: {top}"


#: Run in a fresh interpreter: qdrant-client probes SQLite once per process, on the first
#: on-disk store, so only a new process shows whether that probe leaves a connection open.
EMBEDDED_QDRANT_SCRIPT = """
import asyncio, sqlite3, sys
opened = []
connect = sqlite3.connect
def recording_connect(*args, **kwargs):
    connection = connect(*args, **kwargs)
    opened.append(connection)
    return connection
sqlite3.connect = recording_connect
from prism_storage.backends.vector import VectorStorageBackend

async def main():
    store = VectorStorageBackend("qdrant", dimensions=3, path=sys.argv[1])
    await store.set("k", {"embedding": [0.1, 0.2, 0.3], "text": "hello"})
    assert (await store.get("k"))["text"] == "hello"
    await store.close()

asyncio.run(main())
still_open = 0
for connection in opened:
    try:
        connection.in_transaction
    except sqlite3.ProgrammingError:
        continue
    still_open += 1
print(len(opened), still_open)
"""


def test_embedded_qdrant_on_disk_leaves_no_sqlite_connection_open(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-W",
            "error::ResourceWarning",
            "-c",
            EMBEDDED_QDRANT_SCRIPT,
            str(tmp_path / "q"),
        ],
        capture_output=True,
        text=True,
        cwd=str(Path(__file__).resolve().parents[2]),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    opened, still_open = map(int, result.stdout.split())
    assert opened >= 1, "the embedded engine opened no SQLite connection: nothing was checked"
    assert still_open == 0, f"{still_open} of {opened} SQLite connections left open"
