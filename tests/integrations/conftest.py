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
    VectorStorageBackend,
)
from prism_storage.handler import build_store

#: The orm cases use the SQLite test database without the flush a transactional test
#: case ends with (slow): each store has a namespace of its own, so its records meet no
#: other test's. What the async ORM's worker thread commits outside the test's transaction
#: ``close_store`` deletes; the sync facade's queries run in the test's own thread and
#: transaction, rolled back at its end.
ORM_DB = pytest.mark.django_db
KINDS = ["memory", "file", pytest.param("orm", marks=ORM_DB), "redis"]
#: Every kind of store with atomic append and pop, for the concurrency properties of the
#: conversation adapters: the kinds above, the orm store on PostgreSQL, Supabase (through
#: the PostgREST stand-in) and the embedded vector engines.
ATOMIC_KINDS = [
    *KINDS,
    pytest.param("orm-pg", marks=pytest.mark.django_db(transaction=True, databases=["pg"])),
    "supabase",
    "qdrant",
    "milvus",
]


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:10]}"


def new_store(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> BaseStorageBackend:
    if kind == "memory":
        return MemoryStorageBackend(unique("sdk"))
    if kind == "file":
        return FileStorageBackend(tmp_path / unique("files"))
    if kind == "orm":
        return ORMStorageBackend(unique("sdk"))
    if kind == "orm-pg":
        return ORMStorageBackend(unique("sdk"), using="pg")
    if kind == "redis":
        server = request.getfixturevalue("redis_server")
        return RedisStorageBackend(server.url, prefix=unique("sdk") + ":")
    if kind == "supabase":
        config = request.getfixturevalue("supabase_store_config")()
        return build_store("sdk", config["BACKEND"], config["OPTIONS"])
    if kind in ("qdrant", "milvus"):
        from tests.support.vector import DIMENSIONS, hash_embedder

        if kind == "qdrant":
            engine = {"path": str(tmp_path / "qdrant")}
        else:
            engine = {"path": request.getfixturevalue("milvus_db"), "namespace": unique("sdk")}
        return VectorStorageBackend(
            kind, index_name="sdk", dimensions=DIMENSIONS, embedder=hash_embedder, **engine
        )
    raise AssertionError(kind)


async def close_store(store: BaseStorageBackend) -> None:
    await store.close()
    if isinstance(store, ORMStorageBackend):
        from prism_storage.models import Record

        await Record.objects.using(store.using).filter(namespace=store.namespace).adelete()
        # The connections the async ORM opened in asgiref's worker thread (see
        # tests/conftest.py close_db_connections).
        await sync_to_async(connections.close_all, thread_sensitive=True)()


@pytest.fixture(params=KINDS)
async def prism_store(request, tmp_path):
    store = new_store(request.param, request, tmp_path)
    yield store
    await close_store(store)


@pytest.fixture(params=ATOMIC_KINDS)
def atomic_kind(request, tmp_path):
    """The kinds of :data:`ATOMIC_KINDS`, with the fixtures each needs set up here (an
    async fixture cannot ask for an async fixture by name)."""
    if request.param == "orm-pg":
        request.getfixturevalue("close_db_connections")
    return request.param


@pytest.fixture
async def atomic_store(atomic_kind, request, tmp_path):
    """A fresh store of every kind that appends and pops atomically."""
    store = new_store(atomic_kind, request, tmp_path)
    assert store.supports_atomic_lists, store
    yield store
    await close_store(store)
