"""Milvus through pymilvus' ``AsyncMilvusClient``: a server at ``url``, or milvus-lite.

Without ``url`` the store runs milvus-lite (the Milvus engine as a local subprocess) on the
``.db`` file at ``path``; one engine process serves every store of a process on that file.

The collection has the columns ``id`` (a uuid-shaped hash of (namespace, key), the primary key),
``vector``, ``ns``, ``key``, ``value`` (the value's JSON text, a VARCHAR of at most 65,535
bytes) and ``meta`` (a JSON column with the filterable fields and the record metadata:
``_prism_version``, ``_prism_created``, ``_prism_updated``; a row written before records
carried metadata simply lacks them). Its index is ``FLAT``
(exact search); an existing collection may use any index with the configured metric.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import uuid
from typing import Any

from ...exceptions import InvalidOptionError, InvalidValueError, SchemaMismatchError
from ..base import KeyPage
from ..clients import require
from .adapter import (
    Connection,
    Hit,
    IndexSpec,
    Record,
    ScoreKind,
    Stored,
    VectorAdapter,
    point_id,
)
from .filters import And, Node, Or, Scalar
from .locks import KeyLocks, key_locks

__all__ = ["ADAPTER", "DEFAULT_PATH", "MilvusAdapter", "collection_name"]

DEFAULT_PATH = "./prism-milvus.db"
_METRICS = {"cosine": "COSINE", "euclidean": "L2", "dotproduct": "IP"}
_COLUMNS = ("id", "vector", "ns", "key", "value", "meta")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")
_BATCH = 128
#: Largest ``meta`` JSON Milvus accepts by default.
MAX_META_BYTES = 65_536
_ID_CHUNK = 1000


def _pymilvus() -> Any:
    return require("pymilvus", backend="vector/milvus", extra="milvus")


def collection_name(index_name: str) -> str:
    """Milvus collection names allow letters, digits and ``_``: ``-`` becomes ``_``."""
    name = index_name.replace("-", "_")
    if not _NAME.fullmatch(name):
        raise InvalidOptionError(
            f"index_name {index_name!r} is not a valid Milvus collection name (letters, "
            "digits, '_' and '-', not starting with a digit, at most 255 characters)."
        )
    return name


def _literal(value: Scalar | str) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float):
        return repr(value)
    # JSON string syntax is what Milvus expressions accept: quotes and backslashes escaped,
    # other characters verbatim.
    return json.dumps(value, ensure_ascii=False)


def _expression(node: Node) -> str:
    if isinstance(node, And | Or):
        joiner = " and " if isinstance(node, And) else " or "
        return "(" + joiner.join(_expression(part) for part in node.parts) + ")"
    field = f'meta["{node.field}"]'
    if node.op in ("$in", "$nin"):
        assert isinstance(node.value, tuple)
        # Milvus needs the items of one list to share a type: one list per type.
        groups: dict[type, list[str]] = {}
        for item in node.value:
            groups.setdefault(type(item), []).append(_literal(item))
        word, joiner = ("in", " or ") if node.op == "$in" else ("not in", " and ")
        lists = [f"{field} {word} [{', '.join(items)}]" for items in groups.values()]
        return lists[0] if len(lists) == 1 else "(" + joiner.join(lists) + ")"
    assert not isinstance(node.value, tuple)
    symbol = {"$eq": "==", "$ne": "!=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
    return f"{field} {symbol[node.op]} {_literal(node.value)}"


def _successor(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix``."""
    while prefix:
        code = ord(prefix[-1]) + 1
        if code == 0xD800:
            code = 0xE000  # skip the surrogates, which are not characters
        if code <= 0x10FFFF:
            return prefix[:-1] + chr(code)
        prefix = prefix[:-1]
    return None


class MilvusAdapter(VectorAdapter):
    def __init__(self, spec: IndexSpec, options: Connection) -> None:
        super().__init__(spec, options)
        pymilvus = _pymilvus()
        import grpc

        self.errors = (pymilvus.exceptions.MilvusException, grpc.RpcError)
        self.collection = collection_name(spec.name)
        self._client: Any = None
        self._ns = _literal(spec.namespace)
        self._lite_path = os.path.abspath(options.path or DEFAULT_PATH)

    @classmethod
    def validate_options(cls, options: Connection) -> None:
        collection_name(options.index_name)
        if options.url is not None and options.path is not None:
            raise InvalidOptionError("milvus takes url (a server) or path (milvus-lite), not both.")
        if options.url is None and options.path is not None and not options.path.endswith(".db"):
            raise InvalidOptionError("milvus-lite needs a path ending in '.db'.")

    async def _connect(self) -> Any:
        if self._client is None:
            pymilvus = _pymilvus()
            if self.options.url is not None:
                uri, token = self.options.url, self.options.api_key or ""
            else:
                uri, token = self._lite_path, ""
                from milvus_lite.server_manager import server_manager_instance

                # Starting the engine takes about a second: not on the event loop.
                started = await asyncio.to_thread(server_manager_instance.start_and_get_uri, uri)
                if started is None:
                    raise pymilvus.exceptions.MilvusException(
                        message=f"milvus-lite could not open {uri}"
                    )
            self._client = pymilvus.AsyncMilvusClient(
                uri=uri, token=token, timeout=self.ready_timeout
            )
        return self._client

    def _opts(self) -> dict[str, Any]:
        # Only for schema calls: pymilvus runs a call with a timeout as a separate task,
        # which costs more than a small search; the backend bounds every call anyway.
        return {"timeout": self.spec.timeout}

    async def prepare(self) -> None:
        client = await self._connect()
        if not await client.has_collection(self.collection, **self._opts()):
            try:
                await self._create(client)
            except self.errors[0]:
                if not await client.has_collection(self.collection, **self._opts()):
                    raise
        await self._check(client)

    async def _create(self, client: Any) -> None:
        pymilvus = _pymilvus()
        types = pymilvus.DataType
        schema = pymilvus.AsyncMilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", types.VARCHAR, is_primary=True, max_length=36)
        schema.add_field("vector", types.FLOAT_VECTOR, dim=self.spec.dimensions)
        schema.add_field("ns", types.VARCHAR, max_length=1024)
        schema.add_field("key", types.VARCHAR, max_length=2048)
        schema.add_field("value", types.VARCHAR, max_length=65_535)
        schema.add_field("meta", types.JSON)
        index = pymilvus.MilvusClient.prepare_index_params()
        index.add_index(
            field_name="vector", index_type="FLAT", metric_type=_METRICS[self.spec.metric]
        )
        await client.create_collection(
            self.collection,
            schema=schema,
            index_params=index,
            consistency_level="Strong",
            **self._opts(),
        )

    async def _check(self, client: Any) -> None:
        described = await client.describe_collection(self.collection, **self._opts())
        fields = {f["name"]: f for f in described["fields"]}
        missing = [c for c in _COLUMNS if c not in fields]
        if missing:
            raise SchemaMismatchError(
                f"The Milvus collection {self.collection!r} was not created by prism_storage "
                f"(missing fields: {', '.join(missing)}). Use another index_name."
            )
        dim = int(fields["vector"].get("params", {}).get("dim", 0))
        index = await client.describe_index(self.collection, "vector", **self._opts())
        metric = (index or {}).get("metric_type")
        if dim != self.spec.dimensions or metric != _METRICS[self.spec.metric]:
            raise SchemaMismatchError(
                f"The Milvus collection {self.collection!r} holds {dim}-dimensional vectors "
                f"compared by {metric}; this store is configured with "
                f"dimensions={self.spec.dimensions}, metric={self.spec.metric!r}. Use another "
                "index_name or fix the configuration."
            )
        await client.load_collection(self.collection, **self._opts())

    def _row(self, record: Record) -> dict[str, Any]:
        fields = {**record.fields, **record.metadata()}
        meta = json.dumps(fields, ensure_ascii=False)
        if len(meta) > MAX_META_BYTES // 4 and len(meta.encode()) > MAX_META_BYTES:
            raise InvalidValueError(
                f"The filterable top-level fields of {record.key!r} take "
                f"{len(meta.encode())} bytes; Milvus accepts at most {MAX_META_BYTES}.",
                "$",
            )
        return {
            "id": point_id(self.spec.namespace, record.key),
            "vector": record.vector,
            "ns": self.spec.namespace,
            "key": record.key,
            "value": record.data,
            "meta": fields,
        }

    async def upsert(self, records: list[Record]) -> None:
        rows = [self._row(r) for r in records]
        client = await self._connect()
        for start in range(0, len(rows), _BATCH):
            await client.upsert(self.collection, rows[start : start + _BATCH])

    async def fetch(self, keys: list[str]) -> dict[str, Stored]:
        client = await self._connect()
        found: dict[str, Stored] = {}
        for start in range(0, len(keys), _ID_CHUNK):
            ids = [point_id(self.spec.namespace, k) for k in keys[start : start + _ID_CHUNK]]
            rows = await client.get(
                self.collection, ids=ids, output_fields=["ns", "key", "value", "meta"]
            )
            found.update(
                {
                    r["key"]: Stored.of(r["value"], r.get("meta") or {})
                    for r in rows
                    if r["ns"] == self.spec.namespace
                }
            )
        return found

    async def delete(self, keys: list[str]) -> None:
        client = await self._connect()
        for start in range(0, len(keys), _ID_CHUNK):
            ids = [point_id(self.spec.namespace, k) for k in keys[start : start + _ID_CHUNK]]
            await client.delete(self.collection, ids=ids)

    async def query(self, vector: list[float], limit: int, where: Node | None) -> list[Hit]:
        expression = f"ns == {self._ns}"
        if where is not None:
            expression += f" and {_expression(where)}"
        client = await self._connect()
        results = await client.search(
            self.collection,
            data=[vector],
            limit=limit,
            filter=expression,
            output_fields=["key", "value"],
            search_params={"metric_type": _METRICS[self.spec.metric]},
        )
        return [
            Hit(hit["entity"]["key"], float(hit["distance"]), hit["entity"]["value"])
            for hit in results[0]
        ]

    async def list_keys(self, prefix: str, limit: int, cursor: str | None) -> KeyPage:
        # Query results come in primary-key order, so the cursor is the last id returned.
        expression = f"ns == {self._ns}"
        if cursor is not None:
            try:
                expression += f' and id > "{uuid.UUID(cursor)}"'
            except ValueError:
                raise InvalidValueError(
                    "cursor must be a cursor string returned by keys()."
                ) from None
        if prefix:
            expression += f" and key >= {_literal(prefix)}"
            upper = _successor(prefix)
            if upper is not None:
                expression += f" and key < {_literal(upper)}"
        client = await self._connect()
        rows = await client.query(
            self.collection, filter=expression, limit=limit + 1, output_fields=["id", "key"]
        )
        rows.sort(key=lambda r: r["id"])
        page = rows[:limit]
        keys = [r["key"] for r in page if r["key"].startswith(prefix)]
        return KeyPage(keys, page[-1]["id"] if len(rows) > limit else None)

    def key_locks(self) -> KeyLocks | None:
        # milvus-lite: one engine process per file, serving this process only.
        return None if self.options.url is not None else key_locks(f"milvus:{self._lite_path}")

    def lock_key(self, key: str) -> str:
        return f"{self.collection}\x00{self.spec.namespace}\x00{key}"

    def score_kind(self) -> ScoreKind:
        return "squared_distance" if self.spec.metric == "euclidean" else "similarity"

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()


ADAPTER = MilvusAdapter
