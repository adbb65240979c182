"""The specification's own usage example runs verbatim (file part and Registry)."""

from __future__ import annotations

import os


async def test_specification_usage_example_file_part(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # --- verbatim from the specification ---
    from prism_storage import FileStorageBackend, RedisStorageBackend, Registry  # noqa: F401

    file_storage = FileStorageBackend(data_dir="./data")
    await file_storage.set("agent_1", {"messages": [{"role": "user", "content": "Hello"}]})
    data = await file_storage.get("agent_1")
    # --- end of the verbatim part ---
    assert data == {"messages": [{"role": "user", "content": "Hello"}]}
    assert os.path.isdir(tmp_path / "data")

    storage = Registry.create(provider_type="file", data_dir="./data")
    assert await storage.get("agent_1") == data


def test_default_constructor_arguments(tmp_path, monkeypatch):
    from prism_storage import FileStorageBackend

    monkeypatch.chdir(tmp_path)
    store = FileStorageBackend()
    assert str(store.data_dir) == "data"
    assert store.create_if_missing is True
    positional = FileStorageBackend("./elsewhere", False)
    assert positional.create_if_missing is False
