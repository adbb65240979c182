"""The file backend: the conformance suite plus what is specific to files."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prism_storage import FileStorageBackend
from prism_storage.backends.file.names import file_name
from prism_storage.backends.file.records import read_file
from prism_storage.backends.versions import timestamp
from prism_storage.exceptions import (
    BackendUnavailableError,
    ConfigurationError,
    CorruptRecordError,
)
from prism_storage.testing import StorageConformanceTests
from prism_storage.testing.conformance import HOSTILE_KEYS


def _record_names(directory):
    """The directory's entries less the key index's files (``.prism-*``, see file/index.py)."""
    return [n for n in os.listdir(directory) if not n.startswith(".prism-")]


class TestFileConformance(StorageConformanceTests):
    @pytest.fixture
    def make_store(self, tmp_path):
        def make(namespace="main", **options):
            return FileStorageBackend(data_dir=tmp_path / namespace, **options)

        return make

    @pytest.fixture
    def make_unavailable_store(self, tmp_path):
        blocker = tmp_path / "not-a-directory"
        blocker.write_text("a file where the store's parent directory should be")
        return lambda: FileStorageBackend(data_dir=blocker / "store")


async def test_no_key_escapes_the_directory(tmp_path):
    root = tmp_path / "store"
    store = FileStorageBackend(data_dir=root)
    for key in HOSTILE_KEYS:
        await store.set(key, {"k": key})
    outside = {p for p in tmp_path.rglob("*") if not p.is_relative_to(root) and p != root}
    assert outside == set()
    names = _record_names(root)
    assert len(names) == len(HOSTILE_KEYS)
    for name in names:
        assert "/" not in name and "\\" not in name and not name.startswith(".")
        assert len(name.encode()) <= 255
        assert name == name.lower()


async def test_files_are_owner_only(tmp_path):
    root = tmp_path / "store"
    store = FileStorageBackend(data_dir=root)
    await store.set("k", {"v": 1})
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(root / file_name("k")).st_mode) == 0o600


async def test_missing_directory_without_create_is_a_configuration_error(tmp_path):
    store = FileStorageBackend(data_dir=tmp_path / "absent", create_if_missing=False)
    with pytest.raises(ConfigurationError, match="does not exist"):
        await store.get("k")
    assert not (tmp_path / "absent").exists()


async def test_corrupted_file_is_an_error_not_none(tmp_path):
    store = FileStorageBackend(data_dir=tmp_path)
    await store.set("k", {"v": 1})
    (tmp_path / file_name("k")).write_bytes(b'{"key": "k", "expires_at": null, "val')
    with pytest.raises(CorruptRecordError):
        await store.get("k")
    # A file that holds another key's record is refused too.
    await store.set("other", {"v": 2})
    os.replace(tmp_path / file_name("other"), tmp_path / file_name("k"))
    with pytest.raises(CorruptRecordError):
        await store.get("k")


async def test_foreign_files_never_break_listing(tmp_path):
    store = FileStorageBackend(data_dir=tmp_path)
    await store.set("real", {"v": 1})
    (tmp_path / "README.txt").write_text("hello")
    (tmp_path / "kZZ.json").write_text("not ours: uppercase is never produced")
    (tmp_path / "k_zz.json").write_text("bad escape")
    (tmp_path / ("h" + "0" * 64 + ".json")).write_text("garbage")
    (tmp_path / ".tmp-abandoned").write_text("{")
    (tmp_path / "subdir").mkdir()
    assert list(await store.keys()) == ["real"]
    assert await store.sweep() == 0


async def test_writes_are_atomic_and_leave_no_temp_files(tmp_path):
    store = FileStorageBackend(data_dir=tmp_path, durable=True)
    await store.set_many({f"k{i}": {"i": i} for i in range(20)})
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".tmp-")]
    body = json.loads((tmp_path / file_name("k3")).read_text())
    record = await store.get_record("k3")
    assert record is not None
    assert timestamp(body.pop("created_at")) == record.created_at
    assert timestamp(body.pop("updated_at")) == record.updated_at
    assert body == {
        "version": record.version,
        "expires_at": None,
        "key": "k3",
        "value": {"i": 3},
    }


async def test_long_keys_use_hashed_names_and_still_list(tmp_path):
    store = FileStorageBackend(data_dir=tmp_path)
    long_key = "🤖" * 400
    await store.set(long_key, {"v": 1})
    assert file_name(long_key).startswith("h")
    fresh = FileStorageBackend(data_dir=tmp_path)
    assert list(await fresh.keys()) == [long_key]
    assert await fresh.get(long_key) == {"v": 1}


async def test_a_failed_write_leaves_the_old_state_and_no_temp_file(tmp_path):
    store = FileStorageBackend(data_dir=tmp_path)
    await store.set("other", {"v": 1})
    (tmp_path / file_name("k")).mkdir()  # os.replace onto a directory fails
    with pytest.raises(BackendUnavailableError):
        await store.set("k", {"v": 2})
    assert sorted(_record_names(tmp_path)) == sorted([file_name("k"), file_name("other")])
    assert await store.get("other") == {"v": 1}


async def test_temp_names_taken_by_a_crashed_writer_are_skipped(tmp_path):
    store = FileStorageBackend(data_dir=tmp_path)
    await store.set("first", {"v": 0})
    # The next temp names this instance would use, left behind by "another" writer.
    serial = next(store._temps.serial)
    leftovers = [f".tmp-{os.getpid()}-{store._temps.tag}-{serial + n}" for n in range(1, 4)]
    for name in leftovers:
        (tmp_path / name).write_text("{")
    await store.set("k", {"v": 1})
    assert await store.get("k") == {"v": 1}
    assert sorted(n for n in os.listdir(tmp_path) if n.startswith(".tmp-")) == sorted(leftovers)
    assert all((tmp_path / name).read_text() == "{" for name in leftovers)


async def test_readers_never_see_a_partial_record_while_writers_replace_it(tmp_path):
    store = FileStorageBackend(data_dir=tmp_path)
    values = [{"n": n, "blob": str(n) * (1 + n * 20_000)} for n in range(4)]
    await store.set("hot", values[0])

    async def writer(n: int) -> None:
        for _ in range(15):
            await store.set("hot", values[n])

    async def reader() -> list[dict | None]:
        return [await store.get("hot") for _ in range(15)]

    outcome = await asyncio.gather(*(writer(n) for n in range(4)), *(reader() for _ in range(8)))
    seen = [value for results in outcome[4:] for value in results]
    assert len(seen) == 8 * 15
    assert all(value in values for value in seen)
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".tmp-")]


def test_a_file_whose_size_is_unknown_up_front_is_read_to_its_end(tmp_path):
    # A FIFO reports size 0, as /proc files do: the read must go on to the end of the data.
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    payload = b"x" * 200_000

    def feed() -> None:
        with open(fifo, "wb") as fh:
            fh.write(payload)

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        assert read_file(str(fifo)) == payload
    finally:
        feeder.join(5)


def test_one_store_serves_several_event_loops(tmp_path):
    store = FileStorageBackend(data_dir=tmp_path)
    asyncio.run(store.set("k", {"v": 1}))
    assert asyncio.run(store.get("k")) == {"v": 1}
    asyncio.run(store.set_many({"a": {"v": 2}, "b": {"v": 3}}))
    assert asyncio.run(store.get_many(["a", "b", "k"])) == {
        "a": {"v": 2},
        "b": {"v": 3},
        "k": {"v": 1},
    }


@settings(max_examples=2000, deadline=None)
@given(st.text(st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=512))
def test_any_key_maps_to_one_contained_file_name(key):
    from prism_storage.backends.file.names import key_from_name

    name = file_name(key)
    assert "/" not in name and "\\" not in name and "\x00" not in name
    assert name not in (".", "..") and not name.startswith(".")
    assert len(name.encode("utf-8")) <= 255 and name == name.lower()
    assert os.path.basename(name) == name
    if name.startswith("k"):
        assert key_from_name(name) == key
    else:
        assert name.startswith("h") and len(name) == 1 + 64 + len(".json")
