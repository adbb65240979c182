"""Qdrant through ``AsyncQdrantClient``: a server at ``url``, or the embedded local mode.

Each record is a point whose id is a uuid-shaped hash of (namespace, key) (Qdrant ids must be
uuids or unsigned ints) and whose payload holds ``_prism_key``, ``_prism_ns``,
``_prism_value`` (the value's JSON text), the record metadata (``_prism_version``,
``_prism_created``, ``_prism_updated``) and the value's filterable fields. Namespaces
share the collection and are separated by a filter on ``_prism_ns``.

The embedded mode keeps everything in memory (no ``path``) or in a directory, which only
one client per process may open: backends sharing a ``path`` share one client.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import AsyncIterator
from typing import Any

from ...exceptions import InvalidOptionError, InvalidValueError, SchemaMismatchError
from ..base import KeyPage
from ..clients import require
from .adapter import (
    CREATED,
    UPDATED,
    VERSION,
    Connection,
    Hit,
    IndexSpec,
    Record,
    Stored,
    VectorAdapter,
    point_id,
)
from .filters import And, Compare, Node, Or
from .locks import KeyLocks

__all__ = ["ADAPTER", "QdrantAdapter"]

KEY, NS, VALUE = "_prism_key", "_prism_ns", "_prism_value"
_DISTANCES = {"cosine": "Cosine", "euclidean": "Euclid", "dotproduct": "Dot"}
_BATCH = 256
#: A listing page scans at most this many batches before returning (maybe empty).
_SCAN_BATCHES = 50


def _cursor_id(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        return str(uuid.UUID(cursor))
    except ValueError:
        raise InvalidValueError("cursor must be a cursor string returned by keys().") from None


def _qdrant() -> Any:
    return require(
        "qdrant_client", backend="vector/qdrant", extra="qdrant", package="qdrant-client"
    )


class _Local:
    """One embedded client, shared by every loop (it does no real I/O) and guarded by a
    lock because it is not thread-safe."""

    def __init__(self, client: Any, where: str | None) -> None:
        self.client = client
        self.where = where
        self.lock = threading.RLock()
        self.users = 0
        # Read-check-write sequences of every store on this engine (see .locks).
        self.key_locks = KeyLocks()


_local_lock = threading.Lock()
_on_disk: dict[str, _Local] = {}  # resolved path -> client
_in_memory: dict[int, _Local] = {}  # id(backend) -> client (lives as long as the backend)


def _sqlite_serialized() -> bool:
    import sqlite3

    return sqlite3.threadsafety == 3


def _acquire_local(options: Connection) -> _Local:
    import os

    with _local_lock:
        if options.path is None:
            local = _in_memory.get(id(options))
            if local is None:
                local = _in_memory[id(options)] = _Local(
                    _qdrant().AsyncQdrantClient(location=":memory:"), None
                )
                import weakref

                weakref.finalize(options, _in_memory.pop, id(options), None)
        else:
            where = os.path.realpath(options.path)
            local = _on_disk.get(where)
            if local is None:
                # Where SQLite is serialized (threadsafety 3, exact since Python 3.11), say so
                # up front: qdrant-client otherwise probes it with a connection it never
                # closes (a ResourceWarning on Python 3.13). Its own probe reaches the same
                # answer, so the check it keeps elsewhere is unchanged.
                local = _on_disk[where] = _Local(
                    _qdrant().AsyncQdrantClient(
                        path=where, force_disable_check_same_thread=_sqlite_serialized()
                    ),
                    where,
                )
        local.users += 1
        return local


async def _release_local(local: _Local) -> None:
    with _local_lock:
        local.users -= 1
        if local.where is None or local.users > 0:
            return  # an in-memory store keeps its data until the backend is gone
        _on_disk.pop(local.where, None)
    await local.client.close()


def _condition(node: Node) -> Any:
    models = _qdrant().models
    if isinstance(node, And):
        return models.Filter(must=[_condition(part) for part in node.parts])
    if isinstance(node, Or):
        return models.Filter(should=[_condition(part) for part in node.parts])
    if node.op in ("$ne", "$nin"):
        positive = Compare(node.field, "$eq" if node.op == "$ne" else "$in", node.value)
        return models.Filter(must_not=[_condition(positive)])
    if node.op == "$in":
        assert isinstance(node.value, tuple)
        return models.Filter(should=[_condition(Compare(node.field, "$eq", v)) for v in node.value])
    value = node.value
    if node.op == "$eq":
        if isinstance(value, float):
            # MatchValue does not take floats; a closed range compares as numbers.
            return models.FieldCondition(key=node.field, range=models.Range(gte=value, lte=value))
        return models.FieldCondition(key=node.field, match=models.MatchValue(value=value))
    bound = {"$gt": "gt", "$gte": "gte", "$lt": "lt", "$lte": "lte"}[node.op]
    return models.FieldCondition(key=node.field, range=models.Range(**{bound: value}))


class QdrantAdapter(VectorAdapter):
    def __init__(self, spec: IndexSpec, options: Connection) -> None:
        super().__init__(spec, options)
        qdrant = _qdrant()
        from httpx import HTTPError

        self.models = qdrant.models
        self.errors = (
            qdrant.http.exceptions.ResponseHandlingException,
            qdrant.http.exceptions.UnexpectedResponse,
            HTTPError,
        )
        self._local: _Local | None = None
        self._remote: Any = None

    @classmethod
    def validate_options(cls, options: Connection) -> None:
        if options.url is not None and options.path is not None:
            raise InvalidOptionError("qdrant takes url (a server) or path (embedded), not both.")

    @contextlib.asynccontextmanager
    async def _client(self) -> AsyncIterator[Any]:
        if self.options.url is not None:
            if self._remote is None:
                self._remote = _qdrant().AsyncQdrantClient(
                    url=self.options.url,
                    api_key=self.options.api_key,
                    timeout=max(1, int(self.spec.timeout)),
                    check_compatibility=False,
                )
            yield self._remote
            return
        if self._local is None:
            self._local = _acquire_local(self.options)
        with self._local.lock:
            yield self._local.client

    def _in_namespace(self, *extra: Any) -> Any:
        match = self.models.MatchValue(value=self.spec.namespace)
        return self.models.Filter(must=[self.models.FieldCondition(key=NS, match=match), *extra])

    async def prepare(self) -> None:
        name, models = self.spec.name, self.models
        async with self._client() as client:
            if not await client.collection_exists(name):
                params = models.VectorParams(
                    size=self.spec.dimensions,
                    distance=getattr(models.Distance, _DISTANCES[self.spec.metric].upper()),
                )
                try:
                    await client.create_collection(name, vectors_config=params)
                except (ValueError, self.errors[1]):
                    pass  # created meanwhile by another process: checked below
                if self.options.url is not None:
                    for field in (NS, KEY):
                        await client.create_payload_index(
                            name, field, field_schema=models.PayloadSchemaType.KEYWORD
                        )
            info = await client.get_collection(name)
        vectors = info.config.params.vectors
        if not isinstance(vectors, models.VectorParams):
            raise SchemaMismatchError(
                f"The Qdrant collection {name!r} has named vectors; prism_storage needs one "
                "unnamed vector per point."
            )
        distance = getattr(vectors.distance, "value", vectors.distance)
        if vectors.size != self.spec.dimensions or distance != _DISTANCES[self.spec.metric]:
            raise SchemaMismatchError(
                f"The Qdrant collection {name!r} holds {vectors.size}-dimensional vectors "
                f"compared by {distance}; this store is configured with "
                f"dimensions={self.spec.dimensions}, metric={self.spec.metric!r}. Use another "
                "index_name or fix the configuration."
            )

    async def upsert(self, records: list[Record]) -> None:
        ns = self.spec.namespace
        points = [
            self.models.PointStruct(
                id=point_id(ns, r.key),
                vector=r.vector,
                payload={**r.fields, **r.metadata(), KEY: r.key, NS: ns, VALUE: r.data},
            )
            for r in records
        ]
        async with self._client() as client:
            for start in range(0, len(points), _BATCH):
                await client.upsert(
                    self.spec.name, points=points[start : start + _BATCH], wait=True
                )

    async def fetch(self, keys: list[str]) -> dict[str, Stored]:
        ns = self.spec.namespace
        async with self._client() as client:
            points = await client.retrieve(
                self.spec.name,
                ids=[point_id(ns, k) for k in keys],
                with_payload=[KEY, NS, VALUE, VERSION, CREATED, UPDATED],
                with_vectors=False,
            )
        return {
            p.payload[KEY]: Stored.of(p.payload[VALUE], p.payload)
            for p in points
            if p.payload and p.payload.get(NS) == ns and VALUE in p.payload
        }

    async def delete(self, keys: list[str]) -> None:
        ns = self.spec.namespace
        selector = self.models.PointIdsList(points=[point_id(ns, k) for k in keys])
        async with self._client() as client:
            await client.delete(self.spec.name, points_selector=selector, wait=True)

    def key_locks(self) -> KeyLocks | None:
        if self.options.url is not None:
            return None
        if self._local is None:
            self._local = _acquire_local(self.options)
        return self._local.key_locks

    async def query(self, vector: list[float], limit: int, where: Node | None) -> list[Hit]:
        condition = self._in_namespace(*([] if where is None else [_condition(where)]))
        async with self._client() as client:
            response = await client.query_points(
                self.spec.name,
                query=vector,
                limit=limit,
                query_filter=condition,
                with_payload=[KEY, VALUE],
                with_vectors=False,
            )
        return [Hit(p.payload[KEY], p.score, p.payload[VALUE]) for p in response.points]

    async def list_keys(self, prefix: str, limit: int, cursor: str | None) -> KeyPage:
        # Points come in id order, which is not key order: the cursor is the id of the
        # next point to look at, and a page holds the matching keys among the points seen.
        batch = max(limit + 1, 64) if prefix else limit + 1
        keys: list[str] = []
        offset: Any = _cursor_id(cursor)
        async with self._client() as client:
            for _ in range(_SCAN_BATCHES):
                points, next_offset = await client.scroll(
                    self.spec.name,
                    scroll_filter=self._in_namespace(),
                    limit=batch,
                    offset=offset,
                    with_payload=[KEY],
                    with_vectors=False,
                )
                for point in points:
                    key = point.payload[KEY]
                    if key.startswith(prefix):
                        if len(keys) == limit:
                            return KeyPage(keys, str(point.id))
                        keys.append(key)
                if next_offset is None:
                    return KeyPage(keys, None)
                if keys:
                    return KeyPage(keys, str(next_offset))
                offset = next_offset
        return KeyPage(keys, str(offset))

    async def close(self) -> None:
        remote, self._remote = self._remote, None
        local, self._local = self._local, None
        if remote is not None:
            await remote.close()
        if local is not None:
            await _release_local(local)


ADAPTER = QdrantAdapter
