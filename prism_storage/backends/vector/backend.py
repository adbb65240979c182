"""``vector``: records with embeddings in Qdrant, Milvus or Pinecone, with similarity search.

Every record is one point: its id is derived from (namespace, key), its vector comes from
``value["embedding"]`` or from the configured ``embedder``, and the value itself is stored
as JSON text beside it (so ``get`` returns exactly what was set), together with the value's
filterable top-level fields. The engine-specific parts live in one module per provider
(:mod:`.qdrant`, :mod:`.milvus`, :mod:`.pinecone`) behind :class:`.adapter.VectorAdapter`.

Every point also keeps its record metadata (version, creation and last write times; see
:mod:`.adapter`), so ``get_record`` works on every provider. Conditional writes
(``put(if_version=...)``, ``remove(if_version=...)``, ``update``) and ``append``/``pop``
need a read-check-write that nothing else interleaves with. The embedded engines (Qdrant's
local mode, milvus-lite) serve one process, so every write of this backend takes a per-key
lock there (:mod:`.locks`) and the flags are true. A Qdrant or Milvus server, and Pinecone,
offer no write that compares a stored version and reports whether it applied, so there
the flags are false and those calls raise UnsupportedOperationError (docs/vector.md).

Scores mean the same on every provider (higher is more similar):

* ``cosine``: the cosine similarity, in [-1, 1];
* ``dotproduct``: the dot product;
* ``euclidean``: ``1 / (1 + d)`` where ``d`` is the Euclidean distance, in (0, 1].
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from ...codec import validate_key
from ...exceptions import InvalidValueError
from ..base import DEFAULT_TIMEOUT, BaseStorageBackend, KeyPage
from ..clients import LoopBoundClients
from ..redaction import redact
from ..versions import Condition, WriteResult, append_to, check_condition, pop_from
from ..versions import Record as VersionedRecord
from .adapter import IndexSpec, Metric, Stored, VectorAdapter
from .filters import VECTOR_FIELD, parse_filter
from .metadata import version_of, versioned_record
from .options import check_options
from .points import Items, Points
from .providers import PROVIDERS, Provider, adapter_class, check_dependencies
from .search import check_limit, ranked
from .vectors import Embedder, ValueVectors, embedding_text, resolve_embedder

__all__ = ["PROVIDERS", "VectorStorageBackend"]

# The codec's JSON settings (compact, no NaN, UTF-8 kept).
_ENCODER = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, check_circular=False, separators=(",", ":")
)


class VectorStorageBackend(BaseStorageBackend):
    """Stores records with embeddings in a vector database and searches them by similarity.

    :param provider: ``"qdrant"``, ``"milvus"`` or ``"pinecone"``.
    :param api_key: the Qdrant/Pinecone API key or the Milvus token (never shown).
    :param environment: Pinecone only: where a new serverless index is created, as
        ``"<cloud>/<region>"`` (``"aws/us-east-1"``, ``"gcp/us-central1"``); a bare region
        means AWS. Default ``"aws/us-east-1"``.
    :param index_name: the collection (Qdrant, Milvus) or index (Pinecone), created on
        first use. Milvus names cannot hold ``-``: it becomes ``_``.
    :param namespace: isolates stores sharing one collection (``None``: the default one).
    :param dimensions: the length of every vector.
    :param metric: ``"cosine"``, ``"euclidean"`` or ``"dotproduct"``.
    :param url: the server (Qdrant URL, Milvus URI, Pinecone control-plane host). Without
        it Qdrant and Milvus run embedded (see ``path``); Pinecone talks to its cloud.
    :param path: the embedded engine's storage: a directory for Qdrant (in memory when
        ``None``), a ``.db`` file for Milvus (default ``./prism-milvus.db``).
    :param embedder: a callable (or its dotted path) turning text into a vector, sync or
        async, used when a value has no ``embedding``; a class is instantiated first.
    :param text_field: the value's field the embedder reads (see :meth:`text_of`).
    :param timeout: seconds a call may take before BackendUnavailableError.
    """

    dimensions: int  # always set: a vector store has a dimension

    backend_name = "vector"
    supports_search = True
    supports_listing = True
    native_batch = True
    secret_options = ("api_key",)
    supports_versions = True
    # Per mode (see __init__): true only for the embedded, single-process engines.
    supports_conditional_writes: bool = False  # type: ignore[misc]
    supports_atomic_lists: bool = False  # type: ignore[misc]
    max_value_bytes: int | None = None  # type: ignore[misc]  # set per provider

    #: Largest value (JSON bytes) per provider: Milvus stores it in a VARCHAR(65535);
    #: Pinecone metadata is limited to 40 KB and holds the value and its fields.
    VALUE_LIMITS: ClassVar[dict[str, int | None]] = {
        "qdrant": None,
        "milvus": 65_535,
        "pinecone": 16_384,
    }

    def __init__(
        self,
        provider: Provider,
        api_key: str | None = None,
        environment: str | None = None,
        index_name: str = "prism-agent",
        namespace: str | None = None,
        dimensions: int = 1536,
        metric: Metric = "cosine",
        *,
        url: str | None = None,
        path: str | None = None,
        embedder: Embedder | str | None = None,
        text_field: str = "text",
        timeout: float = DEFAULT_TIMEOUT,
        alias: str | None = None,
    ) -> None:
        super().__init__(alias=alias)
        texts = {"api_key": api_key, "environment": environment, "namespace": namespace, "url": url}
        check_options(provider, metric, dimensions, texts, index_name, text_field, timeout)
        if path is not None and not isinstance(path, str):
            path = str(path)  # a pathlib.Path from settings
        self.provider: Provider = provider
        self.api_key = api_key
        self.environment = environment
        self.index_name = index_name
        self.namespace = namespace
        self.dimensions = dimensions
        self.metric: Metric = metric
        self.url = url
        self.path = path
        # Embedded engines own their files: one process at a time.
        self.shared_across_processes = url is not None or provider == "pinecone"
        # A lock inside this process serializes every writer only when no other process
        # writes (see the module docstring).
        self.supports_conditional_writes = not self.shared_across_processes
        self.supports_atomic_lists = not self.shared_across_processes
        self.text_field = text_field
        self.timeout = float(timeout)
        self.embedder = resolve_embedder(embedder)
        self._vectors = ValueVectors(dimensions, self.embedder, self.text_of)
        self.max_value_bytes = self.VALUE_LIMITS[provider]
        self._adapter_class().validate_options(self)
        self._adapters: LoopBoundClients[VectorAdapter] = LoopBoundClients(
            self._make_adapter, lambda adapter: adapter.close()
        )

    # ------------------------------------------------------------------ configuration

    @classmethod
    def check_dependencies(cls, **options: Any) -> None:
        check_dependencies(options.get("provider"), options.get("url"))

    def _adapter_class(self) -> type[VectorAdapter]:
        self.check_dependencies(provider=self.provider, url=self.url)
        return adapter_class(self.provider)

    def _spec(self) -> IndexSpec:
        return IndexSpec(
            self.index_name, self.dimensions, self.metric, self.namespace or "", self.timeout
        )

    def _make_adapter(self) -> VectorAdapter:
        return self._adapter_class()(self._spec(), self)

    def _secrets(self) -> list[str]:
        return [self.api_key] if self.api_key else []

    def describe(self) -> str:
        where = f"url={redact(self.url)!r}" if self.url else f"path={self.path!r}"
        return (
            f"provider={self.provider!r} index={self.index_name!r} "
            f"namespace={self.namespace!r} dimensions={self.dimensions} "
            f"metric={self.metric!r} {where}"
        )

    # ------------------------------------------------------------------ record model

    def _encode(self, value: dict[str, Any]) -> str:
        return self._checked(value)[0]

    def _checked(self, value: dict[str, Any]) -> tuple[str, list[float] | None]:
        """Validate and encode a value; return its JSON text and its vector (``None``: the
        embedder computes it). The embedding (often hundreds of floats) is checked by the
        fast vector check instead of the generic walk."""
        if type(value) is dict and type(value.get(VECTOR_FIELD)) is list:
            vector = self._vectors.check(value[VECTOR_FIELD], f"$[{VECTOR_FIELD!r}]")
            rest = {k: v for k, v in value.items() if k != VECTOR_FIELD}
            super()._encode(rest)  # validates everything else, enforces the size limit
            data = _ENCODER.encode(value)
            limit = self.max_value_bytes
            if limit is not None and len(data.encode()) > limit:
                raise InvalidValueError(
                    f"The value is {len(data.encode())} bytes as JSON; the {self.provider!r} "
                    f"store accepts at most {limit}.",
                    "$",
                )
            return data, vector
        return super()._encode(value), self._vectors.of(value)

    def text_of(self, value: dict[str, Any], data: str) -> str:
        """The text an embedder turns into a value's vector: ``value[text_field]`` if it is
        a non-empty str; else the ``content`` strings of ``value["messages"]`` joined by
        newlines; else the value's JSON text."""
        return embedding_text(value, data, self.text_field)

    # ------------------------------------------------------------------ hooks

    async def _adapter(self) -> VectorAdapter:
        adapter = self._adapters.get()
        await self._guard("connect", adapter.ready(), adapter.errors, seconds=adapter.ready_timeout)
        return adapter

    async def _get(self, key: str) -> dict[str, Any] | None:
        found = await self._get_many([key])
        return found.get(key)

    async def set(self, key: str, value: dict[str, Any], *, ttl: float | None = None) -> None:
        validate_key(key)
        data, vector = self._checked(value)
        self._resolve_ttl(ttl)
        await self._write([(key, value, data)], [vector])

    async def set_many(
        self, mapping: Mapping[str, dict[str, Any]], *, ttl: float | None = None
    ) -> None:
        # The base class's, keeping the vectors that validation produced.
        if not isinstance(mapping, Mapping):
            raise InvalidValueError("set_many() takes a mapping of key -> value.")
        items: Items = []
        vectors: list[list[float] | None] = []
        for key, value in mapping.items():
            validate_key(key)
            data, vector = self._checked(value)
            items.append((key, value, data))
            vectors.append(vector)
        self._resolve_ttl(ttl)
        if items:
            await self._write(items, vectors)

    async def _set(self, key: str, value: dict[str, Any], data: str, ttl: float | None) -> None:
        await self._set_many([(key, value, data)], ttl)

    async def _delete(self, key: str) -> None:
        await self._delete_many([key])

    async def _get_many(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        found = await (await self._points()).fetch(keys)
        return {key: self._decode(found[key].data) for key in keys if key in found}

    async def _set_many(self, items: Items, ttl: float | None) -> None:
        await self._write(items, [self._vectors.of(value) for _key, value, _data in items])

    async def _write(self, items: Items, vectors: list[list[float] | None]) -> None:
        """Write ``items`` (plain ``set``): each gets a new version and keeps its creation
        time, so the current metadata is read first."""
        computed = await self._vectors.complete(items, vectors)  # before any I/O: checks them
        keys = [key for key, _value, _data in items]
        points = await self._points()
        async with points.locked(keys):
            await points.upsert(items, computed, await points.fetch(keys))

    async def _delete_many(self, keys: list[str]) -> None:
        points = await self._points()
        async with points.locked(keys):
            await points.delete(keys)

    async def _points(self) -> Points:
        """The store's points on the engine of the running event loop, started if need be."""
        return Points(await self._adapter(), self._guard)

    # ------------------------------------------------------------------ versioned records
    # On an embedded engine every write holds its keys' locks (VectorAdapter.locked), so a
    # read-check-write below is atomic; elsewhere the base class refuses these operations.

    async def _get_record(self, key: str) -> VersionedRecord | None:
        return (await self._get_many_records([key])).get(key)

    async def _get_many_records(self, keys: list[str]) -> dict[str, VersionedRecord]:
        found = await (await self._points()).fetch(keys)
        return {
            key: versioned_record(key, found[key], self._decode) for key in keys if key in found
        }

    async def _put_record(
        self, key: str, value: dict[str, Any], data: str, ttl: float | None, condition: Condition
    ) -> WriteResult:
        vectors = await self._vectors.complete([(key, value, data)], [self._vectors.of(value)])
        points = await self._points()
        async with points.locked([key]):
            current = await points.fetch([key])
            before = current.get(key)
            check_condition(condition, None if before is None else version_of(before))
            (version,) = await points.upsert([(key, value, data)], vectors, current)
        return WriteResult(version, before is None)

    async def _remove_record(self, key: str, if_version: str | None) -> bool:
        points = await self._points()
        async with points.locked([key]):
            before = (await points.fetch([key])).get(key)
            if if_version is not None:
                check_condition(if_version, None if before is None else version_of(before))
            await points.delete([key])
        return before is not None

    async def _append_items(
        self,
        key: str,
        field: str,
        items: list[Any],
        items_data: str,
        max_items: int | None,
        ttl: float | None,
    ) -> int:
        points = await self._points()
        async with points.locked([key]):
            current = await points.fetch([key])
            before = current.get(key)
            value, length = append_to(
                None if before is None else self._decode(before.data), field, items, max_items
            )
            await self._rewrite(points, key, value, current)
        return length

    async def _rewrite(
        self, points: Points, key: str, value: dict[str, Any], current: Mapping[str, Stored]
    ) -> None:
        """Write a value changed by append or pop: checked (size limits) and given its vector
        as set() would, from its embedding or by the embedder from its new text."""
        data, vector = self._checked(value)
        items = [(key, value, data)]
        await points.upsert(items, await self._vectors.complete(items, [vector]), current)

    async def _pop_item(self, key: str, field: str) -> Any:
        points = await self._points()
        async with points.locked([key]):
            current = await points.fetch([key])
            before = current.get(key)
            if before is None:
                return None
            value = self._decode(before.data)
            popped, item = pop_from(value, field)
            if popped:
                await self._rewrite(points, key, value, current)
        return item

    async def _keys(self, prefix: str, limit: int, cursor: str | None) -> KeyPage:
        return await (await self._points()).list_keys(prefix, limit, cursor)

    async def ping(self) -> None:
        await self._adapter()

    async def close(self) -> None:
        await self._adapters.close_all()

    # ------------------------------------------------------------------ search

    async def search(
        self,
        embedding: list[float] | str,
        limit: int = 5,
        *,
        filter: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Return up to ``limit`` records most similar to ``embedding``, best first, as
        ``{"key", "score", "value"}``; a higher score is more similar (see the module
        docstring for the formula per metric). ``embedding`` may be a text when the store
        has an embedder. ``filter`` restricts the candidates (see :mod:`.filters`)."""
        check_limit(limit)
        where = parse_filter(filter)
        if isinstance(embedding, str):
            if self.embedder is None:
                raise InvalidValueError("search() got a text but the store has no embedder.")
            vector = await self._vectors.embed(embedding, "embedding")
        else:
            vector = self._vectors.check(embedding, "embedding")
        points = await self._points()
        hits = await points.query(vector, limit, where)
        return ranked(hits, points.adapter.score_kind(), limit, self._decode)
