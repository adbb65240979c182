"""Store configurations for integration tests (API, admin, commands), one per backend.

``STORE_KINDS`` maps a backend kind to the name of a fixture returning
``make(namespace: str) -> {"BACKEND": ..., "OPTIONS": {...}}``: a ``PRISM_STORAGE`` entry
for a new, empty, isolated store of that kind. Tests parametrized over ``STORE_KINDS`` run
against every backend. Each backend's test support adds its kind here.
"""

from __future__ import annotations

import uuid

import pytest

STORE_KINDS: dict[str, str] = {
    "file": "file_store_config",
    "memory": "memory_store_config",
    "orm": "orm_store_config",
    "redis": "redis_store_config",
    "supabase": "supabase_store_config",
    "vector": "vector_store_config",
}


@pytest.fixture
def file_store_config(tmp_path):
    def make(namespace: str = "main") -> dict:
        return {"BACKEND": "file", "OPTIONS": {"data_dir": str(tmp_path / "files" / namespace)}}

    return make


@pytest.fixture
def memory_store_config():
    """Memory stores under names of their own (the records outlive the test otherwise)."""
    run = uuid.uuid4().hex[:8]

    def make(namespace: str = "main") -> dict:
        return {"BACKEND": "memory", "OPTIONS": {"name": f"test-{run}-{namespace}"}}

    return make


@pytest.fixture
def redis_store_config(redis_server):
    """Stores on the session's private redis-server, each under a prefix of its own."""
    run = uuid.uuid4().hex[:8]

    def make(namespace: str = "main") -> dict:
        return {
            "BACKEND": "redis",
            "OPTIONS": {"url": redis_server.url, "prefix": f"test-{run}:{namespace}:"},
        }

    return make


@pytest.fixture
def orm_store_config():
    run = uuid.uuid4().hex[:8]

    def make(namespace: str = "main") -> dict:
        return {"BACKEND": "orm", "OPTIONS": {"namespace": f"{namespace}-{run}"}}

    return make


@pytest.fixture
def store_config(request):
    """``store_config(kind, namespace)``: the PRISM_STORAGE entry of a fresh store."""

    def make(kind: str, namespace: str = "main") -> dict:
        return request.getfixturevalue(STORE_KINDS[kind])(namespace)

    return make
