"""The file backend: the conformance suite plus what is specific to files."""

from __future__ import annotations

import json
import os
import stat

import pytest

from prism_storage import FileStorageBackend
from prism_storage.backends.file import _file_name
from prism_storage.exceptions import ConfigurationError, CorruptRecordError
from prism_storage.testing import StorageConformanceTests
from prism_storage.testing.conformance import HOSTILE_KEYS


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
    names = os.listdir(root)
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
    assert stat.S_IMODE(os.stat(root / _file_name("k")).st_mode) == 0o600


async def test_missing_directory_without_create_is_a_configuration_error(tmp_path):
    store = FileStorageBackend(data_dir=tmp_path / "absent", create_if_missing=False)
    with pytest.raises(ConfigurationError, match="does not exist"):
        await store.get("k")
    assert not (tmp_path / "absent").exists()


async def test_corrupted_file_is_an_error_not_none(tmp_path):
    store = FileStorageBackend(data_dir=tmp_path)
    await store.set("k", {"v": 1})
    (tmp_path / _file_name("k")).write_bytes(b'{"key": "k", "expires_at": null, "val')
    with pytest.raises(CorruptRecordError):
        await store.get("k")
    # A file that holds another key's record is refused too.
    await store.set("other", {"v": 2})
    os.replace(tmp_path / _file_name("other"), tmp_path / _file_name("k"))
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
    body = json.loads((tmp_path / _file_name("k3")).read_text())
    assert body == {"key": "k3", "expires_at": None, "value": {"i": 3}}


async def test_long_keys_use_hashed_names_and_still_list(tmp_path):
    store = FileStorageBackend(data_dir=tmp_path)
    long_key = "🤖" * 400
    await store.set(long_key, {"v": 1})
    assert _file_name(long_key).startswith("h")
    fresh = FileStorageBackend(data_dir=tmp_path)
    assert list(await fresh.keys()) == [long_key]
    assert await fresh.get(long_key) == {"v": 1}
