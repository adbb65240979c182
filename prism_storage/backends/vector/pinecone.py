"""Pinecone through the ``pinecone`` SDK's asyncio clients (``AsyncPinecone``, ``AsyncIndex``).

The index is created on first use as a serverless index in ``environment``
(``"<cloud>/<region>"``, default ``"aws/us-east-1"``); ``url`` overrides the control-plane
host. ``namespace`` is the Pinecone namespace.

Pinecone ids must be ASCII and at most 512 characters, so a key becomes its UTF-8 bytes
with every byte outside printable ASCII (and ``%``) written as ``%XX``. This keeps key
prefixes as id prefixes, so ``keys(prefix)`` uses Pinecone's id listing. A key whose
encoding is too long is stored under ``%%`` + its SHA-256 instead (``%%`` never occurs in
an encoded key). The metadata holds ``_prism_key``, ``_prism_value`` (the value's JSON
text), the record metadata (``_prism_version``, ``_prism_created``, ``_prism_updated``)
and the value's filterable fields, within Pinecone's 40 KB metadata limit.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from ...exceptions import (
    BackendPermissionError,
    InvalidOptionError,
    InvalidValueError,
    SchemaMismatchError,
)
from ..base import KeyPage
from ..clients import require
from .adapter import Connection, Hit, IndexSpec, Record, ScoreKind, Stored, VectorAdapter
from .filters import And, Compare, Node, Or

__all__ = ["ADAPTER", "PineconeAdapter", "decode_id", "encode_id"]

KEY, VALUE = "_prism_key", "_prism_value"
MAX_METADATA_BYTES = 40_960
MAX_ID_LENGTH = 512
HASHED = "%%"
DEFAULT_ENVIRONMENT = "aws/us-east-1"
_INDEX_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,43}[a-z0-9])?")
_UPSERT_BYTES = 1_800_000  # Pinecone takes at most 2 MB and 1000 vectors per upsert
_UPSERT_COUNT = 1000
_FETCH_CHARS = 6000  # ids go in the query string of a fetch: keep the URL short
_LIST_LIMIT = 100
_SAFE = frozenset(range(0x20, 0x7F)) - {ord("%")}


def _pinecone() -> Any:
    return require("pinecone", backend="vector/pinecone", extra="pinecone")


def _errors() -> Any:
    return require("pinecone.errors", backend="vector/pinecone", extra="pinecone")


def metadata_size(metadata: dict[str, Any]) -> int:
    """The bytes of ``metadata`` as compact UTF-8 JSON, as Pinecone counts them.

    The record's JSON text (``VALUE``, often kilobytes) is not encoded again: it holds no
    control characters (JSON escapes them), so as a JSON string it grows by its quotes and
    one backslash per ``"`` or ``\\`` in it.
    """
    text: str = metadata[VALUE]
    rest = {name: item for name, item in metadata.items() if name != VALUE}
    head = len(json.dumps(rest, ensure_ascii=False, separators=(",", ":")).encode())
    value = len(text.encode()) + text.count('"') + text.count("\\") + 2
    label = len(json.dumps(VALUE)) + 1  # "_prism_value":
    return head + value + label + (1 if rest else 0)  # the comma before it


def encode_id(key: str) -> str:
    """The Pinecone id of ``key`` (see the module docstring)."""
    encoded = "".join(chr(b) if b in _SAFE else f"%{b:02X}" for b in key.encode("utf-8"))
    if len(encoded) <= MAX_ID_LENGTH:
        return encoded
    return HASHED + hashlib.sha256(key.encode("utf-8")).hexdigest()


def decode_id(point: str) -> str | None:
    """The key an id encodes directly; ``None`` for a hashed id."""
    if point.startswith(HASHED):
        return None
    raw = bytearray()
    i = 0
    while i < len(point):
        if point[i] == "%":
            raw.append(int(point[i + 1 : i + 3], 16))
            i += 3
        else:
            raw.append(ord(point[i]))
            i += 1
    return raw.decode("utf-8")


def _location(environment: str | None) -> tuple[str, str]:
    cloud, _, region = (environment or DEFAULT_ENVIRONMENT).rpartition("/")
    return cloud or "aws", region


def _filter(node: Node) -> dict[str, Any]:
    if isinstance(node, And | Or):
        return {"$and" if isinstance(node, And) else "$or": [_filter(p) for p in node.parts]}
    if node.op in ("$in", "$nin"):
        assert isinstance(node.value, tuple)
        # Pinecone's $in/$nin take strings or numbers, one type per list.
        strings = [v for v in node.value if isinstance(v, str)]
        numbers = [v for v in node.value if isinstance(v, float)]
        flags = [v for v in node.value if isinstance(v, bool)]
        parts: list[dict[str, Any]] = [
            {node.field: {node.op: group}} for group in (strings, numbers) if group
        ]
        single = "$eq" if node.op == "$in" else "$ne"
        parts += [_filter(Compare(node.field, single, flag)) for flag in flags]  # type: ignore[arg-type]
        if len(parts) == 1:
            return parts[0]
        return {"$or" if node.op == "$in" else "$and": parts}
    return {node.field: {node.op: node.value}}


class PineconeAdapter(VectorAdapter):
    def __init__(self, spec: IndexSpec, options: Connection) -> None:
        super().__init__(spec, options)
        errors = _errors()
        self.errors = (
            errors.PineconeConnectionError,
            errors.PineconeTimeoutError,
            errors.ApiError,
            errors.ResponseParsingError,
        )
        self._denied = (errors.UnauthorizedError, errors.ForbiddenError)
        self._missing = errors.NotFoundError
        self._control: Any = None
        self._index: Any = None

    @classmethod
    def validate_options(cls, options: Connection) -> None:
        if not options.api_key:
            raise InvalidOptionError("The pinecone provider needs an api_key.")
        if options.path is not None:
            raise InvalidOptionError("pinecone has no embedded mode: path does not apply.")
        if not _INDEX_NAME.fullmatch(options.index_name):
            raise InvalidOptionError(
                f"index_name {options.index_name!r} is not a valid Pinecone index name "
                "(1-45 lowercase letters, digits and '-')."
            )
        if not _location(options.environment)[1]:
            raise InvalidOptionError("environment must be '<cloud>/<region>' or a region.")

    @property
    def embedded(self) -> bool:
        return False  # without a url it is Pinecone's cloud, never a local engine

    async def _call(self, coroutine: Any) -> Any:
        try:
            return await coroutine
        except self._denied as exc:
            raise BackendPermissionError(
                f"Pinecone refused the API key or the operation ({type(exc).__name__})."
            ) from None

    async def prepare(self) -> None:
        pinecone = _pinecone()
        from pinecone.async_client.pinecone import AsyncPinecone

        if self._control is None:
            self._control = AsyncPinecone(
                api_key=self.options.api_key, host=self.options.url, timeout=self.spec.timeout
            )
        name = self.spec.name
        if not await self._call(self._control.has_index(name)):
            cloud, region = _location(self.options.environment)
            try:
                await self._call(
                    self._control.create_index(
                        name,
                        spec=pinecone.ServerlessSpec(cloud=cloud, region=region),
                        dimension=self.spec.dimensions,
                        metric=self.spec.metric,
                    )
                )
            except _errors().ConflictError:
                pass  # created meanwhile: checked below
        model = await self._call(self._control.describe_index(name))
        metric = getattr(model.metric, "value", model.metric)
        if model.dimension != self.spec.dimensions or metric != self.spec.metric:
            raise SchemaMismatchError(
                f"The Pinecone index {name!r} holds {model.dimension}-dimensional vectors "
                f"compared by {metric}; this store is configured with "
                f"dimensions={self.spec.dimensions}, metric={self.spec.metric!r}. Use another "
                "index_name or fix the configuration."
            )
        self._index = await self._control.index(host=model.host)

    def _vector(self, record: Record) -> tuple[dict[str, Any], int]:
        metadata = {**record.fields, **record.metadata(), KEY: record.key, VALUE: record.data}
        size = metadata_size(metadata)
        if size > MAX_METADATA_BYTES:
            raise InvalidValueError(
                f"The value of {record.key!r} with its filterable fields takes {size} bytes "
                f"of Pinecone metadata; Pinecone accepts at most {MAX_METADATA_BYTES}.",
                "$",
            )
        vector = {"id": encode_id(record.key), "values": record.vector, "metadata": metadata}
        # An upper bound of its share of the request body: a float takes at most 25
        # characters, metadata that is not ASCII may be escaped (at most 3 bytes per byte).
        escaped = size if record.data.isascii() and record.key.isascii() else 3 * size
        return vector, escaped + 25 * len(record.vector) + 3 * len(vector["id"]) + 64

    async def upsert(self, records: list[Record]) -> None:
        sized = [self._vector(r) for r in records]
        batch: list[dict[str, Any]] = []
        used = 0
        for vector, size in sized:
            if batch and (used + size > _UPSERT_BYTES or len(batch) == _UPSERT_COUNT):
                await self._upsert(batch)
                batch, used = [], 0
            batch.append(vector)
            used += size
        if batch:
            await self._upsert(batch)

    async def _upsert(self, vectors: list[dict[str, Any]]) -> None:
        await self._call(
            self._index.upsert(vectors=vectors, namespace=self.spec.namespace, show_progress=False)
        )

    def _chunks(self, keys: list[str]) -> list[list[str]]:
        chunks: list[list[str]] = [[]]
        used = 0
        for point in map(encode_id, keys):
            if chunks[-1] and used + len(point) > _FETCH_CHARS:
                chunks.append([])
                used = 0
            chunks[-1].append(point)
            used += len(point) * 3  # worst case once percent-encoded in the URL
        return chunks

    async def _fetch_ids(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        response = await self._call(self._index.fetch(ids=ids, namespace=self.spec.namespace))
        return {point: vector.metadata or {} for point, vector in response.vectors.items()}

    async def fetch(self, keys: list[str]) -> dict[str, Stored]:
        found: dict[str, Stored] = {}
        for ids in self._chunks(keys):
            for metadata in (await self._fetch_ids(ids)).values():
                if KEY in metadata and VALUE in metadata:
                    found[metadata[KEY]] = Stored.of(metadata[VALUE], metadata)
        return {k: found[k] for k in keys if k in found}

    async def delete(self, keys: list[str]) -> None:
        for ids in self._chunks(keys):
            try:
                await self._call(self._index.delete(ids=ids, namespace=self.spec.namespace))
            except self._missing:
                return  # serverless Pinecone: the namespace does not exist (yet)

    async def query(self, vector: list[float], limit: int, where: Node | None) -> list[Hit]:
        response = await self._call(
            self._index.query(
                top_k=limit,
                vector=vector,
                namespace=self.spec.namespace,
                filter=None if where is None else _filter(where),
                include_metadata=True,
            )
        )
        return [
            Hit(m.metadata[KEY], float(m.score), m.metadata[VALUE])
            for m in response.matches
            if m.metadata and KEY in m.metadata
        ]

    async def list_keys(self, prefix: str, limit: int, cursor: str | None) -> KeyPage:
        # Phases: "a" lists every id (no prefix); "d" the direct ids starting with the
        # encoded prefix, then "h" the hashed ids, whose keys come from their metadata.
        phase, token = ("a" if not prefix else "d"), None
        if cursor is not None:
            phase, sep, token = cursor.partition(":")
            if not sep or phase not in ("a", "d", "h") or (phase == "a") != (not prefix):
                raise InvalidValueError("cursor must be a cursor string returned by keys().")
        id_prefix = {"a": None, "d": encode_id(prefix) if prefix else None, "h": HASHED}[phase]
        if phase == "d" and id_prefix is not None and id_prefix.startswith(HASHED):
            phase, id_prefix = "h", HASHED  # a prefix too long to be in any direct id
        response = await self._call(
            self._index.list_paginated(
                prefix=id_prefix,
                limit=min(limit, _LIST_LIMIT),
                pagination_token=token or None,
                namespace=self.spec.namespace,
            )
        )
        ids = [item.id for item in response.vectors]
        keys = [decode_id(point) for point in ids]
        hashed = [point for point, key in zip(ids, keys, strict=True) if key is None]
        if hashed:
            keys += [m.get(KEY) for m in (await self._fetch_ids(hashed)).values()]
        page = [k for k in keys if isinstance(k, str) and k.startswith(prefix)]
        following = response.pagination.next if response.pagination else None
        if following:
            return KeyPage(page, f"{phase}:{following}")
        return KeyPage(page, "h:" if phase == "d" else None)

    def score_kind(self) -> ScoreKind:
        return "squared_distance" if self.spec.metric == "euclidean" else "similarity"

    async def close(self) -> None:
        index, self._index = self._index, None
        control, self._control = self._control, None
        self._ready = False
        if index is not None:
            await index.close()
        if control is not None:
            await control.close()


ADAPTER = PineconeAdapter
