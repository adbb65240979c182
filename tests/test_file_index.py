"""The file store's key index: ordered pages, stale and expired rows, rebuilds, locking."""

from __future__ import annotations

import asyncio
import fcntl
import gc
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import weakref
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from prism_storage import FileStorageBackend
from prism_storage.backends.file.handles import _IndexConnection
from prism_storage.backends.file.index import INDEX_NAME, LOCK_NAME, _upper_bound
from prism_storage.backends.file.locks import LOCKS_DIR
from prism_storage.backends.file.names import file_name as _file_name
from prism_storage.exceptions import BackendUnavailableError

ROOT = Path(__file__).resolve().parents[1]
KEYS = [
    "a",
    "A",
    "a/b",
    "a/c",
    "ab",
    "b",
    "z",
    "Z",
    "é",
    "e\u0301",
    "日本語",
    "日本",
    "🤖",
    "🤖/1",
    "user/1",
    "user/10",
    "user/2",
    "x" * 300,
    "🤖" * 400,
    "\uffff",
    "\U0010ffff",
    "\U0010ffff\U0010ffff",
    "\ud7ff",
    "\ue000",
]


def _index_rows(directory: Path) -> dict[str, str]:
    conn = sqlite3.connect(directory / INDEX_NAME)
    try:
        return dict(conn.execute("SELECT key, name FROM keys").fetchall())
    finally:
        conn.close()


async def _all_keys(store: FileStorageBackend, prefix: str = "", page: int = 3) -> list[str]:
    return [key async for key in store.iter_keys(prefix, page_size=page)]


async def test_pages_follow_str_order_with_prefixes_and_cursors(tmp_path):
    store = FileStorageBackend(data_dir=tmp_path)
    await store.set_many({key: {"k": key} for key in KEYS[::2]})
    for key in KEYS[1::2]:
        await store.set(key, {"k": key})
    assert any(_file_name(k).startswith("h") for k in KEYS)
    assert await _all_keys(store) == sorted(KEYS)
    for prefix in ["a", "a/", "日本", "🤖", "user/1", "\U0010ffff", "\ud7ff", "nothing"]:
        expected = sorted(k for k in KEYS if k.startswith(prefix))
        assert await _all_keys(store, prefix) == expected, prefix
        assert await _all_keys(store, prefix, page=1) == expected, prefix
    # A cursor need not be a stored key, and may lie before or after the prefix range.
    page = await store.keys(limit=100, cursor="b0")
    assert page.keys == [k for k in sorted(KEYS) if k > "b0"] and page.cursor is None
    assert (await store.keys("user/", limit=100, cursor="a")).keys == [
        "user/1",
        "user/10",
        "user/2",
    ]
    assert (await store.keys("user/", limit=100, cursor="zz")).keys == []
    first = await store.keys(limit=4)
    assert first.keys == sorted(KEYS)[:4] and first.cursor == first.keys[-1]
    await store.close()


@given(prefix=st.text(max_size=4), other=st.text(max_size=6))
def test_the_upper_bound_closes_exactly_the_prefix_range(prefix, other):
    prefix = prefix.encode("utf-8", "ignore").decode()
    other = other.encode("utf-8", "ignore").decode()
    upper = _upper_bound(prefix)
    for candidate in (other, prefix + other):
        inside = prefix <= candidate and (upper is None or candidate < upper)
        assert inside == candidate.startswith(prefix)


async def test_deleted_and_missing_files_are_not_listed(tmp_path):
    store = FileStorageBackend(data_dir=tmp_path)
    await store.set_many({f"k{i:03d}": {"i": i} for i in range(50)})
    await store.delete("k001")
    await store.delete_many(["k002", "k003", "absent"])
    assert "k001" not in _index_rows(tmp_path)
    # A file removed behind the store's back leaves a stale row: skipped, then pruned.
    os.remove(tmp_path / _file_name("k004"))
    keys = await _all_keys(store, page=7)
    assert keys == [f"k{i:03d}" for i in range(50) if i not in (1, 2, 3, 4)]
    assert "k004" not in _index_rows(tmp_path)
    await store.close()


async def test_a_page_reads_past_many_stale_rows(tmp_path):
    store = FileStorageBackend(data_dir=tmp_path)
    await store.set_many({f"k{i:04d}": {"i": i} for i in range(400)})
    for i in range(300):
        os.remove(tmp_path / _file_name(f"k{i:04d}"))
    # While another process holds the lock, a listing cannot prune: it must skip them all.
    fd = os.open(tmp_path / LOCK_NAME, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        page = await store.keys(limit=10)
        assert page.keys == [f"k{i:04d}" for i in range(300, 310)]
        assert len(_index_rows(tmp_path)) == 400
    finally:
        os.close(fd)
    await store.keys(limit=10)
    assert len(_index_rows(tmp_path)) == 100
    await store.close()


async def test_expired_records_are_skipped_and_swept_with_their_rows(tmp_path):
    now = [1_000_000.0]
    store = FileStorageBackend(data_dir=tmp_path, clock=lambda: now[0])
    await store.set("short", {"v": 1}, ttl=10)
    await store.set_many({"long": {"v": 2}, "longer": {"v": 3}}, ttl=100)
    await store.set("forever", {"v": 4})
    assert await _all_keys(store) == ["forever", "long", "longer", "short"]
    now[0] += 50
    assert await _all_keys(store) == ["forever", "long", "longer"]
    assert await store.sweep() == 1
    assert set(_index_rows(tmp_path)) == {"forever", "long", "longer"}
    now[0] += 100
    assert await _all_keys(store) == ["forever"]
    await store.close()


async def test_a_directory_without_an_index_is_indexed_on_first_use(tmp_path):
    writer = FileStorageBackend(data_dir=tmp_path)
    await writer.set_many({key: {"k": key} for key in KEYS})
    await writer.close()
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / (INDEX_NAME + suffix)).unlink(missing_ok=True)
    (tmp_path / LOCK_NAME).unlink()
    shutil.rmtree(tmp_path / LOCKS_DIR)
    assert not any(n.startswith(".") for n in os.listdir(tmp_path))  # as an old version left it
    store = FileStorageBackend(data_dir=tmp_path)
    assert await store.get("a") == {"k": "a"}  # reading needs no index
    assert await _all_keys(store) == sorted(KEYS)
    assert set(_index_rows(tmp_path)) == set(KEYS)
    await store.close()


async def test_an_incomplete_index_is_built_again(tmp_path):
    store = FileStorageBackend(data_dir=tmp_path)
    await store.set_many({f"k{i}": {"i": i} for i in range(5)})
    await store.close()
    # As a build killed before its commit, or an index that lost rows: no complete mark.
    conn = sqlite3.connect(tmp_path / INDEX_NAME)
    with conn:
        conn.execute("DELETE FROM keys WHERE key IN ('k1', 'k3')")
        conn.execute("DELETE FROM meta")
    conn.close()
    fresh = FileStorageBackend(data_dir=tmp_path)
    assert await _all_keys(fresh) == [f"k{i}" for i in range(5)]
    await fresh.close()


async def test_sweep_indexes_records_written_without_the_index(tmp_path):
    store = FileStorageBackend(data_dir=tmp_path)
    await store.set("indexed", {"v": 1})
    # A record file written by a version that knows nothing of the index.
    body = {"key": "unindexed", "expires_at": None, "value": {"v": 2}}
    (tmp_path / _file_name("unindexed")).write_text(json.dumps(body))
    assert await _all_keys(store) == ["indexed"]
    assert await store.sweep() == 0
    assert await _all_keys(store) == ["indexed", "unindexed"]
    await store.close()


async def test_index_and_lock_files_are_never_records(tmp_path):
    store = FileStorageBackend(data_dir=tmp_path)
    await store.set_many({f"k{i}": {"i": i} for i in range(20)})
    own = {n for n in os.listdir(tmp_path) if n.startswith(".")}
    assert {INDEX_NAME, LOCK_NAME} <= own
    assert own <= {INDEX_NAME, INDEX_NAME + "-wal", INDEX_NAME + "-shm", LOCK_NAME, LOCKS_DIR}
    for entry in os.scandir(tmp_path):
        if entry.name in own:
            assert store._scan.key_of(entry) is None
    assert await store.sweep() == 0
    assert own <= set(os.listdir(tmp_path))
    assert await _all_keys(store) == sorted(f"k{i}" for i in range(20))
    # The index is owner-only, like the records.
    assert os.stat(tmp_path / INDEX_NAME).st_mode & 0o077 == 0
    assert os.stat(tmp_path / LOCK_NAME).st_mode & 0o077 == 0
    assert os.stat(tmp_path / LOCKS_DIR).st_mode & 0o077 == 0
    for name in os.listdir(tmp_path / LOCKS_DIR):
        assert os.stat(tmp_path / LOCKS_DIR / name).st_mode & 0o077 == 0
    await store.close()


async def test_a_corrupted_index_is_reported_and_reading_still_works(tmp_path):
    store = FileStorageBackend(data_dir=tmp_path)
    await store.set("k", {"v": 1})
    await store.close()
    for suffix in ("-wal", "-shm"):
        (tmp_path / (INDEX_NAME + suffix)).unlink(missing_ok=True)
    (tmp_path / INDEX_NAME).write_bytes(b"this is not an SQLite database" * 100)
    broken = FileStorageBackend(data_dir=tmp_path)
    with pytest.raises(BackendUnavailableError, match="rebuilt from the records"):
        await broken.keys()
    assert await broken.get("k") == {"v": 1}
    await broken.close()


def _open_fds_to(path: Path) -> int:
    targets = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            targets.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            continue
    return sum(1 for t in targets if t.startswith(str(path)))


async def test_close_releases_every_thread_connection_and_the_store_reopens(tmp_path):
    store = FileStorageBackend(data_dir=tmp_path)
    await store.set_many({f"k{i}": {"i": i} for i in range(10)})
    assert await store.keys() is not None
    assert _open_fds_to(tmp_path) > 0
    await store.close()
    assert _open_fds_to(tmp_path) == 0
    assert len(await _all_keys(store)) == 10  # usable again: it reconnects
    await store.close()
    # A store dropped without close() releases them too, when it is collected.
    dropped = FileStorageBackend(data_dir=tmp_path)
    await dropped.keys()
    del dropped
    # Its runner's worker may hold the last call for a moment (it lingers for the next).
    for _ in range(200):
        gc.collect()
        if _open_fds_to(tmp_path) == 0:
            break
        await asyncio.sleep(0.01)
    assert _open_fds_to(tmp_path) == 0


RACER = """
import os, random, sys
from prism_storage import FileStorageBackend
from prism_storage.backends.file.records import remove_record
store = FileStorageBackend(data_dir=sys.argv[1])
rng = random.Random(os.getpid())
keys = ["shared", "shared/2", "shared/3"]
for n in range(int(sys.argv[2])):
    key = rng.choice(keys)
    if rng.random() < 0.5:
        store._write(key, '{"n": %d}' % n, None)
    elif rng.random() < 0.5:
        store._remove(key)
    else:
        with store._index.removing(keys):  # as delete_many does
            for k in keys:
                remove_record(sys.argv[1], k)
store._index.close()
"""


def _check_rows_cover_files(directory: Path) -> int:
    """Under the exclusive lock (no write is half done): every record file has its row."""
    fd = os.open(directory / LOCK_NAME, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        rows = _index_rows(directory)
        files = {n for n in os.listdir(directory) if not n.startswith(".")}
    finally:
        os.close(fd)
    unlisted = files - {_file_name(key) for key in rows}
    assert not unlisted, f"record files without an index row: {unlisted}"
    return len(files)


def test_concurrent_sets_and_deletes_never_leave_an_unlisted_record(tmp_path):
    """Two processes set and delete the same keys at once: every file keeps its row,
    checked under the lock while they run and after they end."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # The index and its tables exist before the racers start: a racer creates the file
    # before it takes the lock to create the tables, so a check could see it empty.
    store = FileStorageBackend(data_dir=tmp_path)
    asyncio.run(store.keys())
    store._index.close()
    assert _index_rows(tmp_path) == {}
    checks = 0
    for _ in range(3):
        racers = [
            subprocess.Popen(
                [sys.executable, "-c", RACER, str(tmp_path), "1500"],
                env=env,
                cwd=ROOT,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        try:
            while any(proc.poll() is None for proc in racers):
                if (tmp_path / INDEX_NAME).exists():
                    _check_rows_cover_files(tmp_path)
                    checks += 1
                time.sleep(0.005)
        finally:
            for proc in racers:
                _, err = proc.communicate(timeout=300)
                assert proc.returncode == 0, err
        _check_rows_cover_files(tmp_path)
    assert checks > 0


def test_a_store_collected_without_close_closes_its_index_connections(tmp_path):
    """Nobody has to close a store; the garbage collector then closes its idle index
    connections, in whatever order it finalizes a reference cycle (Python 3.13 warns about
    a SQLite connection collected open, which this suite turns into a failure)."""
    store = FileStorageBackend(tmp_path / "data")
    asyncio.run(store.set("k", {"v": 1}))
    pool = store._index._pool
    handle = pool.take()
    connection = weakref.ref(handle.conn)
    pool.give(handle)
    store.cycle = store  # type: ignore[attr-defined]
    del store, pool, handle
    gc.collect()
    assert connection() is None


def test_an_index_connection_closes_itself_when_finalized(tmp_path):
    connection = sqlite3.connect(tmp_path / "x.sqlite3", factory=_IndexConnection)
    connection.pid = os.getpid()
    connection.__del__()
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        connection.execute("SELECT 1")
