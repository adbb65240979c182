"""The Pinecone test stand-in, exercised through the real ``pinecone`` SDK (sync and asyncio).

Where the SDK validates an argument before sending it (id length, ``top_k``), the
stand-in's own limit is checked with a plain HTTP request instead.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from pinecone import (
    ApiError,
    ConflictError,
    NotFoundError,
    PayloadTooLargeError,
    Pinecone,
    ServerlessSpec,
    ServiceError,
    UnauthorizedError,
)

from tests.standins.pinecone_server import PineconeStandIn

SPEC = ServerlessSpec(cloud="aws", region="us-east-1")


@pytest.fixture
def server() -> Iterator[PineconeStandIn]:
    with PineconeStandIn(api_key="pcsk-test-key") as stand_in:
        yield stand_in


@pytest.fixture
def pc(server: PineconeStandIn) -> Iterator[Pinecone]:
    client = Pinecone(api_key=server.api_key, host=server.url)
    yield client
    client.close()


@pytest.fixture
def make_index(server: PineconeStandIn, pc: Pinecone) -> Iterator[Callable[..., Any]]:
    """Create an index and return a sync data-plane client for it (closed afterwards)."""
    opened = []

    def make(name: str = "idx", dimension: int = 3, metric: str = "cosine") -> Any:
        pc.create_index(name, dimension=dimension, metric=metric, spec=SPEC)
        index = pc.Index(host=server.index_host(name))
        opened.append(index)
        return index

    yield make
    for index in opened:
        index.close()


def raw_request(server: PineconeStandIn, method: str, url: str, body: Any = None) -> tuple:
    """Send one request without the SDK; returns (status, decoded JSON body)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Api-Key", server.api_key)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


# --- control plane -----------------------------------------------------------------------


def test_create_describe_list_delete_index(server, pc):
    created = pc.create_index("movies", dimension=8, metric="dotproduct", spec=SPEC)
    described = pc.describe_index("movies")
    for model in (created, described):
        assert (model.name, model.dimension, model.metric) == ("movies", 8, "dotproduct")
        assert model.status.ready is True
        assert model.host == server.index_host("movies")
        assert (model.deployment.cloud, model.deployment.region) == ("aws", "us-east-1")
    pc.create_index("books", dimension=4, metric="euclidean", spec=SPEC)
    assert sorted(index.name for index in pc.list_indexes()) == ["books", "movies"]
    assert pc.has_index("movies") and not pc.has_index("absent")

    pc.delete_index("movies")
    assert not pc.has_index("movies")
    assert [index.name for index in pc.list_indexes()] == ["books"]
    with pytest.raises(NotFoundError):
        pc.describe_index("movies")
    with pytest.raises(KeyError):
        server.index_host("movies")


def test_creating_an_existing_index_is_a_409(pc):
    pc.create_index("movies", dimension=3, metric="cosine", spec=SPEC)
    with pytest.raises(ConflictError) as caught:
        pc.create_index("movies", dimension=3, metric="cosine", spec=SPEC)
    assert caught.value.status_code == 409
    assert caught.value.error_code == "ALREADY_EXISTS"


def test_index_looked_up_by_name_reaches_the_data_plane(make_index, pc):
    make_index("by-name")
    index = pc.Index(name="by-name")
    try:
        assert index.upsert(vectors=[("a", [1.0, 0.0, 0.0])]).upserted_count == 1
    finally:
        index.close()


def test_wrong_api_key_is_a_401_on_both_planes(server, make_index):
    make_index("idx")
    intruder = Pinecone(api_key="pcsk-wrong", host=server.url)
    index = intruder.Index(host=server.index_host("idx"))
    try:
        with pytest.raises(UnauthorizedError):
            intruder.list_indexes()
        with pytest.raises(UnauthorizedError) as caught:
            index.upsert(vectors=[("a", [1.0, 2.0, 3.0])])
        assert caught.value.status_code == 401
    finally:
        index.close()
        intruder.close()
    request = urllib.request.Request(f"{server.index_host('idx')}/describe_index_stats")
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(request, timeout=10)
    with missing.value:
        assert missing.value.code == 401
        assert json.loads(missing.value.read())["message"] == "Invalid API Key"


# --- upsert, fetch, query ----------------------------------------------------------------


def test_upsert_and_fetch_round_trip(make_index):
    index = make_index(dimension=3)
    response = index.upsert(
        vectors=[
            {"id": "a", "values": [0.1, 0.2, 0.3], "metadata": {"genre": "drama", "year": 2020}},
            ("b", [1.0, -2.0, 3.5]),
        ]
    )
    assert response.upserted_count == 2
    fetched = index.fetch(ids=["a", "b", "missing"])
    assert sorted(fetched.vectors) == ["a", "b"]
    assert fetched.vectors["a"].values == pytest.approx([0.1, 0.2, 0.3])
    assert fetched.vectors["a"].metadata == {"genre": "drama", "year": 2020}
    assert fetched.vectors["b"].metadata is None

    index.upsert(vectors=[("a", [3.0, 2.0, 1.0])])  # an upsert replaces the whole record
    replaced = index.fetch(ids=["a"]).vectors["a"]
    assert replaced.values == [3.0, 2.0, 1.0] and replaced.metadata is None


@pytest.mark.parametrize("metric", ["cosine", "dotproduct", "euclidean"])
def test_query_scores_match_numpy(make_index, metric):
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(60, 16)).astype(np.float32)
    query = rng.normal(size=16).astype(np.float32)
    index = make_index(dimension=16, metric=metric)
    index.upsert(vectors=[(f"v{n:02d}", row.tolist()) for n, row in enumerate(vectors)])

    rows, q = vectors.astype(np.float64), query.astype(np.float64)
    if metric == "cosine":
        expected = rows @ q / (np.linalg.norm(rows, axis=1) * np.linalg.norm(q))
    elif metric == "dotproduct":
        expected = rows @ q
    else:
        expected = ((rows - q) ** 2).sum(axis=1)
    best_first = np.argsort(expected if metric == "euclidean" else -expected)[:10]

    result = index.query(vector=query.tolist(), top_k=10)
    assert [m.id for m in result.matches] == [f"v{n:02d}" for n in best_first]
    assert [m.score for m in result.matches] == pytest.approx(expected[best_first], rel=1e-5)


def test_query_returns_values_and_metadata_only_when_asked(make_index):
    index = make_index(dimension=2)
    index.upsert(vectors=[{"id": "a", "values": [1.0, 0.0], "metadata": {"k": "v"}}])
    bare = index.query(vector=[1.0, 0.0], top_k=1).matches[0]
    assert (bare.values, bare.metadata) == ([], None)
    full = index.query(vector=[1.0, 0.0], top_k=1, include_values=True, include_metadata=True)
    assert (full.matches[0].values, full.matches[0].metadata) == ([1.0, 0.0], {"k": "v"})


def test_query_by_stored_id_and_top_k_larger_than_namespace(make_index):
    index = make_index(dimension=2, metric="euclidean")
    index.upsert(vectors=[("near", [1.0, 1.0]), ("far", [9.0, 9.0]), ("mid", [3.0, 3.0])])
    result = index.query(id="near", top_k=50)
    assert [(m.id, m.score) for m in result.matches] == [("near", 0), ("mid", 8), ("far", 128)]


# --- delete, namespaces, stats -----------------------------------------------------------


def test_delete_by_ids_filter_and_all(make_index):
    index = make_index(dimension=2)
    index.upsert(
        vectors=[
            {"id": f"r{n}", "values": [1.0, float(n)], "metadata": {"n": n}} for n in range(6)
        ],
        namespace="ns",
    )
    index.delete(ids=["r0", "r1", "not-there"], namespace="ns")
    assert sorted(index.fetch(ids=[f"r{n}" for n in range(6)], namespace="ns").vectors) == [
        "r2",
        "r3",
        "r4",
        "r5",
    ]
    index.delete(filter={"n": {"$gte": 4}}, namespace="ns")
    assert index.describe_index_stats().namespaces["ns"].vector_count == 2
    index.delete(delete_all=True, namespace="ns")
    assert "ns" not in index.describe_index_stats().namespaces
    with pytest.raises(NotFoundError):  # serverless Pinecone: no such namespace
        index.delete(delete_all=True, namespace="ns")


def test_namespaces_are_isolated(make_index):
    index = make_index(dimension=2)
    index.upsert(vectors=[("same-id", [1.0, 0.0])], namespace="left")
    index.upsert(vectors=[("same-id", [0.0, 1.0]), ("only-right", [1.0, 1.0])], namespace="right")
    index.upsert(vectors=[("default", [1.0, 2.0])])

    assert index.fetch(ids=["same-id"], namespace="left").vectors["same-id"].values == [1.0, 0.0]
    assert index.fetch(ids=["only-right"], namespace="left").vectors == {}
    assert [m.id for m in index.query(vector=[1.0, 1.0], top_k=5, namespace="left").matches] == [
        "same-id"
    ]
    assert [m.id for m in index.query(vector=[1.0, 1.0], top_k=5).matches] == ["default"]
    stats = index.describe_index_stats()
    counts = {name: ns.vector_count for name, ns in stats.namespaces.items()}
    assert counts == {"__default__": 1, "left": 1, "right": 2}
    assert (stats.total_vector_count, stats.dimension) == (4, 2)
    index.delete(delete_all=True, namespace="right")
    assert index.fetch(ids=["same-id"], namespace="left").vectors["same-id"].values == [1.0, 0.0]


# --- metadata filters --------------------------------------------------------------------

FILTER_RECORDS = {
    "a": {"genre": "drama", "year": 2019, "rating": 7.5, "tags": ["x", "y"], "free": True},
    "b": {"genre": "comedy", "year": 2020, "rating": 8.0, "tags": ["y"], "free": False},
    "c": {"genre": "drama", "year": 2021, "rating": 6.0, "tags": ["z"]},
    "d": {"genre": "action", "year": 2020},
}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ({"genre": "drama"}, "ac"),
        ({"genre": {"$eq": "comedy"}}, "b"),
        ({"year": 2020.0}, "bd"),
        ({"free": True}, "a"),
        ({"free": 1}, ""),
        ({"genre": {"$ne": "drama"}}, "bd"),
        ({"rating": {"$ne": 8}}, "acd"),
        ({"year": {"$gt": 2020}}, "c"),
        ({"year": {"$gte": 2020}}, "bcd"),
        ({"rating": {"$lt": 7.5}}, "c"),
        ({"rating": {"$lte": 7.5}}, "ac"),
        ({"year": {"$gte": 2019, "$lt": 2021}}, "abd"),
        ({"genre": {"$in": ["comedy", "action"]}}, "bd"),
        ({"genre": {"$nin": ["comedy", "action"]}}, "ac"),
        ({"tags": "y"}, "ab"),
        ({"tags": {"$in": ["z", "q"]}}, "c"),
        ({"tags": {"$nin": ["y"]}}, "cd"),
        ({"rating": {"$exists": True}}, "abc"),
        ({"rating": {"$exists": False}}, "d"),
        ({"$and": [{"genre": "drama"}, {"year": {"$gt": 2019}}]}, "c"),
        ({"$or": [{"genre": "action"}, {"rating": {"$gte": 7.5}}]}, "abd"),
        ({"$or": [{"$and": [{"genre": "drama"}, {"free": True}]}, {"year": 2021}]}, "ac"),
    ],
)
def test_filter_operators(make_index, expression, expected):
    index = make_index(dimension=2)
    index.upsert(
        vectors=[
            {"id": key, "values": [1.0, float(n)], "metadata": metadata}
            for n, (key, metadata) in enumerate(FILTER_RECORDS.items())
        ]
    )
    result = index.query(vector=[1.0, 1.0], top_k=10, filter=expression)
    assert "".join(sorted(m.id for m in result.matches)) == expected


@pytest.mark.parametrize(
    "expression",
    [
        {"year": {"$regex": "20.*"}},
        {"$not": {"year": 2020}},
        {"year": {"$gt": "2019"}},
        {"genre": {"$in": "drama"}},
        {"rating": {"$exists": 1}},
        {"$and": {"genre": "drama"}},
        {"genre": {"$eq": ["drama"]}},
    ],
)
def test_invalid_filters_are_a_400(make_index, expression):
    index = make_index(dimension=2)
    index.upsert(vectors=[("a", [1.0, 0.0])])
    with pytest.raises(ApiError) as caught:
        index.query(vector=[1.0, 0.0], top_k=1, filter=expression)
    assert caught.value.status_code == 400
    assert caught.value.body["code"] == 3


# --- listing ids -------------------------------------------------------------------------


def test_list_ids_paginates_in_id_order(make_index):
    index = make_index(dimension=2)
    ids = [f"doc{n:02d}#chunk" for n in range(25)] + ["other-1", "other-2"]
    index.upsert(vectors=[(i, [1.0, 1.0]) for i in reversed(ids)], namespace="ns")

    pages, token = [], None
    while True:
        page = index.list_paginated(prefix="doc", limit=10, namespace="ns", pagination_token=token)
        pages.append([item.id for item in page.vectors])
        if page.pagination is None:
            break
        token = page.pagination.next
    assert [len(p) for p in pages] == [10, 10, 5]
    assert [i for page in pages for i in page] == sorted(i for i in ids if i.startswith("doc"))

    every = [item.id for page in index.list(namespace="ns", limit=4) for item in page.vectors]
    assert every == sorted(ids)
    assert index.list_paginated(namespace="empty").vectors == []


# --- limits ------------------------------------------------------------------------------


def _metadata_of_size(size: int) -> dict[str, str]:
    overhead = len(json.dumps({"text": ""}, separators=(",", ":")))
    return {"text": "x" * (size - overhead)}


def test_metadata_limit_is_40_kb(make_index):
    index = make_index(dimension=2)
    index.upsert(
        vectors=[{"id": "fits", "values": [1.0, 0.0], "metadata": _metadata_of_size(40960)}]
    )
    with pytest.raises(ApiError) as caught:
        index.upsert(
            vectors=[{"id": "big", "values": [1.0, 0.0], "metadata": _metadata_of_size(40961)}]
        )
    assert caught.value.status_code == 400
    assert "40960" in caught.value.message
    assert sorted(index.fetch(ids=["fits", "big"]).vectors) == ["fits"]


def test_metadata_values_must_be_flat_on_the_wire(server, make_index):
    make_index(dimension=2)
    url = f"{server.index_host('idx')}/vectors/upsert"
    for metadata in ({"nested": {"a": 1}}, {"mixed": ["a", 1]}, {"nothing": None}):
        vector = {"id": "a", "values": [1, 0], "metadata": metadata}
        status, body = raw_request(server, "POST", url, {"vectors": [vector]})
        assert (status, body["code"]) == (400, 3)
    status, _ = raw_request(server, "POST", url, {"vectors": [{"id": "a", "values": [1, 0]}]})
    assert status == 200


def test_dimension_mismatch_is_a_400(make_index):
    index = make_index(dimension=3)
    with pytest.raises(ApiError) as upsert:
        index.upsert(vectors=[("a", [1.0, 2.0])])
    assert upsert.value.status_code == 400
    assert upsert.value.message == "Vector dimension 2 does not match the dimension of the index 3"
    index.upsert(vectors=[("a", [1.0, 2.0, 3.0])])
    with pytest.raises(ApiError) as query:
        index.query(vector=[1.0, 2.0, 3.0, 4.0], top_k=1)
    assert query.value.status_code == 400
    assert "Query vector dimension 4" in query.value.message


def test_a_vector_needs_a_non_zero_value(make_index):
    index = make_index(dimension=2)
    with pytest.raises(ApiError) as caught:
        index.upsert(vectors=[("zero", [0.0, 0.0])])
    assert caught.value.status_code == 400


def test_upsert_batch_limits(make_index):
    index = make_index(dimension=2)
    with pytest.raises(ApiError) as count:
        index.upsert(vectors=[(f"v{n}", [1.0, 0.0]) for n in range(1001)])
    assert count.value.status_code == 400
    bulky = {"text": "x" * 3000}
    with pytest.raises(PayloadTooLargeError) as size:
        index.upsert(
            vectors=[{"id": f"v{n}", "values": [1.0, 0.0], "metadata": bulky} for n in range(800)]
        )
    assert size.value.status_code == 413
    assert index.upsert(vectors=[(f"v{n}", [1.0, 0.0]) for n in range(1000)]).upserted_count == 1000
    assert index.describe_index_stats().total_vector_count == 1000


def test_id_length_and_top_k_limits_on_the_wire(server, make_index):
    make_index(dimension=2)
    host = server.index_host("idx")
    ok, _ = raw_request(
        server, "POST", f"{host}/vectors/upsert", {"vectors": [{"id": "i" * 512, "values": [1, 0]}]}
    )
    assert ok == 200
    status, body = raw_request(
        server, "POST", f"{host}/vectors/upsert", {"vectors": [{"id": "i" * 513, "values": [1, 0]}]}
    )
    assert (status, body["code"]) == (400, 3)
    for top_k in (0, 10_001):
        status, _ = raw_request(server, "POST", f"{host}/query", {"vector": [1, 0], "topK": top_k})
        assert status == 400
    status, _ = raw_request(server, "POST", f"{host}/query", {"vector": [1, 0], "topK": 10_000})
    assert status == 200


# --- outages -----------------------------------------------------------------------------


def test_fail_next_makes_the_sdk_raise(server, make_index):
    index = make_index(dimension=2)
    server.fail_next(status=503, count=4)  # the SDK makes four attempts
    with pytest.raises(ServiceError) as caught:
        index.upsert(vectors=[("a", [1.0, 0.0])])
    assert caught.value.status_code == 503
    assert index.upsert(vectors=[("a", [1.0, 0.0])]).upserted_count == 1


def test_one_failure_is_absorbed_by_the_sdk_retry(server, make_index):
    index = make_index(dimension=2)
    server.fail_next(status=500, count=1)
    before = len(server.requests)
    assert index.upsert(vectors=[("a", [1.0, 0.0])]).upserted_count == 1
    assert [method for method, _ in server.requests[before:]] == ["POST", "POST"]


def test_fail_next_rejects_nonsense():
    stand_in = PineconeStandIn()
    with pytest.raises(ValueError):
        stand_in.fail_next(status=200)
    with pytest.raises(ValueError):
        stand_in.fail_next(count=0)


# --- asyncio client ----------------------------------------------------------------------


async def test_asyncio_client_round_trip(server, make_index, pc):
    make_index("async-idx", dimension=3, metric="dotproduct")
    async with pc.IndexAsyncio(host=server.index_host("async-idx")) as index:
        upserted = await index.upsert(
            vectors=[
                {"id": "a", "values": [1.0, 0.0, 0.0], "metadata": {"tag": "one"}},
                {"id": "b", "values": [0.0, 2.0, 0.0], "metadata": {"tag": "two"}},
            ],
            namespace="ns",
        )
        assert upserted.upserted_count == 2
        fetched = await index.fetch(ids=["a"], namespace="ns")
        assert fetched.vectors["a"].metadata == {"tag": "one"}
        result = await index.query(vector=[1.0, 3.0, 0.0], top_k=2, namespace="ns")
        assert [(m.id, m.score) for m in result.matches] == [("b", 6.0), ("a", 1.0)]
        filtered = await index.query(
            vector=[1.0, 3.0, 0.0], top_k=2, namespace="ns", filter={"tag": "one"}
        )
        assert [m.id for m in filtered.matches] == ["a"]
        listed = await index.list_paginated(namespace="ns", limit=1)
        assert [v.id for v in listed.vectors] == ["a"] and listed.pagination is not None
        await index.delete(ids=["a"], namespace="ns")
        stats = await index.describe_index_stats()
        assert stats.namespaces["ns"].vector_count == 1

        server.fail_next(status=503, count=4)
        with pytest.raises(ServiceError):
            await index.query(vector=[1.0, 0.0, 0.0], top_k=1, namespace="ns")


async def test_concurrent_asyncio_requests(server, make_index, pc):
    make_index("busy", dimension=2)
    async with pc.IndexAsyncio(host=server.index_host("busy")) as index:
        await asyncio.gather(
            *(index.upsert(vectors=[(f"v{n}", [1.0, float(n)])]) for n in range(20))
        )
        assert (await index.describe_index_stats()).total_vector_count == 20


# --- the server itself -------------------------------------------------------------------


def test_several_sync_clients_in_threads(server, make_index):
    make_index("shared", dimension=2)
    errors: list[BaseException] = []

    def writer(worker: int) -> None:
        client = Pinecone(api_key=server.api_key, host=server.url)
        index = client.Index(host=server.index_host("shared"))
        try:
            for n in range(10):
                index.upsert(vectors=[(f"w{worker}-{n}", [1.0, float(n)])])
        except BaseException as exc:  # surfaced to the test thread below
            errors.append(exc)
        finally:
            index.close()
            client.close()

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with Pinecone(api_key=server.api_key, host=server.url) as client:
        index = client.Index(host=server.index_host("shared"))
        assert index.describe_index_stats().total_vector_count == 40
        index.close()


def test_accepted_sockets_have_nagle_disabled(server, make_index):
    make_index(dimension=2)
    with socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1]))) as sock:
        sock.sendall(b"GET /indexes HTTP/1.1\r\nHost: x\r\nApi-Key: pcsk-test-key\r\n\r\n")
        assert sock.recv(64).startswith(b"HTTP/1.1 200")
        connections = list(server._server._connections)
        assert connections
        assert all(c.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for c in connections)


def test_stop_ends_every_server_thread(make_index):
    before = set(threading.enumerate())
    stand_in = PineconeStandIn().start()
    client = Pinecone(api_key=stand_in.api_key, host=stand_in.url)
    client.create_index("idx", dimension=2, metric="cosine", spec=SPEC)
    index = client.Index(host=stand_in.index_host("idx"))
    index.upsert(vectors=[("a", [1.0, 0.0])])  # leaves an idle keep-alive connection
    stand_in.stop()
    assert set(threading.enumerate()) - before == set()
    index.close()
    client.close()
    with pytest.raises(RuntimeError):
        _ = stand_in.url
