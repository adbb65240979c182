"""The registry and the protocol from the specification."""

from __future__ import annotations

import subprocess
import sys

import pytest

from prism_storage import MemoryProvider, Registry
from prism_storage.exceptions import (
    ConfigurationError,
    InvalidOptionError,
    MissingDependencyError,
    UnknownBackendError,
)


class ThirdPartyStore:
    """A backend written against the bare protocol, without our base class."""

    def __init__(self, bucket: str = "b") -> None:
        self.bucket = bucket
        self.data: dict[str, dict] = {}

    async def get(self, key):
        return self.data.get(key)

    async def set(self, key, value):
        self.data[key] = value

    async def delete(self, key):
        self.data.pop(key, None)


@pytest.fixture
def registered():
    Registry.register("third-party", ThirdPartyStore)
    yield
    Registry.unregister("third-party")


def test_builtin_names_resolve():
    from prism_storage.backends.file import FileStorageBackend
    from prism_storage.backends.orm import ORMStorageBackend

    assert {"file", "memory", "orm", "redis", "supabase", "vector"} <= set(Registry.names())
    assert Registry.get_provider("file") is FileStorageBackend
    assert Registry.get_provider("orm") is ORMStorageBackend


def test_unknown_name_lists_the_known_names():
    with pytest.raises(UnknownBackendError) as caught:
        Registry.get_provider("mongo")
    message = str(caught.value)
    for name in ("file", "orm", "redis", "supabase", "vector"):
        assert name in message
    assert isinstance(caught.value, ConfigurationError)
    assert isinstance(caught.value, LookupError)


def test_dotted_path_resolves_and_bad_paths_are_clear():
    cls = Registry.get_provider("tests.test_registry.ThirdPartyStore")
    assert cls is ThirdPartyStore
    with pytest.raises(UnknownBackendError, match="Could not import"):
        Registry.get_provider("tests.test_registry.Missing")


async def test_register_and_create(registered):
    store = Registry.create("third-party", bucket="x")
    assert isinstance(store, ThirdPartyStore)
    assert isinstance(store, MemoryProvider)
    await store.set("k", {"v": 1})
    assert await store.get("k") == {"v": 1}


def test_register_refuses_non_providers():
    class Sync:
        def get(self, key): ...
        def set(self, key, value): ...
        def delete(self, key): ...

    with pytest.raises(TypeError, match="missing async get"):
        Registry.register("sync", Sync)
    with pytest.raises(TypeError, match="must be a class"):
        Registry.register("instance", ThirdPartyStore())
    with pytest.raises(ValueError):
        Registry.register("", ThirdPartyStore)
    assert "sync" not in Registry.names()


def test_unknown_option_is_an_error_naming_the_valid_ones(tmp_path):
    with pytest.raises(InvalidOptionError) as caught:
        Registry.create("file", data_dir=str(tmp_path), create_if_mising=False)
    assert "create_if_mising" in str(caught.value)
    assert "create_if_missing" in str(caught.value)


def test_create_passes_options(tmp_path):
    store = Registry.create(provider_type="file", data_dir=str(tmp_path / "d"), ttl=60)
    assert store.data_dir == tmp_path / "d"
    assert store.default_ttl == 60


def test_import_prism_storage_imports_no_client_library():
    code = (
        "import sys, prism_storage\n"
        "from prism_storage import Registry, storages, FileStorageBackend\n"
        "heavy = [m for m in ('redis', 'supabase', 'qdrant_client', 'pymilvus', 'pinecone',"
        " 'numpy', 'httpx', 'psycopg', 'django.db.models') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_missing_extra_names_the_pip_extra():
    error = MissingDependencyError("redis", "redis", "redis")
    assert "pip install 'prism-storage[redis]'" in str(error)
    assert isinstance(error, ImportError)
    assert isinstance(error, ConfigurationError)


def test_missing_package_is_reported_when_used_not_at_import(tmp_path):
    # Hide the redis package from a fresh interpreter: importing prism_storage still works,
    # and using the redis backend names the extra to install.
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'redis' or name.startswith('redis.'):\n"
        "            raise ImportError('blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import prism_storage\n"
        "from prism_storage import Registry\n"
        "try:\n"
        "    Registry.create('redis', url='redis://127.0.0.1:1/0')\n"
        "except prism_storage.MissingDependencyError as exc:\n"
        "    print('MISSING', exc.extra)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"DJANGO_SETTINGS_MODULE": "tests.settings", "PATH": ""},
        cwd=str(__import__("pathlib").Path(__file__).parent.parent),
    )
    assert "MISSING redis" in result.stdout, result.stderr
