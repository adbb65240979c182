"""The file store's versioned records: files of the old layout, concurrent appends to one
key written together, and atomicity across processes (the conformance suite covers the
semantics within one process)."""

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
from prism_storage.exceptions import (
    CorruptRecordError,
    InvalidValueError,
    VersionConflictError,
)

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


def _count_batches(store: FileStorageBackend) -> list[int]:
    """The size of every append batch ``store`` writes, in order (its worker threads
    append to the list returned)."""
    sizes: list[int] = []
    write_batch = store._append_batch

    def counting(key, batch):
        sizes.append(len(batch))
        return write_batch(key, batch)

    store._append_batch = counting  # type: ignore[method-assign]
    return sizes


async def test_concurrent_appends_are_merged_with_distinct_lengths_in_task_order(tmp_path):
    store = FileStorageBackend(data_dir=tmp_path)
    sizes = _count_batches(store)
    await store.append("chat", ["first"])

    async def appender(task: int) -> list[tuple[int, list[list[int]]]]:
        calls = []
        for n in range(20):
            items = [[task, n, part] for part in range(1 + (task + n) % 3)]
            calls.append((await store.append("chat", items), items))
        return calls

    results = await asyncio.gather(*(appender(task) for task in range(16)))
    assert max(sizes) > 1  # appends were written together
    stored = (await store.get("chat"))["messages"]
    lengths = [length for calls in results for length, _ in calls]
    assert len(set(lengths)) == len(lengths)  # one length per call, none repeated
    assert len(stored) == 1 + sum(len(items) for calls in results for _, items in calls)
    for task, calls in enumerate(results):
        # Each call's length points at its own last item, its items are contiguous, and
        # a task's calls follow each other in the list.
        for length, items in calls:
            assert stored[length - len(items) : length] == items
        assert [length for length, _ in calls] == sorted(length for length, _ in calls)
        assert [m for m in stored if m != "first" and m[0] == task] == [
            item for _, items in calls for item in items
        ]
    await store.close()


async def test_merged_appends_apply_each_call_as_if_alone(tmp_path):
    store = FileStorageBackend(data_dir=tmp_path)
    sizes = _count_batches(store)
    # The first call is written alone; the others queue behind it and form one batch.
    lengths = await asyncio.gather(
        store.append("chat", [1, 2, 3]),
        store.append("chat", [4, 5], max_items=3),
        store.append("chat", [6]),
        store.append("chat", [7], field="other", ttl=100),
    )
    assert sizes == [1, 3]
    assert lengths == [3, 3, 4, 1]
    record = await store.get_record("chat")
    assert record is not None
    assert record.value == {"messages": [3, 4, 5, 6], "other": [7]}
    assert record.expires_at is not None  # the last call's ttl applies
    await store.close()


async def test_merged_appends_to_a_field_that_is_not_a_list_fail_and_write_nothing(tmp_path):
    store = FileStorageBackend(data_dir=tmp_path)
    await store.set("chat", {"messages": "text", "other": []})
    sizes = _count_batches(store)
    before = await store.get_record("chat")
    # The first call is tried alone; the other five queue behind it and form one batch.
    outcomes = await asyncio.gather(
        *(store.append("chat", [n]) for n in range(6)), return_exceptions=True
    )
    assert sizes == [1, 5]
    for error in outcomes:
        assert isinstance(error, InvalidValueError) and error.path == "$.messages"
    after = await store.get_record("chat")
    assert before is not None and after is not None
    assert (after.version, after.value) == (before.version, before.value)
    # In a batch where some calls succeed, only the failing ones fail.
    outcomes = await asyncio.gather(
        store.append("chat", ["b"], field="other"),
        store.append("chat", ["c"]),
        store.append("chat", ["d"], field="other"),
        return_exceptions=True,
    )
    assert outcomes[0] == 1 and isinstance(outcomes[1], InvalidValueError) and outcomes[2] == 2
    assert await store.get("chat") == {"messages": "text", "other": ["b", "d"]}
    await store.close()


async def test_an_append_cancelled_while_queued_is_not_written(tmp_path):
    store = FileStorageBackend(data_dir=tmp_path)
    first = asyncio.create_task(store.append("chat", ["a"]))
    cancelled = asyncio.create_task(store.append("chat", ["b"]))
    last = asyncio.create_task(store.append("chat", ["c"]))
    await asyncio.sleep(0)  # each has started: the first is being written, two queue
    cancelled.cancel()
    assert await first == 1 and await last == 2
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert await store.get("chat") == {"messages": ["a", "c"]}
    await store.close()


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
