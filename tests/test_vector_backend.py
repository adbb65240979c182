"""The vector backend: the conformance suite on every provider, plus search itself.

Qdrant runs in its embedded local mode (in memory and on disk), Milvus through milvus-lite
(the Milvus engine as a local subprocess, one per test session), Pinecone through the real
SDK against the Pinecone-compatible stand-in server in ``tests/standins``.
"""

from __future__ import annotations

import uuid

import pytest

from prism_storage import VectorStorageBackend
from prism_storage.testing import StorageConformanceTests
from tests.support.vector import DIMENSIONS, closed_port, hash_embedder

# qdrant-client warns (rightly) when an API key goes over plain HTTP, as in outage tests.
pytestmark = pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection")

def unique(namespace: str) -> str:
    return f"{namespace}-{uuid.uuid4().hex[:8]}"


class TestQdrantInMemory(StorageConformanceTests):
    @pytest.fixture
    def make_store(self):
        def make(namespace="main", **options):
            return VectorStorageBackend(
                "qdrant", namespace=namespace, dimensions=DIMENSIONS,
                embedder=hash_embedder, **options)

        return make

    @pytest.fixture
    def make_unavailable_store(self):
        return lambda: VectorStorageBackend(
            "qdrant", dimensions=DIMENSIONS, embedder=hash_embedder,
            url=f"http://127.0.0.1:{closed_port()}", api_key="qdrant-secret-key", timeout=1)


class TestQdrantOnDisk(StorageConformanceTests):
    @pytest.fixture
    def make_store(self, tmp_path):
        def make(namespace="main", **options):
            return VectorStorageBackend(
                "qdrant", namespace=namespace, dimensions=DIMENSIONS, path=str(tmp_path / "q"),
                embedder=hash_embedder, **options)

        return make


class TestMilvusLite(StorageConformanceTests):
    @pytest.fixture
    def make_store(self, milvus_db):
        def make(namespace="main", **options):
            return VectorStorageBackend(
                "milvus", namespace=unique(namespace), index_name="conformance",
                dimensions=DIMENSIONS, path=milvus_db, embedder=hash_embedder, **options)

        return make

    @pytest.fixture
    def make_unavailable_store(self):
        return lambda: VectorStorageBackend(
            "milvus", dimensions=DIMENSIONS, embedder=hash_embedder,
            url=f"http://127.0.0.1:{closed_port()}", api_key="root:milvus-secret", timeout=1)


class TestPinecone(StorageConformanceTests):
    @pytest.fixture
    def make_store(self, pinecone_server):
        def make(namespace="main", **options):
            return VectorStorageBackend(
                "pinecone", api_key=pinecone_server.api_key, namespace=unique(namespace),
                index_name="conformance", dimensions=DIMENSIONS, url=pinecone_server.url,
                embedder=hash_embedder, **options)

        return make

    @pytest.fixture
    def make_unavailable_store(self):
        return lambda: VectorStorageBackend(
            "pinecone", api_key="pcsk-secret-key", dimensions=DIMENSIONS,
            url=f"http://127.0.0.1:{closed_port()}", embedder=hash_embedder, timeout=1)
