"""Fresh, empty prism stores of each kind for the SDK adapters' tests.

``prism_store`` is parametrized over the kinds the adapters are tested on; a test gets a
store of its own (a new name, directory, namespace or key prefix) and the store is closed
after it. The orm kind runs on the SQLite test database.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from prism_storage import (
    BaseStorageBackend,
    FileStorageBackend,
    MemoryStorageBackend,
    ORMStorageBackend,
    RedisStorageBackend,
)

#: The orm cases use the SQLite test database without the flush a transactional test
#: case ends with (slow): each store has a namespace of its own, so its records meet no
#: other test's. What the async ORM's worker thread commits outside the test's transaction
#: ``close_store`` deletes; the sync facade's queries run in the test's own thread and
#: transaction, rolled back at its end.
ORM_DB = pytest.mark.django_db
KINDS = ["memory", "file", pytest.param("orm", marks=ORM_DB), "redis"]


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:10]}"


def new_store(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> BaseStorageBackend:
    if kind == "memory":
        return MemoryStorageBackend(unique("sdk"))
    if kind == "file":
        return FileStorageBackend(tmp_path / unique("files"))
    if kind == "orm":
        return ORMStorageBackend(unique("sdk"))
    if kind == "redis":
        server = request.getfixturevalue("redis_server")
        return RedisStorageBackend(server.url, prefix=unique("sdk") + ":")
    raise AssertionError(kind)


async def close_store(store: BaseStorageBackend) -> None:
    await store.close()
    if isinstance(store, ORMStorageBackend):
        from prism_storage.models import Record

        await Record.objects.filter(namespace=store.namespace).adelete()
        # The connections the async ORM opened in asgiref's worker thread (see
        # tests/conftest.py close_db_connections).
        await sync_to_async(connections.close_all, thread_sensitive=True)()


@pytest.fixture(params=KINDS)
async def prism_store(request, tmp_path):
    store = new_store(request.param, request, tmp_path)
    yield store
    await close_store(store)
