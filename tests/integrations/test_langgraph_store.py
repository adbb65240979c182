"""The LangGraph store on prism stores, tested the way LangGraph tests its own stores,
and against LangGraph's InMemoryStore wherever both must give the same answer."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from langgraph.store.base import (
    GetOp,
    InvalidNamespaceError,
    ListNamespacesOp,
    MatchCondition,
    PutOp,
    SearchOp,
)
from langgraph.store.memory import InMemoryStore

from prism_storage import FileStorageBackend, MemoryStorageBackend
from prism_storage.integrations.langgraph import PrismStore
from prism_storage.segments import decode_segment, encode_segment
from prism_storage.testing import FakeClock

KINDS = [
    "memory",
    "file",
    "redis",
    "supabase",
    pytest.param("orm", marks=pytest.mark.django_db(transaction=True, databases=["default"])),
    pytest.param("orm-pg", marks=pytest.mark.django_db(transaction=True, databases=["pg"])),
]


@pytest.fixture(params=KINDS)
def make_backend(request, tmp_path):
    """A fresh, empty prism store of each listing kind (redis and orm keep no versions
    yet on this branch: they take the path where the times live in the record)."""
    if request.param == "redis":
        server = request.getfixturevalue("redis_server")
    if request.param == "supabase":
        supabase_config = request.getfixturevalue("supabase_store_config")
    if request.param.startswith("orm"):
        request.getfixturevalue("close_db_connections")

    def make():
        run = uuid.uuid4().hex[:8]
        if request.param == "memory":
            return MemoryStorageBackend(f"lg-store-{run}")
        if request.param == "file":
            return FileStorageBackend(data_dir=tmp_path / run)
        if request.param == "redis":
            from prism_storage import RedisStorageBackend

            return RedisStorageBackend(url=server.url, prefix=f"lg-{run}:")
        if request.param == "supabase":
            from prism_storage.handler import build_store

            config = supabase_config(run)
            return build_store("langgraph", config["BACKEND"], config["OPTIONS"])
        from prism_storage import ORMStorageBackend

        database = "pg" if request.param == "orm-pg" else "default"
        return ORMStorageBackend(namespace=f"lg-{run}", using=database)

    return make


@pytest.fixture
async def store(make_backend):
    backend = make_backend()
    try:
        yield PrismStore(backend)
    finally:
        await backend.close()


async def test_put_get_delete(store):
    before = datetime.now(UTC)
    await store.aput(("users", "u1"), "profile", {"name": "Ada", "langs": ["en"]})
    item = await store.aget(("users", "u1"), "profile")
    assert item.namespace == ("users", "u1") and item.key == "profile"
    assert item.value == {"name": "Ada", "langs": ["en"]}
    assert item.created_at.tzinfo is not None and item.created_at >= before.replace(microsecond=0)
    assert item.updated_at >= item.created_at

    await store.aput(("users", "u1"), "profile", {"name": "Ada L."})
    again = await store.aget(("users", "u1"), "profile")
    assert again.value == {"name": "Ada L."}
    assert again.created_at == item.created_at and again.updated_at >= item.updated_at

    assert await store.aget(("users",), "profile") is None
    assert await store.aget(("users", "u1", "x"), "profile") is None
    await store.adelete(("users", "u1"), "profile")
    assert await store.aget(("users", "u1"), "profile") is None
    await store.adelete(("users", "u1"), "profile")  # deleting what is gone does nothing


async def test_namespaces_never_match_a_longer_label(store):
    await store.aput(("a",), "k", {"in": "a"})
    await store.aput(("ab",), "k", {"in": "ab"})
    await store.aput(("a", "b"), "k", {"in": "a/b"})
    await store.aput(("a/b",), "k", {"in": "a%2Fb"})
    assert (await store.aget(("a",), "k")).value == {"in": "a"}
    assert (await store.aget(("a/b",), "k")).value == {"in": "a%2Fb"}
    found = {tuple(i.namespace) for i in await store.asearch(("a",))}
    assert found == {("a",), ("a", "b")}
    assert {i.value["in"] for i in await store.asearch(("ab",))} == {"ab"}
    assert await store.alist_namespaces(prefix=("a",)) == [("a",), ("a", "b")]


# The data and questions LangGraph's own store tests ask, answered here and by InMemoryStore.
DOCS = {
    ("docs", "reports"): {
        "r1": {"kind": "report", "score": 4.5, "tags": ["a", "b"], "meta": {"lang": "en"}},
        "r2": {"kind": "report", "score": 3, "tags": ["b"], "meta": {"lang": "fr", "x": 1}},
    },
    ("docs", "notes", "2024"): {
        "n1": {"kind": "note", "score": 5, "status": "active"},
        "n2": {"kind": "note", "score": 2.5, "status": "archived"},
    },
    ("users", "u1", "memories"): {"m1": {"kind": "memory", "score": 1}},
    ("users", "u2", "memories"): {"m2": {"kind": "memory", "score": 2}},
}
FILTERS = [
    None,
    {"kind": "report"},
    {"kind": "note", "status": "active"},
    {"score": {"$gt": 3}},
    {"score": {"$gte": 3, "$lt": 5}},
    {"score": {"$lte": 2}},
    {"kind": {"$ne": "note"}},
    {"kind": {"$eq": "memory"}},
    {"tags": ["a", "b"]},
    {"tags": ["b"]},
    {"meta": {"lang": "fr"}},
    {"meta": {"lang": "fr", "x": 2}},
    {"missing": None},
    # Mixed: the first fields go to the database where it finds by containment.
    {"kind": "note", "score": {"$gt": 3}},
    {"meta": {"lang": "fr"}, "kind": "report"},
    {"meta": {}},
    {"score": 5},
    {"score": 3.0},
    {"score": 1},
    {"score": True},
    {"kind": "report", "tags": ["b"]},
]
PREFIXES = [(), ("docs",), ("docs", "notes"), ("users",), ("users", "u1", "memories"), ("nope",)]


@pytest.fixture
async def filled(store):
    reference = InMemoryStore()
    for namespace, items in DOCS.items():
        for key, value in items.items():
            await store.aput(namespace, key, value)
            await reference.aput(namespace, key, value)
    return store, reference


@pytest.mark.parametrize("prefix", PREFIXES)
async def test_search_finds_what_in_memory_store_finds(filled, prefix):
    store, reference = filled
    for filter in FILTERS:
        ours = await store.asearch(prefix, filter=filter, limit=50)
        theirs = await reference.asearch(prefix, filter=filter, limit=50)
        assert sorted((i.namespace, i.key) for i in ours) == sorted(
            (i.namespace, i.key) for i in theirs
        ), filter
        assert all(i.score is None for i in ours)


@pytest.mark.django_db(transaction=True, databases=["pg"])
async def test_a_filter_found_by_containment_pages_as_the_listing_does(close_db_connections):
    from prism_storage import ORMStorageBackend

    backend = ORMStorageBackend(namespace=f"lg-{uuid.uuid4().hex[:8]}", using="pg")
    try:
        pushed, listed = PrismStore(backend), PrismStore(backend)
        listed._contains = False
        assert pushed._contains
        # One batch: many items updated at the same moment, so pages cut through ties.
        await pushed.abatch(
            [
                PutOp(("p", f"n{i % 3}"), f"k{i:02}", {"kind": "a" if i % 2 else "b", "i": i})
                for i in range(30)
            ]
        )
        await pushed.aput(("p", "n0"), "late", {"kind": "a", "flag": True})
        for filter in [{"kind": "a"}, {"kind": "a", "i": {"$lt": 20}}, {"flag": True}]:
            for offset, limit in [(0, 1), (0, 5), (3, 4), (10, 10), (0, 100), (40, 5)]:
                for prefix in [("p",), ("p", "n1")]:
                    ours = await pushed.asearch(prefix, filter=filter, offset=offset, limit=limit)
                    theirs = await listed.asearch(prefix, filter=filter, offset=offset, limit=limit)
                    assert [(i.namespace, i.key, i.value) for i in ours] == [
                        (i.namespace, i.key, i.value) for i in theirs
                    ], (filter, offset, limit, prefix)
    finally:
        await backend.close()


async def test_an_order_operator_skips_values_that_are_not_numbers(store):
    # InMemoryStore raises from float() here; one item of another shape must not fail
    # every search of its namespace.
    await store.aput(("s",), "number", {"score": 4})
    await store.aput(("s",), "text", {"score": "n/a"})
    await store.aput(("s",), "none", {"other": 1})
    assert [i.key for i in await store.asearch(("s",), filter={"score": {"$gt": 3}})] == ["number"]


async def test_search_pages_newest_first(filled):
    store, _ = filled
    # Times are kept to the millisecond (redis): let the update come strictly later.
    await asyncio.sleep(0.01)
    await store.aput(("docs", "reports"), "r1", {**DOCS[("docs", "reports")]["r1"], "v": 2})
    everything = await store.asearch((), limit=50)
    assert len(everything) == 6 and everything[0].key == "r1"
    assert [i.updated_at for i in everything] == sorted(
        (i.updated_at for i in everything), reverse=True
    )
    pages = [await store.asearch((), limit=2, offset=offset) for offset in (0, 2, 4, 6)]
    assert [i.key for page in pages for i in page] == [i.key for i in everything]
    assert pages[-1] == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"prefix": ("docs",)},
        {"prefix": ("users", "*", "memories")},
        {"suffix": ("memories",)},
        {"suffix": ("*", "memories")},
        {"prefix": ("docs",), "suffix": ("2024",)},
        {"max_depth": 1},
        {"max_depth": 2},
        {"prefix": ("users",), "max_depth": 2},
        {"limit": 2},
        {"limit": 2, "offset": 1},
        {"prefix": ("do",)},
    ],
)
async def test_list_namespaces_as_in_memory_store(filled, kwargs):
    store, reference = filled
    assert await store.alist_namespaces(**kwargs) == await reference.alist_namespaces(**kwargs)


async def test_a_batch_reads_before_it_writes_and_the_last_put_wins(store):
    await store.aput(("ns",), "k", {"n": 0})
    results = await store.abatch(
        [
            PutOp(("ns",), "k", {"n": 1}),
            GetOp(("ns",), "k"),
            PutOp(("ns",), "k", {"n": 2}),
            PutOp(("ns",), "gone", {"n": 3}),
            PutOp(("ns",), "gone", None),
            SearchOp(("ns",), filter={"n": 0}),
            ListNamespacesOp(match_conditions=(MatchCondition("prefix", ("ns",)),)),
        ]
    )
    assert results[0] is None and results[1].value == {"n": 0}
    assert [i.key for i in results[5]] == ["k"]
    assert results[6] == [("ns",)]
    assert (await store.aget(("ns",), "k")).value == {"n": 2}
    assert await store.aget(("ns",), "gone") is None


async def test_concurrent_batches_lose_no_put_and_the_last_write_wins(store):
    import asyncio

    async def writer(n: int) -> None:
        await store.abatch(
            [PutOp(("c", str(n)), "own", {"n": n}), PutOp(("c",), "shared", {"n": n})]
        )

    await asyncio.gather(*(writer(n) for n in range(40)))
    found = await store.asearch(("c",), limit=100)
    assert sorted(i.value["n"] for i in found if i.key == "own") == list(range(40))
    shared = await store.aget(("c",), "shared")
    assert 0 <= shared.value["n"] < 40
    assert len(await store.alist_namespaces(prefix=("c",))) == 41


async def test_labels_langgraph_refuses_are_refused_in_direct_batches(store):
    with pytest.raises(InvalidNamespaceError):
        await store.abatch([PutOp(("a.b",), "k", {"x": 1})])
    with pytest.raises(InvalidNamespaceError):
        await store.aput(("a", ""), "k", {"x": 1})


async def test_ttl_in_minutes_maps_to_the_store_expiry():
    clock = FakeClock()
    store = PrismStore(MemoryStorageBackend(f"lg-ttl-{uuid.uuid4().hex[:8]}", clock=clock))
    assert store.supports_ttl
    await store.aput(("t",), "short", {"x": 1}, ttl=1)
    await store.aput(("t",), "kept", {"x": 2})
    clock.advance(59)
    assert (await store.aget(("t",), "short", refresh_ttl=False)).value == {"x": 1}
    clock.advance(2)
    assert await store.aget(("t",), "short") is None
    assert [i.key for i in await store.asearch(("t",))] == ["kept"]


async def test_reads_refresh_the_ttl_as_langgraph_stores_do():
    clock = FakeClock()
    backend = MemoryStorageBackend(f"lg-ttl-{uuid.uuid4().hex[:8]}", clock=clock)
    store = PrismStore(backend)
    await store.aput(("t",), "a", {"x": 1}, ttl=1)
    await store.aput(("t",), "b", {"x": 2}, ttl=1)
    await store.aput(("t",), "forever", {"x": 3})
    clock.advance(50)
    assert (await store.aget(("t",), "a")).value == {"x": 1}  # refreshed: 60 s from now
    clock.advance(50)  # b's minute is over; a has 10 s left
    assert await store.aget(("t",), "b", refresh_ttl=False) is None
    found = await store.asearch(("t",), filter={"x": 1})  # a search refreshes what it returns
    assert [item.key for item in found] == ["a"]
    clock.advance(55)
    assert (await store.aget(("t",), "a", refresh_ttl=False)).value == {"x": 1}
    clock.advance(10)
    assert await store.aget(("t",), "a") is None  # expired: never revived by the read
    record = await backend.get_record(store._key(("t",), "forever"))
    assert record is not None and record.expires_at is None  # no ttl, none added

    # TTLConfig(refresh_on_read=False) turns it off for reads that do not say.
    quiet = PrismStore(backend, ttl={"refresh_on_read": False})
    await quiet.aput(("q",), "k", {"x": 1}, ttl=1)
    clock.advance(50)
    assert (await quiet.aget(("q",), "k")).value == {"x": 1}
    clock.advance(20)
    assert await quiet.aget(("q",), "k") is None


async def test_a_read_pushes_the_expiry_back_on_every_store(make_backend):
    backend = make_backend()
    try:
        store = PrismStore(backend)
        if not store.supports_ttl:
            pytest.skip("the store keeps no expiry")
        await store.aput(("t",), "k", {"x": 1}, ttl=10)
        key = store._key(("t",), "k")
        before = (await backend.get_record(key)).expires_at
        await asyncio.sleep(0.05)  # expiries are kept to the millisecond
        assert (await store.aget(("t",), "k", refresh_ttl=False)).value == {"x": 1}
        assert (await backend.get_record(key)).expires_at == before
        assert [item.key for item in await store.asearch(("t",))] == ["k"]
        after = (await backend.get_record(key)).expires_at
        assert after - before >= timedelta(milliseconds=45)
    finally:
        await backend.close()


def test_sync_forms_from_sync_code(tmp_path):
    store = PrismStore(FileStorageBackend(data_dir=tmp_path))
    store.put(("s", "1"), "k", {"v": 1})
    assert store.get(("s", "1"), "k").value == {"v": 1}
    assert [i.key for i in store.search(("s",), filter={"v": 1})] == ["k"]
    assert store.list_namespaces() == [("s", "1")]
    store.delete(("s", "1"), "k")
    assert store.get(("s", "1"), "k") is None


def test_the_store_is_found_by_alias(settings):
    name = f"lg-alias-{uuid.uuid4().hex[:8]}"
    settings.PRISM_STORAGE = {"default": {"BACKEND": "memory", "OPTIONS": {"name": name}}}
    store = PrismStore("default")
    assert store.store.backend_name == "memory"


labels = st.text(min_size=1, max_size=20).filter(lambda s: "\x00" not in s)


@given(st.text(max_size=30))
def test_a_segment_round_trips_and_never_holds_a_slash(label):
    segment = encode_segment(label)
    assert "/" not in segment and segment
    assert decode_segment(segment) == label


@given(st.lists(labels, min_size=1, max_size=4), labels)
def test_namespace_and_key_round_trip_through_the_record_key(namespace, key):
    store = PrismStore(MemoryStorageBackend("lg-encoding"))
    record_key = store._key(tuple(namespace), key)
    assert store._namespace_of(record_key) == tuple(namespace)
    assert decode_segment(record_key.rsplit("/", 1)[1]) == key


VOCABULARY = ["tea", "coffee", "green", "black", "dog", "cat", "python", "rust"]


def words_embedder(text: str) -> list[float]:
    """Counts of a few words: texts sharing words point the same way (cosine)."""
    words = text.lower().replace('"', " ").replace(",", " ").split()
    counts = [float(words.count(word)) for word in VOCABULARY]
    return [c + 0.01 for c in counts]  # never the zero vector


@pytest.fixture(params=["qdrant", "milvus"])
async def semantic(request, tmp_path):
    from prism_storage import VectorStorageBackend

    if request.param == "qdrant":
        engine = {"path": str(tmp_path / "qdrant")}
    else:
        milvus_db = request.getfixturevalue("milvus_db")
        engine = {"path": milvus_db, "namespace": f"lg-{uuid.uuid4().hex[:8]}"}
    backend = VectorStorageBackend(
        request.param,
        index_name="langgraph",
        dimensions=len(VOCABULARY),
        embedder=words_embedder,
        **engine,
    )
    try:
        yield PrismStore(backend)
    finally:
        await backend.close()


async def test_a_query_on_a_vector_store_is_its_similarity_search(semantic):
    await semantic.aput(("u", "ada"), "m1", {"text": "green tea tea", "kind": "drink"})
    await semantic.aput(("u", "ada"), "m2", {"text": "black coffee", "kind": "drink"})
    await semantic.aput(("u", "ada"), "m3", {"text": "my cat", "kind": "pet"})
    await semantic.aput(("u", "bob"), "m4", {"text": "tea tea tea", "kind": "drink"})
    await semantic.aput(("u", "ada", "old"), "m5", {"text": "tea", "kind": "drink"})
    # Records of the same store that are not memories must not come back.
    await semantic.store.set("other", {"text": "tea"})

    found = await semantic.asearch(("u", "ada"), query="tea")
    assert [i.key for i in found][:2] in (["m1", "m5"], ["m5", "m1"])
    assert {i.key for i in found} == {"m1", "m2", "m3", "m5"}
    assert all(i.score is not None for i in found)
    assert [i.score for i in found] == sorted((i.score for i in found), reverse=True)
    assert found[0].created_at is not None

    drinks = await semantic.asearch(("u",), query="cat", filter={"kind": "pet"})
    assert [i.key for i in drinks] == ["m3"]
    assert [i.key for i in await semantic.asearch(("u", "bob"), query="coffee")] == ["m4"]
    page = await semantic.asearch(("u", "ada"), query="tea", limit=1, offset=1)
    assert [i.key for i in page] == [found[1].key]
    # Only the fields `index` names are embedded.
    await semantic.aput(("i",), "k", {"title": "rust", "body": "tea"}, index=["title"])
    await semantic.aput(("i",), "j", {"title": "tea", "body": "rust"}, index=["title"])
    assert [i.key for i in await semantic.asearch(("i",), query="tea", limit=1)] == ["j"]
    # Without a query the vector store lists and filters like every other store.
    assert {i.key for i in await semantic.asearch(("u",), filter={"kind": "drink"})} == {
        "m1",
        "m2",
        "m4",
        "m5",
    }
