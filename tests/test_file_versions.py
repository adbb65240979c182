"""The file store's versioned records: files of the old layout, and atomicity across
processes (the conformance suite covers the semantics within one process)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from prism_storage import FileStorageBackend
from prism_storage.backends.file.names import file_name
from prism_storage.backends.versions import timestamp
from prism_storage.exceptions import CorruptRecordError, VersionConflictError

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def _write_old(directory: Path, key: str, value: dict, expires_at: float | None = None) -> Path:
    """A record file exactly as the store wrote it before records had versions."""
    path = directory / file_name(key)
    expiry = "null" if expires_at is None else repr(expires_at)
    body = f'{{"key":{json.dumps(key, ensure_ascii=False)},"expires_at":{expiry},"value":'
    path.write_bytes((body + json.dumps(value, separators=(",", ":")) + "}").encode())
    if expires_at is not None:  # the old store mirrored the expiry in mode and mtime
        os.chmod(path, 0o700)
        os.utime(path, (expires_at, expires_at))
    else:
        os.chmod(path, 0o600)
    return path


async def test_a_record_of_the_old_layout_is_read_and_written(tmp_path):
    written = time.time() - 3600
    path = _write_old(tmp_path, "old", {"messages": ["a"]})
    os.utime(path, (written, written))
    store = FileStorageBackend(data_dir=tmp_path)
    assert await store.get("old") == {"messages": ["a"]}
    first = await store.get_record("old")
    again = await store.get_record("old")
    assert first is not None and again is not None
    assert first.value == {"messages": ["a"]} and first.expires_at is None
    assert first.version == again.version  # derived, but stable while the file stays
    assert first.created_at == first.updated_at == timestamp(written)
    assert (await store.get_many_records(["old"]))["old"].version == first.version
    # A write at the derived version goes through, keeps the creation time and gives the
    # file the new layout.
    with pytest.raises(VersionConflictError):
        await store.put("old", {"v": 0}, if_version="0123456789abcdef")
    result = await store.put("old", {"messages": ["a", "b"]}, if_version=first.version)
    assert result.created is False and result.version != first.version
    record = await store.get_record("old")
    assert record is not None and record.version == result.version
    assert record.created_at == timestamp(written) and record.updated_at > record.created_at
    assert json.loads(path.read_bytes())["version"] == result.version
    assert (await store.keys()).keys == ["old"]
    await store.close()


async def test_old_records_take_appends_pops_sets_and_conditional_deletes(tmp_path):
    expires = time.time() + 1000
    _write_old(tmp_path, "chat", {"messages": [1, 2]}, expires_at=expires)
    _write_old(tmp_path, "plain", {"v": 1})
    _write_old(tmp_path, "gone", {"v": 1})
    store = FileStorageBackend(data_dir=tmp_path)
    chat = await store.get_record("chat")
    assert chat is not None and chat.expires_at == timestamp(expires)
    assert await store.append("chat", [3]) == 3
    appended = await store.get_record("chat")
    assert appended is not None
    assert appended.value == {"messages": [1, 2, 3]}
    assert appended.expires_at == chat.expires_at  # the record keeps its expiry
    assert appended.created_at == chat.created_at
    assert await store.pop("chat") == 3

    plain = await store.get_record("plain")
    await store.set("plain", {"v": 2})  # a plain write keeps the creation time too
    after = await store.get_record("plain")
    assert plain is not None and after is not None
    assert after.created_at == plain.created_at and after.version != plain.version

    gone = await store.get_record("gone")
    assert gone is not None
    assert await store.remove("gone", if_version=gone.version) is True
    assert await store.get("gone") is None
    await store.close()


async def test_an_old_record_changed_by_an_old_writer_changes_version(tmp_path):
    _write_old(tmp_path, "k", {"v": 1})
    store = FileStorageBackend(data_dir=tmp_path)
    seen = await store.get_record("k")
    assert seen is not None
    _write_old(tmp_path, "k", {"v": 2})  # a process of the previous version wrote it
    with pytest.raises(VersionConflictError) as conflict:
        await store.put("k", {"v": 3}, if_version=seen.version)
    assert conflict.value.current_version not in (None, seen.version)
    assert await store.get("k") == {"v": 2}


async def test_a_damaged_record_is_repaired_by_set_but_refused_by_conditional_writes(tmp_path):
    store = FileStorageBackend(data_dir=tmp_path)
    await store.set("k", {"v": 1})
    (tmp_path / file_name("k")).write_bytes(b'{"key": "k", "expires_at": null, "val')
    with pytest.raises(CorruptRecordError):
        await store.put("k", {"v": 2}, if_absent=True)
    with pytest.raises(CorruptRecordError):
        await store.append("k", [1])
    with pytest.raises(CorruptRecordError):
        await store.get_record("k")
    await store.set("k", {"v": 3})
    assert await store.get("k") == {"v": 3}


# A child process: appends {"w", "n"} items to "chat" (or increments "counter" with
# update()), printing n once each call returned. It says it is ready and waits for a
# "go" file, so that all start together.
WRITER = """
import asyncio, os, sys, time
from prism_storage import FileStorageBackend

directory, writer, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
update = len(sys.argv) > 4  # increment a counter with update() instead

def increment(value):
    return {"n": (value or {"n": 0})["n"] + 1}

async def main():
    store = FileStorageBackend(data_dir=directory)
    open(os.path.join(directory, f"ready-{writer}"), "w").close()
    while not os.path.exists(os.path.join(directory, "go")):
        time.sleep(0.001)
    n = 0
    while count < 0 or n < count:
        if update:
            await store.update("counter", increment, attempts=10_000)
        else:
            await store.append("chat", [{"w": writer, "n": n}])
        print(n, flush=True)
        n += 1
    await store.close()

asyncio.run(main())
"""


def _start_writers(
    directory: Path, writers: int, count: int, *extra: str
) -> list[subprocess.Popen[str]]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(directory), str(w), str(count), *extra],
            env=ENV,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(writers)
    ]
    deadline = time.monotonic() + 60
    while not all((directory / f"ready-{w}").exists() for w in range(writers)):
        assert time.monotonic() < deadline, "the appenders did not start"
        assert all(proc.poll() is None for proc in procs), procs[0].communicate()
        time.sleep(0.01)
    (directory / "go").touch()
    return procs


def test_appends_of_several_processes_lose_and_duplicate_nothing(tmp_path):
    procs = _start_writers(tmp_path, writers=3, count=100)
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    store = FileStorageBackend(data_dir=tmp_path)
    value = asyncio.run(store.get("chat"))
    assert value is not None
    items = value["messages"]
    assert len(items) == 300
    for w in range(3):  # each writer's items, once each, in its own order
        assert [item["n"] for item in items if item["w"] == w] == list(range(100))


def test_conditional_updates_of_several_processes_lose_nothing(tmp_path):
    procs = _start_writers(tmp_path, 2, 60, "update")
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    store = FileStorageBackend(data_dir=tmp_path)
    assert asyncio.run(store.get("counter")) == {"n": 120}


def test_an_appender_killed_mid_write_leaves_the_record_whole(tmp_path):
    """SIGKILL at an arbitrary point of an append: the record is the one before or after
    that append, holding every append that returned, and the key's lock is free."""
    store = FileStorageBackend(data_dir=tmp_path)
    acknowledged = 0
    for round_ in range(3):
        for name in ("go", "ready-0"):
            (tmp_path / name).unlink(missing_ok=True)
        [proc] = _start_writers(tmp_path, writers=1, count=-1)
        assert proc.stdout is not None
        printed = []
        try:
            for _ in range(20 + 15 * round_):
                line = proc.stdout.readline()
                assert line, proc.communicate()[1]
                printed.append(line)
        finally:
            proc.send_signal(signal.SIGKILL)
            # Through the buffered stream (communicate() would skip what readline buffered).
            rest = proc.stdout.read()
            proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        last = int((printed + rest.splitlines())[-1])  # the last append that returned
        value = asyncio.run(store.get("chat"))
        assert value is not None
        mine = [item["n"] for item in value["messages"] if item["w"] == 0]
        # This round's items follow the earlier rounds' ones: n restarts at 0 each round.
        this_round = mine[acknowledged:]
        assert this_round[: last + 1] == list(range(last + 1))
        assert len(this_round) in (last + 1, last + 2)  # at most one not yet acknowledged
        acknowledged = len(mine)
    # Nobody holds the lock now: another append goes through.
    assert asyncio.run(store.append("chat", [{"w": 9, "n": 0}])) == acknowledged + 1
