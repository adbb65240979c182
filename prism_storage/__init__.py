"""prism_storage: async storage for AI-agent data in Django.

Importing this package imports neither a client library nor Django's ORM: the backend
classes below are resolved on first attribute access.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .exceptions import (
    BackendPermissionError,
    BackendUnavailableError,
    ConfigurationError,
    InvalidKeyError,
    InvalidOptionError,
    InvalidStoreAliasError,
    InvalidValueError,
    MissingDependencyError,
    PrismStorageError,
    SchemaMismatchError,
    UnknownBackendError,
    UnsupportedOperationError,
    VersionConflictError,
)
from .protocol import MemoryProvider
from .registry import Registry

if TYPE_CHECKING:
    from .backends.base import BaseStorageBackend, KeyPage
    from .backends.file import FileStorageBackend
    from .backends.memory import MemoryStorageBackend
    from .backends.orm import ORMStorageBackend
    from .backends.redis import RedisStorageBackend
    from .backends.supabase import SupabaseStorageBackend
    from .backends.vector import VectorStorageBackend
    from .backends.versions import Record, WriteResult
    from .handler import storages
    from .sync import SyncStore, sync_storages

# The one place the version is written; packaging reads this literal without importing.
__version__ = "0.1.0"

_LAZY = {
    "BaseStorageBackend": "prism_storage.backends.base",
    "KeyPage": "prism_storage.backends.base",
    "FileStorageBackend": "prism_storage.backends.file",
    "MemoryStorageBackend": "prism_storage.backends.memory",
    "ORMStorageBackend": "prism_storage.backends.orm",
    "RedisStorageBackend": "prism_storage.backends.redis",
    "SupabaseStorageBackend": "prism_storage.backends.supabase",
    "VectorStorageBackend": "prism_storage.backends.vector",
    "Record": "prism_storage.backends.versions",
    "WriteResult": "prism_storage.backends.versions",
    "storages": "prism_storage.handler",
    "SyncStore": "prism_storage.sync",
    "sync_storages": "prism_storage.sync",
}

__all__ = [
    "BackendPermissionError",
    "BackendUnavailableError",
    "BaseStorageBackend",
    "ConfigurationError",
    "FileStorageBackend",
    "InvalidKeyError",
    "InvalidOptionError",
    "InvalidStoreAliasError",
    "InvalidValueError",
    "KeyPage",
    "MemoryProvider",
    "MemoryStorageBackend",
    "MissingDependencyError",
    "ORMStorageBackend",
    "PrismStorageError",
    "Record",
    "RedisStorageBackend",
    "Registry",
    "SchemaMismatchError",
    "SupabaseStorageBackend",
    "SyncStore",
    "UnknownBackendError",
    "UnsupportedOperationError",
    "VectorStorageBackend",
    "VersionConflictError",
    "WriteResult",
    "storages",
    "sync_storages",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'prism_storage' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
