"""Similarity search, filters, vectors and schemas of the vector backend, on every provider.

Qdrant runs embedded, Milvus through milvus-lite, Pinecone through the real SDK against the
stand-in server; live tests run against real services when their variables are set.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from datetime import UTC, datetime

import numpy as np
import pytest

from prism_storage import Registry, VectorStorageBackend
from prism_storage.exceptions import (
    BackendUnavailableError,
    InvalidOptionError,
    InvalidValueError,
    MissingDependencyError,
    SchemaMismatchError,
    UnsupportedOperationError,
    VersionConflictError,
)
from tests.support.vector import closed_port, hash_embedder

# qdrant-client warns (rightly) when an API key goes over plain HTTP, as in outage tests.
pytestmark = pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection")

PROVIDERS = ["qdrant", "milvus", "pinecone"]
METRICS = ["cosine", "euclidean", "dotproduct"]


@pytest.fixture
async def make(request):
    """``make(provider, index, **options)``: a store on a fresh namespace, closed after."""
    made: list[VectorStorageBackend] = []

    def factory(provider: str, index: str, **options):
        options.setdefault("namespace", uuid.uuid4().hex[:10])
        if provider == "milvus":
            options.setdefault("path", request.getfixturevalue("milvus_db"))
            index = index.replace("-", "_")
        elif provider == "pinecone":
            server = request.getfixturevalue("pinecone_server")
            options.setdefault("api_key", server.api_key)
            options.setdefault("url", server.url)
        store = VectorStorageBackend(provider, index_name=index, **options)
        made.append(store)
        return store

    yield factory
    for store in made:
        await store.close()


# ---------------------------------------------------------------- score equivalence


@pytest.fixture(scope="module")
def dataset():
    rng = np.random.default_rng(20240601)
    vectors = rng.standard_normal((1000, 64)).astype(np.float32)
    queries = rng.standard_normal((12, 64)).astype(np.float32)
    return vectors, queries


def exact_scores(metric: str, vectors: np.ndarray, query: np.ndarray) -> np.ndarray:
    data, q = vectors.astype(np.float64), query.astype(np.float64)
    if metric == "cosine":
        return data @ q / (np.linalg.norm(data, axis=1) * np.linalg.norm(q))
    if metric == "dotproduct":
        return data @ q
    return 1.0 / (1.0 + np.linalg.norm(data - q, axis=1))


@pytest.mark.parametrize("metric", METRICS)
async def test_every_provider_returns_the_same_results_and_scores(make, dataset, metric):
    vectors, queries = dataset
    records = {f"doc-{i:04}": {"embedding": v.tolist(), "i": i} for i, v in enumerate(vectors)}
    stores = {
        p: make(p, f"equivalence-{metric}", dimensions=64, metric=metric, timeout=60)
        for p in PROVIDERS
    }
    for store in stores.values():
        await store.set_many(records)
    for query in queries:
        truth = exact_scores(metric, vectors, query)
        best = np.argsort(-truth, kind="stable")[:10]
        expected_keys = [f"doc-{i:04}" for i in best]
        for provider, store in stores.items():
            results = await store.search(query.tolist(), limit=10)
            keys = [r["key"] for r in results]
            assert keys == expected_keys, provider  # recall@10 = 1.0, in the exact order
            for result, index in zip(results, best, strict=True):
                assert result["score"] == pytest.approx(truth[index], abs=1e-4), provider
                assert result["value"] == records[result["key"]]
            scores = [r["score"] for r in results]
            assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_search_limit_and_score_meaning(make, provider):
    store = make(provider, "limits", dimensions=3, metric="euclidean")
    await store.set_many(
        {
            "near": {"embedding": [1.0, 0.0, 0.0]},
            "far": {"embedding": [4.0, 0.0, 0.0]},  # distance 3
            "other": {"embedding": [1.0, 2.0, 0.0]},  # distance 2
        }
    )
    results = await store.search([1.0, 0.0, 0.0], limit=2)
    assert [r["key"] for r in results] == ["near", "other"]
    assert [r["score"] for r in results] == pytest.approx([1.0, 1 / 3], abs=1e-6)
    assert len(await store.search([1.0, 0.0, 0.0], limit=1000)) == 3
    for bad in (0, -1, 1001, "5", True, 2.0):
        with pytest.raises(InvalidValueError):
            await store.search([1.0, 0.0, 0.0], limit=bad)


# ---------------------------------------------------------------- filters

FILTER_RECORDS = {
    "a": {"kind": "note", "n": 1, "score": 0.5, "flag": True},
    "b": {"kind": "task", "n": 2, "score": 1.5, "flag": False},
    "c": {"kind": "note", "n": 3.0, "score": -2},
    "d": {"kind": "memo", "n": 10, "flag": True, "nested": {"n": 1}},
    "e": {"kind": "x" * 2000, "n": "3", "list": [1, 2]},
}

FILTER_CASES = [
    ({"kind": "note"}, "ac"),
    ({"kind": {"$eq": "task"}}, "b"),
    ({"kind": {"$ne": "note"}}, "bde"),
    ({"n": 3}, "c"),  # 3 == 3.0; the string "3" is not a number
    ({"n": {"$ne": 3}}, "abde"),
    ({"n": {"$gt": 2}}, "cd"),
    ({"n": {"$gte": 2}}, "bcd"),
    ({"n": {"$lt": 2}}, "a"),
    ({"n": {"$lte": 2.0}}, "ab"),
    ({"n": {"$gt": 1, "$lt": 10}}, "bc"),
    ({"score": {"$lt": 0}}, "c"),
    ({"kind": {"$in": ["memo", "task"]}}, "bd"),
    ({"n": {"$in": [1, 10, 99]}}, "ad"),
    ({"kind": {"$nin": ["note", "memo"]}}, "be"),
    ({"flag": True}, "ad"),
    ({"flag": {"$ne": True}}, "bce"),
    ({"flag": {"$in": [False, "x"]}}, "b"),
    ({"n": {"$nin": [1, True]}}, "bcde"),
    ({"$or": [{"kind": "task"}, {"n": {"$gte": 10}}]}, "bd"),
    ({"$and": [{"kind": "note"}, {"flag": True}]}, "a"),
    ({"kind": "note", "n": {"$gt": 1}}, "c"),
    ({"$or": [{"$and": [{"kind": "note"}, {"n": 1}]}, {"flag": False}]}, "ab"),
    ({"nested": {"$eq": 1}}, ""),  # only top-level scalars are indexed
]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_filters(make, provider):
    store = make(provider, "filters", dimensions=4)
    await store.set_many(
        {
            key: {**value, "embedding": [1.0, i + 1.0, 0.5, -1.0]}
            for i, (key, value) in enumerate(FILTER_RECORDS.items())
        }
    )
    for spec, expected in FILTER_CASES:
        results = await store.search([1.0, 1.0, 1.0, 1.0], limit=10, filter=spec)
        assert "".join(sorted(r["key"] for r in results)) == expected, spec


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_bad_filters_are_refused_before_io(provider):
    store = unreachable(provider)
    vector = [1.0, 0.0, 0.0, 0.0]
    for unsupported in (
        {"kind": {"$regex": "^n"}},
        {"kind": {"$exists": True}},
        {"$not": {"kind": "note"}},
    ):
        with pytest.raises(UnsupportedOperationError):
            await store.search(vector, filter=unsupported)
    for invalid in (
        {"n": {"$gt": "3"}},
        {"n": {"$gt": True}},
        {"n": {"$in": []}},
        {"n": {"$in": 3}},
        {"n": None},
        {"n": {"$eq": [1]}},
        {"n": {}},
        {"$or": []},
        {"$and": {"n": 1}},
        {"embedding": 1},
        {"_prism_key": "a"},
        {"bad-name": 1},
        {"kind": "x" * 1025},
        {"score": math.nan},
    ):
        with pytest.raises(InvalidValueError):
            await store.search(vector, filter=invalid)
    await store.close()


# ---------------------------------------------------------------- vectors and records


def unreachable(provider: str, **options) -> VectorStorageBackend:
    options.setdefault("dimensions", 4)
    if provider == "pinecone":
        options.setdefault("api_key", "pcsk-never-shown-1234")
    return VectorStorageBackend(
        provider, url=f"http://127.0.0.1:{closed_port()}", timeout=1, **options
    )


BAD_VECTORS = [
    ("too short", [1.0, 2.0, 3.0]),
    ("too long", [1.0] * 5),
    ("NaN", [1.0, math.nan, 0.0, 0.0]),
    ("infinity", [1.0, math.inf, 0.0, 0.0]),
    ("string item", [1.0, "2", 0.0, 0.0]),
    ("bool item", [1.0, True, 0.0, 0.0]),
    ("None item", [1.0, None, 0.0, 0.0]),
    ("not a list", "1,2,3,4"),
    ("dict", {"x": 1}),
    ("all zeros", [0.0, 0.0, 0.0, 0]),
]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(("label", "vector"), BAD_VECTORS, ids=[b[0] for b in BAD_VECTORS])
async def test_bad_vectors_are_refused_before_io(provider, label, vector):
    store = unreachable(provider)
    with pytest.raises(InvalidValueError, match="embedding"):
        await store.set("k", {"embedding": vector})
    with pytest.raises(InvalidValueError):
        await store.set_many({"ok": {"embedding": [1.0, 0, 0, 0]}, "k": {"embedding": vector}})
    if not isinstance(vector, str):
        with pytest.raises(InvalidValueError):
            await store.search(vector)
    await store.close()


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_value_without_vector_needs_an_embedder(provider):
    store = unreachable(provider)
    with pytest.raises(InvalidValueError, match="no embedder"):
        await store.set("k", {"text": "hello"})
    with pytest.raises(InvalidValueError, match="no embedder"):
        await store.search("hello")
    broken = unreachable(provider, embedder=lambda text: [1.0, 2.0])
    with pytest.raises(InvalidValueError, match="dimensions"):
        await broken.set("k", {"text": "hello"})
    # Every outage is typed, never a hang or None.
    with pytest.raises(BackendUnavailableError):
        await store.set("k", {"embedding": [1.0, 0.0, 0.0, 0.0]})
    await store.close()
    await broken.close()


# ---------------------------------------------------------------- versioned records


@pytest.mark.parametrize(
    ("provider", "options", "single_process"),
    [
        ("qdrant", {}, True),
        ("qdrant", {"path": "unused-qdrant-dir"}, True),
        ("milvus", {"path": "unused.db"}, True),
        ("qdrant", {"url": "http://127.0.0.1:6333"}, False),
        ("milvus", {"url": "http://127.0.0.1:19530"}, False),
        ("pinecone", {"api_key": "pcsk-never-shown-1234"}, False),
    ],
)
def test_conditional_and_list_flags_follow_the_engine_mode(provider, options, single_process):
    store = VectorStorageBackend(provider, dimensions=4, **options)
    capabilities = store.capabilities
    assert store.supports_versions is True and capabilities["versions"] is True
    assert store.shared_across_processes is not single_process
    assert store.supports_conditional_writes is single_process
    assert store.supports_atomic_lists is single_process
    assert capabilities["conditional_writes"] is single_process
    assert capabilities["atomic_lists"] is single_process


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_shared_server_refuses_conditions_and_lists_before_any_io(provider):
    # The server is unreachable: a call that tried a non-atomic fallback would reach it
    # and raise BackendUnavailableError instead.
    store = unreachable(provider, embedder=lambda text: [1.0, 0.0, 0.0, 0.0])
    calls = [
        store.put("k", {"v": 1}, if_absent=True),
        store.put("k", {"v": 1}, if_version="0123456789abcdef"),
        store.remove("k", if_version="0123456789abcdef"),
        store.update("k", lambda value: {"v": 1}),
        store.append("k", [1]),
        store.pop("k"),
    ]
    for call in calls:
        with pytest.raises(UnsupportedOperationError):
            await call
    with pytest.raises(BackendUnavailableError):
        await store.get_record("k")  # versions themselves are kept on every provider
    await store.close()


async def write_point_without_metadata(store, key: str, value: dict) -> None:
    """Write ``key`` as the backend did before records carried metadata."""
    from prism_storage.backends.vector.adapter import point_id
    from prism_storage.backends.vector.pinecone import encode_id

    adapter = await store._adapter()
    data = json.dumps(value, separators=(",", ":"))
    vector = value["embedding"]
    ns = store.namespace
    if store.provider == "qdrant":
        point = adapter.models.PointStruct(
            id=point_id(ns, key),
            vector=vector,
            payload={"n": 1, "_prism_key": key, "_prism_ns": ns, "_prism_value": data},
        )
        async with adapter._client() as client:
            await client.upsert(store.index_name, points=[point], wait=True)
    elif store.provider == "milvus":
        row = {"id": point_id(ns, key), "vector": vector, "ns": ns, "key": key}
        client = await adapter._connect()
        await client.upsert(adapter.collection, [{**row, "value": data, "meta": {"n": 1}}])
    else:
        metadata = {"_prism_key": key, "_prism_value": data, "n": 1}
        await adapter._index.upsert(
            vectors=[{"id": encode_id(key), "values": vector, "metadata": metadata}],
            namespace=ns,
            show_progress=False,
        )


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_points_written_before_metadata_stay_readable_and_writable(make, provider):
    store = make(provider, "legacy-points", dimensions=4)
    old = {"embedding": [1.0, 0.0, 0.0, 0.0], "n": 1, "text": "from the old version"}
    await write_point_without_metadata(store, "old", old)
    assert await store.get("old") == old
    assert (await store.keys()).keys == ["old"]
    [hit] = await store.search([1.0, 0.0, 0.0, 0.0], 1, filter={"n": 1})
    assert hit["key"] == "old" and hit["value"] == old
    record = await store.get_record("old")
    assert record is not None and record.value == old
    epoch = datetime.fromtimestamp(0, UTC)
    assert record.created_at == record.updated_at == epoch  # unknown: before versions
    assert record.version  # derived from the stored value: the same on every read
    again = await store.get_many_records(["old"])
    assert again["old"].version == record.version
    if store.supports_conditional_writes:
        written = await store.put("old", {**old, "n": 2}, if_version=record.version)
        with pytest.raises(VersionConflictError):
            await store.put("old", old, if_version=record.version)
    else:
        written = await store.put("old", {**old, "n": 2})
    assert written.created is False and written.version != record.version
    now = await store.get_record("old")
    assert now is not None and now.value == {**old, "n": 2}
    assert now.version == written.version
    assert now.created_at == epoch and now.updated_at > epoch


@pytest.mark.parametrize("provider", ["qdrant", "milvus"])
async def test_append_and_pop_recompute_the_vector_as_set_does(make, provider):
    store = make(provider, "reembed", dimensions=8, embedder=hash_embedder)

    async def best(text: str) -> dict:
        [hit] = await store.search(hash_embedder(text), 1)
        return hit

    await store.set("filler", {"text": "something else"})
    await store.append("chat", [{"role": "user", "content": "hello"}])
    assert (await best("hello"))["key"] == "chat"
    assert (await best("hello"))["score"] == pytest.approx(1.0)
    await store.append("chat", [{"role": "assistant", "content": "world"}])
    assert (await best("hello\nworld"))["key"] == "chat"
    assert (await best("hello\nworld"))["score"] == pytest.approx(1.0)
    assert (await best("hello"))["score"] < 0.99  # the old vector is gone
    assert await store.pop("chat") == {"role": "assistant", "content": "world"}
    assert (await best("hello"))["score"] == pytest.approx(1.0)
    # A value with its own embedding keeps it.
    own = [0.5] * 8
    await store.set("own", {"embedding": own, "messages": []})
    await store.append("own", [{"content": "hello"}])
    [hit] = await store.search(own, 1)
    assert hit["key"] == "own" and hit["score"] == pytest.approx(1.0)
    assert hit["value"] == {"embedding": own, "messages": [{"content": "hello"}]}


async def test_appends_from_several_event_loops_lose_nothing(tmp_path):
    # Each thread runs its own loop and its own store on one embedded Qdrant directory:
    # the per-key locks are shared by every loop and thread of the process.
    import asyncio
    import threading

    path = str(tmp_path / "q")

    def options(namespace: str = "loops") -> dict:
        return {"path": path, "namespace": namespace, "dimensions": 8, "embedder": hash_embedder}

    async def appender(worker: int) -> None:
        store = VectorStorageBackend("qdrant", **options())
        for n in range(25):
            await store.append("shared", [{"w": worker, "n": n}])
        await store.close()

    keeper = VectorStorageBackend("qdrant", **options())  # keeps the engine open
    await keeper.set("other", {"text": "x"})
    threads = [threading.Thread(target=asyncio.run, args=(appender(w),)) for w in range(3)]
    for thread in threads:
        thread.start()
    await appender(3)
    for thread in threads:
        thread.join()
    value = await keeper.get("shared")
    assert value is not None
    for worker in range(4):
        assert [i["n"] for i in value["messages"] if i["w"] == worker] == list(range(25))
    assert len(value["messages"]) == 100
    await keeper.close()


async def test_a_cancelled_waiter_never_keeps_a_key_lock():
    import asyncio

    from prism_storage.backends.vector.locks import KeyLocks

    locks = KeyLocks()

    async def holder(release: asyncio.Event, entered: list[str]) -> None:
        async with locks.hold(["k"]):
            entered.append("holder")
            await release.wait()

    async def waiter(name: str, entered: list[str]) -> None:
        async with locks.hold(["k", "other"]):
            entered.append(name)

    for cancel_after_handover in (False, True):
        release = asyncio.Event()
        entered: list[str] = []
        first = asyncio.create_task(holder(release, entered))
        await asyncio.sleep(0)
        cancelled = asyncio.create_task(waiter("cancelled", entered))
        await asyncio.sleep(0)
        following = asyncio.create_task(waiter("next", entered))  # queued behind it
        await asyncio.sleep(0)
        if cancel_after_handover:
            release.set()
            await first  # the lock is handed to the waiter, which has not run yet
            cancelled.cancel()
        else:
            cancelled.cancel()
            await asyncio.sleep(0)
            release.set()
            await first
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        await asyncio.wait_for(following, 10)  # would hang if the lock were kept
        assert entered == ["holder", "next"]
        assert locks._entries == {}


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_embedders_and_text_fields(make, provider):
    seen: list[str] = []

    async def embed(text: str) -> list[float]:
        seen.append(text)
        return hash_embedder(text)[:4]

    store = make(provider, "embedders", dimensions=4, embedder=embed, text_field="body")
    chat = {
        "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    }
    await store.set_many(
        {
            "body": {"body": "the body text", "title": "t"},
            "chat": chat,
            "plain": {"n": 1},
            "own": {"embedding": [0.5, 0.5, 0.5, 0.5]},
        }
    )
    assert seen[:3] == ["the body text", "Hi\nHello!", '{"n":1}']
    assert await store.get("own") == {"embedding": [0.5, 0.5, 0.5, 0.5]}
    assert await store.get("chat") == chat
    hits = await store.search("Hi\nHello!", limit=1)
    assert hits[0]["key"] == "chat"
    assert hits[0]["score"] == pytest.approx(1.0, abs=1e-5)
    hits = await store.search([0.5, 0.5, 0.5, 0.5], limit=1)
    assert hits[0]["key"] == "own"
    assert hits[0]["value"] == {"embedding": [0.5, 0.5, 0.5, 0.5]}


async def test_embedder_by_dotted_path_through_the_registry():
    store = Registry.create(
        "vector", provider="qdrant", dimensions=8, embedder="tests.support.vector.hash_embedder"
    )
    await store.set("k", {"text": "hello"})
    assert (await store.search("hello", limit=1))[0]["key"] == "k"
    await store.close()


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_namespaces_isolate_search(make, provider):
    one = make(provider, "namespaces", dimensions=2, namespace="agents")
    two = make(provider, "namespaces", dimensions=2, namespace="agents_v2")
    await one.set("a", {"embedding": [1.0, 0.0]})
    await two.set("b", {"embedding": [1.0, 0.0]})
    assert [r["key"] for r in await one.search([1.0, 0.0])] == ["a"]
    assert [r["key"] for r in await two.search([1.0, 0.0])] == ["b"]
    await one.delete("a")
    assert await one.search([1.0, 0.0]) == []
    assert await two.get("b") == {"embedding": [1.0, 0.0]}
    await two.delete("b")


# ---------------------------------------------------------------- schemas and options


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_existing_index_with_another_shape_is_refused(make, provider, tmp_path):
    index = f"shape-{uuid.uuid4().hex[:8]}"
    shared = {"path": str(tmp_path / "qdrant")} if provider == "qdrant" else {}
    original = make(provider, index, dimensions=4, metric="cosine", **shared)
    await original.set("kept", {"embedding": [1.0, 2.0, 3.0, 4.0]})
    for options in (
        {"dimensions": 5, "metric": "cosine"},
        {"dimensions": 4, "metric": "euclidean"},
    ):
        other = make(provider, index, namespace=original.namespace, **options, **shared)
        with pytest.raises(SchemaMismatchError, match="configured with"):
            await other.get("kept")
        with pytest.raises(SchemaMismatchError):
            await other.set("new", {"embedding": [1.0] * options["dimensions"]})
    assert await original.get("kept") == {"embedding": [1.0, 2.0, 3.0, 4.0]}


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_secrets_never_appear_in_errors_or_repr(provider):
    secret = "sk-SECRET-value-9876"
    url = f"http://user:url-password-5555@127.0.0.1:{closed_port()}"
    store = VectorStorageBackend(provider, api_key=secret, url=url, dimensions=2, timeout=1)
    assert secret not in repr(store) and "url-password-5555" not in repr(store)
    with pytest.raises(BackendUnavailableError) as caught:
        await store.get("k")
    chain = []
    error: BaseException | None = caught.value
    while error is not None:
        chain.append(f"{error!r} {error}")
        error = error.__cause__
    assert secret not in " ".join(chain)
    await store.close()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"provider": "chroma"}, "provider"),
        ({"provider": "qdrant", "metric": "manhattan"}, "metric"),
        ({"provider": "qdrant", "dimensions": 0}, "dimensions"),
        ({"provider": "qdrant", "dimensions": "384"}, "dimensions"),
        ({"provider": "qdrant", "url": "http://localhost:6333", "path": "/tmp/x"}, "not both"),
        ({"provider": "milvus", "index_name": "9lives"}, "Milvus"),
        ({"provider": "milvus", "path": "/tmp/milvus"}, ".db"),
        ({"provider": "pinecone"}, "api_key"),
        ({"provider": "pinecone", "api_key": "k", "index_name": "Upper_Case"}, "Pinecone"),
        ({"provider": "qdrant", "embedder": "no.such.module.embed"}, "embedder"),
        ({"provider": "qdrant", "embedder": 42}, "embedder"),
        ({"provider": "qdrant", "timeout": 0}, "timeout"),
        ({"provider": "qdrant", "namespace": ""}, "namespace"),
    ],
)
def test_invalid_options(options, message):
    with pytest.raises(InvalidOptionError, match=message):
        VectorStorageBackend(**options)


@pytest.mark.parametrize(
    ("provider", "module", "extra"),
    [
        ("qdrant", "qdrant_client", "qdrant"),
        ("milvus", "pymilvus", "milvus"),
        ("milvus", "milvus_lite", "milvus"),
        ("pinecone", "pinecone", "pinecone"),
    ],
)
def test_check_dependencies_names_the_extra(monkeypatch, provider, module, extra):
    VectorStorageBackend.check_dependencies(provider=provider)
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == module else real(name, *a)
    )
    with pytest.raises(MissingDependencyError, match=rf"prism-storage\[{extra}\]"):
        VectorStorageBackend.check_dependencies(provider=provider)


def test_importing_the_backend_imports_no_client():
    import subprocess
    import sys

    code = (
        "import sys; import prism_storage.backends.vector; "
        "print(sorted(m for m in ('qdrant_client', 'pymilvus', 'pinecone') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"},
        check=True,
    )
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------- live services

LIVE = [
    (
        "qdrant",
        "QDRANT_URL",
        lambda: {"url": os.environ["QDRANT_URL"], "api_key": os.environ.get("QDRANT_API_KEY")},
    ),
    (
        "milvus",
        "MILVUS_URI",
        lambda: {"url": os.environ["MILVUS_URI"], "api_key": os.environ.get("MILVUS_TOKEN")},
    ),
    (
        "pinecone",
        "PINECONE_API_KEY",
        lambda: {
            "api_key": os.environ["PINECONE_API_KEY"],
            "environment": os.environ.get("PINECONE_ENVIRONMENT"),
        },
    ),
]


@pytest.mark.live
@pytest.mark.parametrize(("provider", "variable", "options"), LIVE, ids=[p[0] for p in LIVE])
async def test_live_round_trip_and_search(provider, variable, options):
    if not os.environ.get(variable):
        pytest.skip(f"{variable} is not set")
    store = VectorStorageBackend(
        provider,
        index_name="prism-storage-live-tests",
        dimensions=4,
        namespace=f"live-{uuid.uuid4().hex[:8]}",
        timeout=30,
        **options(),
    )
    try:
        await store.set_many(
            {
                "a": {"embedding": [1.0, 0.0, 0.0, 0.0], "kind": "x"},
                "b": {"embedding": [0.0, 1.0, 0.0, 0.0], "kind": "y"},
            }
        )
        assert await store.get("a") == {"embedding": [1.0, 0.0, 0.0, 0.0], "kind": "x"}
        hits = await store.search([1.0, 0.1, 0.0, 0.0], limit=2, filter={"kind": "x"})
        assert [h["key"] for h in hits] == ["a"]
    finally:
        await store.delete_many(["a", "b"])
        await store.close()
