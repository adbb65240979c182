"""Vector-store test support: a deterministic embedder and the ``vector`` store kind."""

from __future__ import annotations

import hashlib
import socket
import struct

import pytest

#: Dimensions of :func:`hash_embedder` vectors.
DIMENSIONS = 8


def hash_embedder(text: str) -> list[float]:
    """A deterministic text -> vector function: equal texts give equal vectors.

    Not semantic at all; it only lets plain values get vectors in the conformance suite.
    """
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    numbers = struct.unpack(f">{DIMENSIONS}i", digest[: 4 * DIMENSIONS])
    return [n / 2**31 for n in numbers]


@pytest.fixture
def vector_store_config(tmp_path):
    """``make(namespace)``: an embedded Qdrant store on disk, namespaced in one collection."""

    def make(namespace: str = "main") -> dict:
        return {
            "BACKEND": "vector",
            "OPTIONS": {
                "provider": "qdrant",
                "path": str(tmp_path / "qdrant"),
                "namespace": namespace,
                "dimensions": DIMENSIONS,
                "embedder": "tests.support.vector.hash_embedder",
            },
        }

    return make


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def milvus_db(tmp_path_factory):
    """One milvus-lite engine for the session; tests isolate by namespace or collection."""
    path = str(tmp_path_factory.mktemp("milvus") / "prism.db")
    yield path
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(path)


@pytest.fixture(scope="session")
def pinecone_server():
    """The Pinecone-compatible test server (tests/standins), for the real pinecone SDK."""
    from tests.standins.pinecone_server import PineconeStandIn

    with PineconeStandIn(api_key="pcsk-test-key") as server:
        yield server
