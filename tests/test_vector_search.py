"""Similarity search, filters, vectors and schemas of the vector backend, on every provider.

Qdrant runs embedded, Milvus through milvus-lite, Pinecone through the real SDK against the
stand-in server; live tests run against real services when their variables are set.
"""

from __future__ import annotations

import math
import os
import uuid

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
