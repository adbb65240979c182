"""The vector backend against each engine's raw client and against exact numpy search.

For each provider (Qdrant embedded in memory, Milvus through milvus-lite, Pinecone through
the SDK against the loopback stand-in server) it measures upsert throughput (vectors/s,
batches of 500) and search latency (p50/p99 of 200 top-10 queries) for
``VectorStorageBackend``, for the raw client doing the same calls with the same payloads
(the record encoded with the standard library's ``json``: the baseline) and for the raw
client with ``orjson``, plus recall@10 against numpy. Each round measures every path of a
case once, in an order rotated round by round (``--rounds``, default 5, 2 with
``--quick``); a figure is the median over rounds, a ratio the median of same-round ratios
(min-max shown; for searches the reference's p50 over the path's, so > 1 is faster).

    python -m bench.bench_vector            # 10k x 384
    python -m bench.bench_vector --quick    # 2k x 384, a smoke run
    python -m bench.bench_vector --large    # also 100k x 384 (slow, GBs of RAM for Qdrant)
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from bench.harness import (
    Case,
    Measure,
    Row,
    latencies,
    measure_cases,
    parser,
    print_table,
    rounds_of,
    save_json,
    setup_django,
)

DIMS = 384
BATCH = 500
QUERIES = 200


def dataset(n: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, DIMS)).astype(np.float32)
    queries = rng.standard_normal((QUERIES, DIMS)).astype(np.float32)
    return vectors, queries


def record(i: int, vector: list[float]) -> dict[str, Any]:
    return {
        "embedding": vector,
        "kind": "memory",
        "i": i,
        "text": f"memory number {i} about the quarterly report",
    }


def exact_top10(vectors: np.ndarray, queries: np.ndarray) -> np.ndarray:
    normed = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    return np.argsort(-(q @ normed.T), axis=1)[:, :10]


def recall(found: list[list[int]], truth: np.ndarray) -> float:
    hits = sum(len(set(f) & set(t.tolist())) for f, t in zip(found, truth, strict=True))
    return hits / truth.size


# ---------------------------------------------------------------- raw clients

RAW = "raw client"
RAW_ORJSON = "raw client + orjson"
PRISM = "prism_storage"


class RawCodec:
    """How a raw client encodes the record it stores next to the vector: the standard
    library's ``json`` or, with ``fast``, ``orjson`` (text: the engines store strings)."""

    def __init__(self, fast: bool) -> None:
        self.dumps: Callable[[Any], str] = json.dumps
        self.loads: Callable[[str | bytes], Any] = json.loads
        self.label = RAW
        if fast:
            import orjson

            def dumps(value: Any) -> str:
                return orjson.dumps(value).decode()

            self.dumps, self.loads, self.label = dumps, orjson.loads, RAW_ORJSON


class RawQdrant(RawCodec):
    def __init__(self, fast: bool = False) -> None:
        from qdrant_client import AsyncQdrantClient, models

        super().__init__(fast)
        self.models = models
        self.client = AsyncQdrantClient(location=":memory:")
        self.name = "raw_orjson" if fast else "raw"

    async def setup(self) -> None:
        params = self.models.VectorParams(size=DIMS, distance=self.models.Distance.COSINE)
        await self.client.create_collection(self.name, vectors_config=params)

    async def upsert(self, items: list[tuple[int, dict[str, Any]]]) -> None:
        points = [
            self.models.PointStruct(
                id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"k{i}")),
                vector=v["embedding"],
                payload={
                    "kind": v["kind"],
                    "i": float(i),
                    "text": v["text"],
                    "key": f"k{i}",
                    "ns": "",
                    "value": self.dumps(v),
                },
            )
            for i, v in items
        ]
        await self.client.upsert(self.name, points=points, wait=True)

    async def search(self, vector: list[float]) -> list[int]:
        ns = self.models.Filter(
            must=[self.models.FieldCondition(key="ns", match=self.models.MatchValue(value=""))]
        )
        response = await self.client.query_points(
            self.name, query=vector, limit=10, query_filter=ns, with_payload=True
        )
        return [self.loads(p.payload["value"])["i"] for p in response.points]

    async def close(self) -> None:
        await self.client.close()


class RawMilvus(RawCodec):
    def __init__(self, path: str, fast: bool = False) -> None:
        from pymilvus import AsyncMilvusClient, DataType, MilvusClient

        super().__init__(fast)
        self.types, self.sync = DataType, MilvusClient
        self.client = AsyncMilvusClient(uri=path)
        self.name = "raw_orjson" if fast else "raw"

    async def setup(self) -> None:
        schema = self.sync.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", self.types.VARCHAR, is_primary=True, max_length=36)
        schema.add_field("vector", self.types.FLOAT_VECTOR, dim=DIMS)
        schema.add_field("ns", self.types.VARCHAR, max_length=1024)
        schema.add_field("key", self.types.VARCHAR, max_length=2048)
        schema.add_field("value", self.types.VARCHAR, max_length=65535)
        schema.add_field("meta", self.types.JSON)
        index = self.sync.prepare_index_params()
        index.add_index(field_name="vector", index_type="FLAT", metric_type="COSINE")
        await self.client.create_collection(
            self.name, schema=schema, index_params=index, consistency_level="Strong"
        )

    async def upsert(self, items: list[tuple[int, dict[str, Any]]]) -> None:
        rows = [
            {
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"k{i}")),
                "vector": v["embedding"],
                "ns": "",
                "key": f"k{i}",
                "value": self.dumps(v),
                "meta": {"kind": v["kind"], "i": float(i), "text": v["text"]},
            }
            for i, v in items
        ]
        for start in range(0, len(rows), 128):
            await self.client.upsert(self.name, rows[start : start + 128])

    async def search(self, vector: list[float]) -> list[int]:
        result = await self.client.search(
            self.name,
            data=[vector],
            limit=10,
            filter='ns == ""',
            output_fields=["key", "value"],
            search_params={"metric_type": "COSINE"},
        )
        return [self.loads(hit["entity"]["value"])["i"] for hit in result[0]]

    async def close(self) -> None:
        await self.client.close()


class RawPinecone(RawCodec):
    def __init__(self, server: Any, fast: bool = False) -> None:
        from pinecone.async_client.pinecone import AsyncPinecone

        super().__init__(fast)
        self.index_name = "raw-orjson" if fast else "raw"
        self.control = AsyncPinecone(api_key=server.api_key, host=server.url)
        self.index: Any = None

    async def setup(self) -> None:
        from pinecone import ServerlessSpec

        model = await self.control.create_index(
            self.index_name,
            spec=ServerlessSpec(cloud="aws", region="us-east-1"),
            dimension=DIMS,
            metric="cosine",
        )
        self.index = await self.control.index(host=model.host)

    async def upsert(self, items: list[tuple[int, dict[str, Any]]]) -> None:
        vectors = [
            {
                "id": f"k{i}",
                "values": v["embedding"],
                "metadata": {
                    "kind": v["kind"],
                    "i": float(i),
                    "text": v["text"],
                    "_prism_key": f"k{i}",
                    "_prism_value": self.dumps(v),
                },
            }
            for i, v in items
        ]
        for start in range(0, len(vectors), 100):
            await self.index.upsert(vectors=vectors[start : start + 100], show_progress=False)

    async def search(self, vector: list[float]) -> list[int]:
        response = await self.index.query(top_k=10, vector=vector, include_metadata=True)
        return [self.loads(m.metadata["_prism_value"])["i"] for m in response.matches]

    async def close(self) -> None:
        await self.index.close()
        await self.control.close()


# ---------------------------------------------------------------- measuring


async def upsert_rate(
    n: int,
    items: list[tuple[int, dict[str, Any]]],
    upsert: Callable[[list[tuple[int, dict[str, Any]]]], Awaitable[None]],
) -> float:
    """Vectors/s of one pass upserting every item, in batches of ``BATCH``."""
    started = time.perf_counter()
    for start in range(0, n, BATCH):
        await upsert(items[start : start + BATCH])
    return n / (time.perf_counter() - started)


def search_measure(
    search: Callable[[list[float]], Awaitable[list[int]]],
    queries: list[list[float]],
    p99s: list[float],
) -> Measure:
    """One pass of every query: its p50 latency in ms (p99 appended to ``p99s``)."""

    async def measure() -> float:
        p50, p99 = await latencies(lambda i: search(queries[i % len(queries)]), count=len(queries))
        p99s.append(p99)
        return p50

    return measure


async def run_provider(
    provider: str,
    n: int,
    vectors: np.ndarray,
    queries: np.ndarray,
    truth: np.ndarray,
    workdir: str,
    server: Any,
    rounds: int,
) -> list[Row]:
    """Upserts (a pass after the first overwrites every record), then searches, each in
    rotated rounds of the raw client, the raw client with orjson and the backend."""
    from prism_storage import VectorStorageBackend

    raws: list[Any]
    if provider == "qdrant":
        raws = [RawQdrant(), RawQdrant(fast=True)]
        options: dict[str, Any] = {}
    elif provider == "milvus":
        raws = [RawMilvus(f"{workdir}/raw.db"), RawMilvus(f"{workdir}/raw-orjson.db", fast=True)]
        options = {"path": f"{workdir}/prism.db"}
    else:
        raws = [RawPinecone(server), RawPinecone(server, fast=True)]
        options = {"api_key": server.api_key, "url": server.url}
    store = VectorStorageBackend(
        provider, index_name="bench", dimensions=DIMS, timeout=120, **options
    )

    async def store_upsert(items: list[tuple[int, dict[str, Any]]]) -> None:
        await store.set_many({f"k{i}": value for i, value in items})

    async def store_search(vector: list[float]) -> list[int]:
        return [hit["value"]["i"] for hit in await store.search(vector, limit=10)]

    for raw in raws:
        await raw.setup()
    await store.ping()
    items = [(i, record(i, v)) for i, v in enumerate(vectors.tolist())]
    upserts = [(raw.label, raw.upsert) for raw in raws] + [(PRISM, store_upsert)]
    searches = [(raw.label, raw.search) for raw in raws] + [(PRISM, store_search)]
    query_list = queries.tolist()
    p99s: dict[str, list[float]] = {label: [] for label, _ in searches}

    def upsert_measure(
        upsert: Callable[[list[tuple[int, dict[str, Any]]]], Awaitable[None]],
    ) -> Measure:
        return lambda: upsert_rate(n, items, upsert)

    upsert_case = Case(
        "vector",
        f"{provider} upsert {n // 1000}k",
        [(label, upsert_measure(upsert)) for label, upsert in upserts],
        fast=RAW_ORJSON,
    )
    upsert_rows = await measure_cases([upsert_case], rounds)  # every record exists after
    recalls = {
        label: recall([await search(q) for q in query_list], truth) for label, search in searches
    }
    search_case = Case(
        "vector",
        f"{provider} search {n // 1000}k",
        [(label, search_measure(search, query_list, p99s[label])) for label, search in searches],
        fast=RAW_ORJSON,
        latency=True,
    )
    search_rows = await measure_cases([search_case], rounds)
    for row in upsert_rows + search_rows:
        row.extra["recall@10"] = recalls[row.path]
    for row in search_rows:
        row.p99_ms = statistics.median(p99s[row.path])
    for raw in raws:
        await raw.close()
    await store.close()
    return upsert_rows + search_rows


def numpy_rows(n: int, vectors: np.ndarray, queries: np.ndarray) -> list[Row]:
    normed = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    samples = []
    for q in queries:
        started = time.perf_counter()
        scores = normed @ (q / np.linalg.norm(q))
        np.argpartition(-scores, 10)[:10]
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return [
        Row(
            "vector",
            f"exact numpy search {n // 1000}k",
            "numpy (the limit)",
            p50_ms=samples[len(samples) // 2],
            p99_ms=samples[int(len(samples) * 0.99) - 1],
            baseline=True,
        )
    ]


async def main(args: Any) -> list[Row]:
    setup_django()
    from tests.standins.pinecone_server import PineconeStandIn

    sizes = [2_000] if args.quick else [10_000] + ([100_000] if args.large else [])
    rows: list[Row] = []
    with PineconeStandIn(api_key="pcsk-bench-key") as server:
        for n in sizes:
            vectors, queries = dataset(n)
            truth = exact_top10(vectors, queries)
            rows += numpy_rows(n, vectors, queries)
            for provider in ("qdrant", "milvus", "pinecone"):
                with tempfile.TemporaryDirectory() as workdir:
                    rows += await run_provider(
                        provider, n, vectors, queries, truth, workdir, server, args.rounds
                    )
                for index in ("bench", "raw", "raw-orjson"):
                    if server.get_index(index) is not None:
                        server.drop_index(index)
    return rows


if __name__ == "__main__":
    cli = parser(__doc__ or "")
    cli.add_argument("--large", action="store_true", help="also run 100k vectors")
    arguments = cli.parse_args()
    arguments.rounds = rounds_of(arguments)
    result = asyncio.run(main(arguments))
    print_table(
        result,
        f"vector backend vs raw clients, median of {arguments.rounds} rotated "
        "round(s) (search ratios: the reference's p50 / the path's)",
    )
    print("\n| case | path | recall@10 |\n|---|---|---:|")
    for row in result:
        if "recall@10" in row.extra and "search" in row.case:
            print(f"| {row.case} | {row.path} | {row.extra['recall@10']:.3f} |")
    if arguments.json:
        save_json(result, arguments.json)
