"""The vector backend: the conformance suite on every provider, plus search itself.

Qdrant runs in its embedded local mode (in memory and on disk), Milvus through milvus-lite
(the Milvus engine as a local subprocess, one per test session), Pinecone through the real
SDK against the Pinecone-compatible stand-in server in ``tests/standins``.
"""

from __future__ import annotations

import json
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prism_storage import VectorStorageBackend
from prism_storage.exceptions import InvalidValueError
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
                "qdrant",
                namespace=namespace,
                dimensions=DIMENSIONS,
                embedder=hash_embedder,
                **options,
            )

        return make

    @pytest.fixture
    def make_unavailable_store(self):
        return lambda: VectorStorageBackend(
            "qdrant",
            dimensions=DIMENSIONS,
            embedder=hash_embedder,
            url=f"http://127.0.0.1:{closed_port()}",
            api_key="qdrant-secret-key",
            timeout=1,
        )


class TestQdrantOnDisk(StorageConformanceTests):
    # The embedded engine's on-disk writes are the slowest here (18 s for the default
    # churn): a smaller churn keeps the listing-under-writes case to a few seconds.
    churn_fixed_keys = 100
    churn_keys = 400

    @pytest.fixture
    def make_store(self, tmp_path):
        def make(namespace="main", **options):
            return VectorStorageBackend(
                "qdrant",
                namespace=namespace,
                dimensions=DIMENSIONS,
                path=str(tmp_path / "q"),
                embedder=hash_embedder,
                **options,
            )

        return make


class TestMilvusLite(StorageConformanceTests):
    @pytest.fixture
    def make_store(self, milvus_db):
        def make(namespace="main", **options):
            return VectorStorageBackend(
                "milvus",
                namespace=unique(namespace),
                index_name="conformance",
                dimensions=DIMENSIONS,
                path=milvus_db,
                embedder=hash_embedder,
                **options,
            )

        return make

    @pytest.fixture
    def make_unavailable_store(self):
        return lambda: VectorStorageBackend(
            "milvus",
            dimensions=DIMENSIONS,
            embedder=hash_embedder,
            url=f"http://127.0.0.1:{closed_port()}",
            api_key="root:milvus-secret",
            timeout=1,
        )


class TestPinecone(StorageConformanceTests):
    @pytest.fixture
    def make_store(self, pinecone_server):
        def make(namespace="main", **options):
            return VectorStorageBackend(
                "pinecone",
                api_key=pinecone_server.api_key,
                namespace=unique(namespace),
                index_name="conformance",
                dimensions=DIMENSIONS,
                url=pinecone_server.url,
                embedder=hash_embedder,
                **options,
            )

        return make

    @pytest.fixture
    def make_unavailable_store(self):
        return lambda: VectorStorageBackend(
            "pinecone",
            api_key="pcsk-secret-key",
            dimensions=DIMENSIONS,
            url=f"http://127.0.0.1:{closed_port()}",
            embedder=hash_embedder,
            timeout=1,
        )


# ------------------------------------------------------------------ pinecone metadata size

_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.integers()
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    fields=st.dictionaries(
        st.text(),
        st.text() | st.floats(allow_nan=False, allow_infinity=False) | st.booleans(),
        max_size=3,
    ),
    key=st.text(),
    value=st.dictionaries(st.text(), _json_values, max_size=4),
)
def test_pinecone_metadata_size_is_the_exact_json_size(fields, key, value):
    from prism_storage.backends.vector.pinecone import KEY, VALUE, metadata_size
    from prism_storage.codec import encode_value

    try:
        data = encode_value(value)
    except InvalidValueError:
        return  # not storable at all (NUL, lone surrogates): never sent
    metadata = {**fields, KEY: key, VALUE: data}
    exact = len(json.dumps(metadata, ensure_ascii=False, separators=(",", ":")).encode())
    assert metadata_size(metadata) == exact


async def test_pinecone_metadata_limit_is_checked_before_sending(pinecone_server):
    store = VectorStorageBackend(
        "pinecone",
        api_key=pinecone_server.api_key,
        namespace=unique("meta"),
        index_name="conformance",
        dimensions=DIMENSIONS,
        url=pinecone_server.url,
        embedder=hash_embedder,
    )
    # Quotes are escaped twice on the way (in the value's JSON, then in the metadata's),
    # and short string fields are copied into the metadata for filters.
    quotes = '"' * 1000
    fits = {f"f{i}": quotes for i in range(6)}  # about 36 KB of metadata
    await store.set("fits", fits)  # the stand-in server checks the size itself
    assert await store.get("fits") == fits
    too_big = {f"f{i}": quotes for i in range(7)}  # about 42 KB
    with pytest.raises(InvalidValueError, match="Pinecone metadata"):
        await store.set("big", too_big)
    assert await store.get("big") is None
    await store.close()
