"""A class implementing only the specification's protocol, registered through
``Registry.register``, is a full store through ``storages``, the JSON API and the admin."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from prism_storage import Registry, storages
from prism_storage.backends.base import BaseStorageBackend
from prism_storage.backends.protocol_adapter import ProtocolAdapter, as_store
from prism_storage.exceptions import (
    BackendUnavailableError,
    CorruptRecordError,
    InvalidKeyError,
    InvalidValueError,
    UnsupportedOperationError,
)
from prism_storage.testing import StorageConformanceTests


class BareStore:
    """Written against the bare protocol: no base class, no extensions, shared dicts."""

    buckets: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(self, bucket: str = "main") -> None:
        self.data = self.buckets.setdefault(bucket, {})
        self.calls: list[str] = []
        self.closed = 0

    async def get(self, key: str) -> dict[str, Any] | None:
        self.calls.append(f"get {key}")
        return self.data.get(key)  # its own dict, not a copy: the adapter must copy

    async def set(self, key: str, value: dict[str, Any]) -> None:
        self.calls.append(f"set {key}")
        self.data[key] = value  # keeps the caller's object: the adapter must copy

    async def delete(self, key: str) -> None:
        self.calls.append(f"delete {key}")
        self.data.pop(key, None)

    async def close(self) -> None:
        self.closed += 1


class DownStore(BareStore):
    async def get(self, key: str) -> dict[str, Any] | None:
        raise ConnectionRefusedError("nothing listens there")

    async def set(self, key: str, value: dict[str, Any]) -> None:
        raise ConnectionRefusedError("nothing listens there")

    async def delete(self, key: str) -> None:
        raise ConnectionRefusedError("nothing listens there")


@pytest.fixture
def bare(settings):
    Registry.register("bare", BareStore)
    BareStore.buckets.clear()
    settings.PRISM_STORAGE = {
        "default": {"BACKEND": "orm"},
        "bare": {"BACKEND": "bare", "OPTIONS": {"bucket": "b1"}},
    }
    yield
    Registry.unregister("bare")
    BareStore.buckets.clear()


class TestAdapterConformance(StorageConformanceTests):
    @pytest.fixture
    def make_store(self):
        BareStore.buckets.clear()

        def make(namespace="main", **options):
            return ProtocolAdapter(BareStore(namespace, **options))

        return make

    @pytest.fixture
    def make_unavailable_store(self):
        return lambda: ProtocolAdapter(DownStore("down"))


def test_storages_hands_out_a_full_store(bare):
    store = storages["bare"]
    assert isinstance(store, BaseStorageBackend) and isinstance(store, ProtocolAdapter)
    assert isinstance(store.provider, BareStore) and store.provider.data is BareStore.buckets["b1"]
    assert store.alias == "bare"
    assert storages["bare"] is store
    assert not any(store.capabilities.values())
    assert store.supports_text_search is False and store.dimensions is None
    assert "BareStore" in repr(store)


async def test_the_extended_api_through_fallbacks(bare):
    store = storages["bare"]
    provider = store.provider
    await store.set_many({"a": {"v": 1}, "b": {"v": 2}})
    assert await store.get_many(["a", "b", "missing"]) == {"a": {"v": 1}, "b": {"v": 2}}
    assert await store.exists("a") and not await store.exists("missing")
    await store.delete_many(["a", "missing"])
    assert await store.get("a") is None
    # One call per key, in order (no concurrency is assumed of the wrapped store).
    assert provider.calls[:2] == ["set a", "set b"]
    await store.ping()
    for call in (store.keys(), store.search([0.1]), store.sweep(), store.set("t", {}, ttl=5)):
        with pytest.raises(UnsupportedOperationError):
            await call
    with pytest.raises(InvalidKeyError):
        await store.get("")
    with pytest.raises(InvalidValueError):
        await store.set("k", {"x": float("nan")})
    await store.close()
    assert provider.closed == 1


async def test_values_cross_the_boundary_as_copies(bare):
    store = storages["bare"]
    value = {"messages": ["hi"]}
    await store.set("k", value)
    value["messages"].append("mutated by the caller")
    got = await store.get("k")
    assert got == {"messages": ["hi"]}
    got["messages"].clear()
    assert store.provider.data["k"] == {"messages": ["hi"]}


async def test_a_value_that_is_not_json_is_a_corrupt_record(bare):
    store = storages["bare"]
    store.provider.data["odd"] = {"when": object()}
    store.provider.data["list"] = [1, 2]
    for key in ("odd", "list"):
        with pytest.raises(CorruptRecordError, match="BareStore"):
            await store.get(key)


async def test_an_unreachable_provider_is_a_typed_error():
    store = ProtocolAdapter(DownStore("down"))
    with pytest.raises(BackendUnavailableError) as caught:
        await store.get("k")
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)


def test_as_store_leaves_full_stores_alone(tmp_path):
    from prism_storage import FileStorageBackend

    full = FileStorageBackend(data_dir=tmp_path)
    assert as_store(full, alias="x") is full
    wrapped = as_store(BareStore(), alias="x")
    assert isinstance(wrapped, ProtocolAdapter) and wrapped.alias == "x"


@pytest.mark.django_db
def test_the_api_listing_and_records(bare):
    user = User.objects.create_user("root", password="pw", is_superuser=True, is_staff=True)
    client = Client()
    client.force_login(user)
    stores = client.get("/prism/api/stores/").json()["stores"]
    entry = next(s for s in stores if s["alias"] == "bare")
    assert entry["backend"] == storages["bare"].backend_name
    assert entry["capabilities"] and not any(entry["capabilities"].values())
    response = client.get("/prism/api/stores/bare/records/")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unsupported_operation"
    response = client.put(
        "/prism/api/stores/bare/records/k",
        data=json.dumps({"v": 1}),
        content_type="application/json",
    )
    assert response.status_code == 201
    assert client.get("/prism/api/stores/bare/records/k").json() == {"key": "k", "value": {"v": 1}}
    response = client.post(
        "/prism/api/stores/bare/search",
        data='{"embedding": [1.0]}',
        content_type="application/json",
    )
    assert response.status_code == 400
    assert client.delete("/prism/api/stores/bare/records/k").status_code == 204
    assert BareStore.buckets["b1"] == {}


@pytest.mark.django_db
def test_the_admin(bare):
    user = User.objects.create_user("root", password="pw", is_superuser=True, is_staff=True)
    client = Client()
    client.force_login(user)
    async_to_sync(storages["bare"].set)("known", {"v": 1})

    def page(name: str, **query: str) -> str:
        path = reverse(f"admin:{name}", kwargs={"alias": "bare"})
        return path + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")

    response = client.get(reverse("admin:prism_storage_stores"))
    assert response.status_code == 200
    row = next(r for r in response.context["rows"] if r["alias"] == "bare")
    assert row["ok"] is True and row["capabilities"] == []
    response = client.get(page("prism_storage_store_records"))
    assert response.status_code == 200 and "cannot list its keys" in response.content.decode()
    response = client.get(page("prism_storage_store_record", key="known"))
    assert response.status_code == 200 and '"v": 1' in response.context["value_json"]
    response = client.post(
        page("prism_storage_store_record_edit"), {"key": "added", "value": '{"n": 2}'}
    )
    assert response.status_code == 302
    assert BareStore.buckets["b1"]["added"] == {"n": 2}
    response = client.get(page("prism_storage_store_search"))
    assert response.status_code == 200 and response.context["searchable"] is False
    response = client.post(
        page("prism_storage_store_delete"), {"key": ["known", "added"], "confirm": "yes"}
    )
    assert response.status_code == 302 and BareStore.buckets["b1"] == {}
