"""The vector backend against each engine's raw client and against exact numpy search.

For each provider (Qdrant embedded in memory, Milvus through milvus-lite, Pinecone through
the SDK against the loopback stand-in server) it measures upsert throughput (vectors/s,
batches of 500, the median of ``--rounds`` interleaved passes) and search latency (top 10)
for ``VectorStorageBackend`` and for the raw client doing the same calls with the same
payloads, plus recall@10 against numpy.

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

from bench.harness import Row, latencies, parser, print_table, save_json, setup_django

DIMS = 384
BATCH = 500
QUERIES = 200


def dataset(n: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, DIMS)).astype(np.float32)
    queries = rng.standard_normal((QUERIES, DIMS)).astype(np.float32)
    return vectors, queries


def record(i: int, vector: list[float]) -> dict[str, Any]:
    return {"embedding": vector, "kind": "memory", "i": i,
            "text": f"memory number {i} about the quarterly report"}


def exact_top10(vectors: np.ndarray, queries: np.ndarray) -> np.ndarray:
    normed = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    return np.argsort(-(q @ normed.T), axis=1)[:, :10]


def recall(found: list[list[int]], truth: np.ndarray) -> float:
    hits = sum(len(set(f) & set(t.tolist())) for f, t in zip(found, truth, strict=True))
    return hits / truth.size


# ---------------------------------------------------------------- raw clients

class RawQdrant:
    def __init__(self) -> None:
        from qdrant_client import AsyncQdrantClient, models

        self.models = models
        self.client = AsyncQdrantClient(location=":memory:")
        self.name = "raw"

    async def setup(self) -> None:
        params = self.models.VectorParams(size=DIMS, distance=self.models.Distance.COSINE)
        await self.client.create_collection(self.name, vectors_config=params)

    async def upsert(self, items: list[tuple[int, dict[str, Any]]]) -> None:
        points = [self.models.PointStruct(
            id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"k{i}")), vector=v["embedding"],
            payload={"kind": v["kind"], "i": float(i), "text": v["text"], "key": f"k{i}",
                     "ns": "", "value": json.dumps(v)}) for i, v in items]
        await self.client.upsert(self.name, points=points, wait=True)

    async def search(self, vector: list[float]) -> list[int]:
        ns = self.models.Filter(must=[self.models.FieldCondition(
            key="ns", match=self.models.MatchValue(value=""))])
        response = await self.client.query_points(self.name, query=vector, limit=10,
                                                  query_filter=ns, with_payload=True)
        return [json.loads(p.payload["value"])["i"] for p in response.points]

    async def close(self) -> None:
        await self.client.close()


class RawMilvus:
    def __init__(self, path: str) -> None:
        from pymilvus import AsyncMilvusClient, DataType, MilvusClient

        self.types, self.sync = DataType, MilvusClient
        self.client = AsyncMilvusClient(uri=path)
        self.name = "raw"

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
        await self.client.create_collection(self.name, schema=schema, index_params=index,
                                            consistency_level="Strong")

    async def upsert(self, items: list[tuple[int, dict[str, Any]]]) -> None:
        rows = [{"id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"k{i}")), "vector": v["embedding"],
                 "ns": "", "key": f"k{i}", "value": json.dumps(v),
                 "meta": {"kind": v["kind"], "i": float(i), "text": v["text"]}}
                for i, v in items]
        for start in range(0, len(rows), 128):
            await self.client.upsert(self.name, rows[start:start + 128])

    async def search(self, vector: list[float]) -> list[int]:
        result = await self.client.search(self.name, data=[vector], limit=10, filter='ns == ""',
                                          output_fields=["key", "value"],
                                          search_params={"metric_type": "COSINE"})
        return [json.loads(hit["entity"]["value"])["i"] for hit in result[0]]

    async def close(self) -> None:
        await self.client.close()


class RawPinecone:
    def __init__(self, server: Any) -> None:
        from pinecone.async_client.pinecone import AsyncPinecone

        self.control = AsyncPinecone(api_key=server.api_key, host=server.url)
        self.index: Any = None

    async def setup(self) -> None:
        from pinecone import ServerlessSpec

        model = await self.control.create_index(
            "raw", spec=ServerlessSpec(cloud="aws", region="us-east-1"), dimension=DIMS,
            metric="cosine")
        self.index = await self.control.index(host=model.host)

    async def upsert(self, items: list[tuple[int, dict[str, Any]]]) -> None:
        vectors = [{"id": f"k{i}", "values": v["embedding"],
                    "metadata": {"kind": v["kind"], "i": float(i), "text": v["text"],
                                 "_prism_key": f"k{i}", "_prism_value": json.dumps(v)}}
                   for i, v in items]
        for start in range(0, len(vectors), 100):
            await self.index.upsert(vectors=vectors[start:start + 100], show_progress=False)

    async def search(self, vector: list[float]) -> list[int]:
        response = await self.index.query(top_k=10, vector=vector, include_metadata=True)
        return [json.loads(m.metadata["_prism_value"])["i"] for m in response.matches]

    async def close(self) -> None:
        await self.index.close()
        await self.control.close()


# ---------------------------------------------------------------- measuring

async def upsert_rate(n: int, items: list[tuple[int, dict[str, Any]]],
                      upsert: Callable[[list[tuple[int, dict[str, Any]]]], Awaitable[None]]
                      ) -> float:
    """Vectors/s of one pass upserting every item, in batches of ``BATCH``."""
    started = time.perf_counter()
    for start in range(0, n, BATCH):
        await upsert(items[start:start + BATCH])
    return n / (time.perf_counter() - started)


async def search_rows(
    provider: str, n: int, label: str,
    search: Callable[[list[float]], Awaitable[list[int]]],
    queries: np.ndarray, truth: np.ndarray, raw: bool,
) -> tuple[Row, dict[str, Any]]:
    query_list = queries.tolist()
    found = [await search(q) for q in query_list]
    p50, p99 = await latencies(lambda i: search(query_list[i % len(query_list)]),
                               count=len(query_list))
    extra = {"recall@10": recall(found, truth)}
    return Row("vector", f"{provider} search {n // 1000}k", label, p50_ms=p50, p99_ms=p99,
               baseline=raw, extra=extra), extra


async def run_provider(provider: str, n: int, vectors: np.ndarray, queries: np.ndarray,
                       truth: np.ndarray, workdir: str, server: Any, rounds: int) -> list[Row]:
    """Upserts: ``rounds`` passes over the data, raw and prism interleaved (a pass after
    the first overwrites every record), the median of each. Then searches."""
    from prism_storage import VectorStorageBackend

    if provider == "qdrant":
        raw: Any = RawQdrant()
        options: dict[str, Any] = {}
    elif provider == "milvus":
        raw = RawMilvus(f"{workdir}/raw.db")
        options = {"path": f"{workdir}/prism.db"}
    else:
        raw = RawPinecone(server)
        options = {"api_key": server.api_key, "url": server.url}
    store = VectorStorageBackend(provider, index_name="bench", dimensions=DIMS, timeout=120,
                                 **options)

    async def store_upsert(items: list[tuple[int, dict[str, Any]]]) -> None:
        await store.set_many({f"k{i}": value for i, value in items})

    async def store_search(vector: list[float]) -> list[int]:
        return [hit["value"]["i"] for hit in await store.search(vector, limit=10)]

    await raw.setup()
    await store.ping()
    items = [(i, record(i, v)) for i, v in enumerate(vectors.tolist())]
    rates: dict[str, list[float]] = {"raw client": [], "prism_storage": []}
    for _ in range(rounds):
        rates["raw client"].append(await upsert_rate(n, items, raw.upsert))
        rates["prism_storage"].append(await upsert_rate(n, items, store_upsert))
    rows: list[Row] = []
    for label, search in (("raw client", raw.search), ("prism_storage", store_search)):
        row, extra = await search_rows(provider, n, label, search, queries, truth,
                                       raw=label == "raw client")
        rows += [Row("vector", f"{provider} upsert {n // 1000}k", label,
                     ops_per_s=statistics.median(rates[label]), baseline=label == "raw client",
                     extra={**extra, "samples": rates[label]}), row]
    await raw.close()
    await store.close()
    return rows


def numpy_rows(n: int, vectors: np.ndarray, queries: np.ndarray) -> list[Row]:
    normed = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    samples = []
    for q in queries:
        started = time.perf_counter()
        scores = normed @ (q / np.linalg.norm(q))
        np.argpartition(-scores, 10)[:10]
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return [Row("vector", f"exact numpy search {n // 1000}k", "numpy (the limit)",
                p50_ms=samples[len(samples) // 2], p99_ms=samples[int(len(samples) * 0.99) - 1],
                baseline=True)]


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
                    rows += await run_provider(provider, n, vectors, queries, truth, workdir,
                                               server, args.rounds)
                for index in ("bench", "raw"):
                    if server.get_index(index) is not None:
                        server.drop_index(index)
    return rows


if __name__ == "__main__":
    cli = parser(__doc__ or "")
    cli.add_argument("--large", action="store_true", help="also run 100k vectors")
    cli.add_argument("--rounds", type=int, default=3,
                     help="upsert passes per path, interleaved; the median is shown")
    arguments = cli.parse_args()
    result = asyncio.run(main(arguments))
    print_table(result, "vector backend vs raw clients (ratio: prism / raw)")
    print("\n| case | path | recall@10 |\n|---|---|---:|")
    for row in result:
        if "recall@10" in row.extra and "search" in row.case:
            print(f"| {row.case} | {row.path} | {row.extra['recall@10']:.3f} |")
    if arguments.json:
        save_json(result, arguments.json)
