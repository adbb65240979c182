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

import asyncio
import contextlib
import hashlib
import json
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar, Literal

from ...codec import validate_key
from ...exceptions import InvalidOptionError, InvalidValueError, MissingDependencyError
from ..base import DEFAULT_TIMEOUT, BaseStorageBackend, KeyPage
from ..clients import LoopBoundClients
from ..redaction import redact
from ..versions import (
    Condition,
    WriteResult,
    append_to,
    check_condition,
    new_version,
    pop_from,
    timestamp,
)
from ..versions import Record as VersionedRecord
from .adapter import IndexSpec, Record, Stored, VectorAdapter
from .filters import filterable_fields, parse_filter
from .vectors import Embedder, check_vector, embed, resolve_embedder, to_score

__all__ = ["PROVIDERS", "VectorStorageBackend"]

Provider = Literal["pinecone", "qdrant", "milvus"]
Metric = Literal["cosine", "euclidean", "dotproduct"]

#: provider -> (module implementing it, client module, pip extra)
PROVIDERS: dict[str, tuple[str, str, str]] = {
    "qdrant": ("qdrant", "qdrant_client", "qdrant"),
    "milvus": ("milvus", "pymilvus", "milvus"),
    "pinecone": ("pinecone", "pinecone", "pinecone"),
}
METRICS = ("cosine", "euclidean", "dotproduct")
#: ``search()`` returns at most this many results (Pinecone's cap when metadata is included).
MAX_SEARCH_LIMIT = 1000
MAX_DIMENSIONS = 20_000
VECTOR_FIELD = "embedding"
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
        if provider not in PROVIDERS:
            raise InvalidOptionError(
                f"provider must be one of {', '.join(map(repr, PROVIDERS))}, not {provider!r}."
            )
        if metric not in METRICS:
            raise InvalidOptionError(
                f"metric must be one of {', '.join(map(repr, METRICS))}, not {metric!r}."
            )
        if type(dimensions) is not int or not 1 <= dimensions <= MAX_DIMENSIONS:
            raise InvalidOptionError(f"dimensions must be an int from 1 to {MAX_DIMENSIONS}.")
        for name, option in (
            ("api_key", api_key),
            ("environment", environment),
            ("namespace", namespace),
            ("url", url),
        ):
            if option is not None and (not isinstance(option, str) or not option):
                raise InvalidOptionError(f"{name} must be a non-empty str or None.")
        if namespace is not None and (len(namespace) > 255 or "\x00" in namespace):
            raise InvalidOptionError("namespace must be at most 255 characters, without NUL.")
        if not isinstance(index_name, str) or not index_name:
            raise InvalidOptionError("index_name must be a non-empty str.")
        if path is not None and not isinstance(path, str):
            path = str(path)  # a pathlib.Path from settings
        if not isinstance(text_field, str) or not text_field:
            raise InvalidOptionError("text_field must be a non-empty str.")
        if type(timeout) not in (int, float) or not 0 < timeout <= 3600:
            raise InvalidOptionError("timeout must be a positive number of seconds.")
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
        self.max_value_bytes = self.VALUE_LIMITS[provider]
        self._adapter_class().validate_options(self)
        self._adapters: LoopBoundClients[VectorAdapter] = LoopBoundClients(
            self._make_adapter, lambda adapter: adapter.close()
        )

    # ------------------------------------------------------------------ configuration

    @classmethod
    def check_dependencies(cls, **options: Any) -> None:
        import importlib.util

        provider = options.get("provider")
        if provider not in PROVIDERS:
            return  # the constructor reports the bad provider
        _module, client_module, extra = PROVIDERS[provider]
        if importlib.util.find_spec(client_module) is None:
            raise MissingDependencyError(f"vector/{provider}", client_module, extra)
        if (
            provider == "milvus"
            and not options.get("url")
            and importlib.util.find_spec("milvus_lite") is None
        ):
            raise MissingDependencyError("vector/milvus", "milvus-lite", extra)

    def _adapter_class(self) -> type[VectorAdapter]:
        import importlib

        module_name = PROVIDERS[self.provider][0]
        self.check_dependencies(provider=self.provider, url=self.url)
        module = importlib.import_module(f"{__package__}.{module_name}")
        adapter: type[VectorAdapter] = module.ADAPTER
        return adapter

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

    def _vector(self, raw: Any, path: str) -> list[float]:
        return check_vector(raw, self.dimensions, path)

    def _encode(self, value: dict[str, Any]) -> str:
        return self._checked(value)[0]

    def _checked(self, value: dict[str, Any]) -> tuple[str, list[float] | None]:
        """Validate and encode a value; return its JSON text and its vector (``None``: the
        embedder computes it). The embedding (often hundreds of floats) is checked by the
        fast vector check instead of the generic walk."""
        if type(value) is dict and type(value.get(VECTOR_FIELD)) is list:
            vector = self._vector(value[VECTOR_FIELD], f"$[{VECTOR_FIELD!r}]")
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
        return super()._encode(value), self._vector_of(value)

    def _vector_of(self, value: dict[str, Any]) -> list[float] | None:
        """The value's checked vector (``None``: it has none, the embedder computes it)."""
        raw = value.get(VECTOR_FIELD)
        if raw is not None:
            return self._vector(raw, f"$[{VECTOR_FIELD!r}]")
        if self.embedder is None:
            raise InvalidValueError(
                f"$: the value has no {VECTOR_FIELD!r} and the store has no embedder.", "$"
            )
        return None

    def text_of(self, value: dict[str, Any], data: str) -> str:
        """The text an embedder turns into a value's vector: ``value[text_field]`` if it is
        a non-empty str; else the ``content`` strings of ``value["messages"]`` joined by
        newlines; else the value's JSON text."""
        text = value.get(self.text_field)
        if isinstance(text, str) and text:
            return text
        messages = value.get("messages")
        if isinstance(messages, list):
            contents = [
                m["content"]
                for m in messages
                if isinstance(m, dict) and isinstance(m.get("content"), str)
            ]
            if any(contents):
                return "\n".join(contents)
        return data

    async def _embed(self, text: str, path: str) -> list[float]:
        assert self.embedder is not None
        return self._vector(await embed(self.embedder, text), path)

    async def _embedded(self, key: str, value: dict[str, Any], data: str) -> list[float]:
        return await self._embed(self.text_of(value, data), f"embedder({key!r})")

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
        items: list[tuple[str, dict[str, Any], str]] = []
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
        adapter = await self._adapter()
        found = await self._fetch(adapter, keys)
        return {key: self._decode(found[key].data) for key in keys if key in found}

    async def _set_many(
        self, items: list[tuple[str, dict[str, Any], str]], ttl: float | None
    ) -> None:
        await self._write(items, [self._vector_of(value) for _key, value, _data in items])

    async def _write(
        self, items: list[tuple[str, dict[str, Any], str]], vectors: list[list[float] | None]
    ) -> None:
        """Write ``items`` (plain ``set``): each gets a new version and keeps its creation
        time, so the current metadata is read first."""
        computed = await self._completed(items, vectors)  # before any I/O: checks them
        keys = [key for key, _value, _data in items]
        adapter = await self._adapter()
        async with self._locked(adapter, keys):
            current = await self._fetch(adapter, keys)
            await self._upsert(adapter, items, computed, current)

    async def _completed(
        self, items: list[tuple[str, dict[str, Any], str]], vectors: list[list[float] | None]
    ) -> list[list[float]]:
        """``vectors`` with the missing ones (``None``) computed by the embedder from their
        values, as for any write."""
        complete: list[list[float]] = []
        missing = [index for index, vector in enumerate(vectors) if vector is None]
        computed = iter(
            # computed concurrently (an embedder may be a remote service)
            await asyncio.gather(*(self._embedded(*items[i]) for i in missing))
        )
        for vector in vectors:
            complete.append(next(computed) if vector is None else vector)
        return complete

    async def _upsert(
        self,
        adapter: VectorAdapter,
        items: list[tuple[str, dict[str, Any], str]],
        vectors: list[list[float]],
        current: Mapping[str, Stored],
    ) -> list[str]:
        """Upsert ``items``, each with its vector and fresh metadata (keeping the creation
        time of the ``current`` record); return the new versions."""
        now = time.time()
        records = []
        for (key, value, data), vector in zip(items, vectors, strict=True):
            before = current.get(key)
            created = now if before is None else _created_at(before)
            fields = filterable_fields(value)
            records.append(Record(key, vector, data, fields, new_version(), created, now))
        await self._guard("write", adapter.upsert(records), adapter.errors)
        return [record.version for record in records]

    async def _delete_many(self, keys: list[str]) -> None:
        adapter = await self._adapter()
        async with self._locked(adapter, keys):
            await self._guard("delete", adapter.delete(keys), adapter.errors)

    async def _fetch(self, adapter: VectorAdapter, keys: list[str]) -> dict[str, Stored]:
        return await self._guard("read", adapter.fetch(keys), adapter.errors)

    @contextlib.asynccontextmanager
    async def _locked(self, adapter: VectorAdapter, keys: list[str]) -> AsyncIterator[None]:
        """Hold the keys' locks on an embedded engine; on a shared server, nothing (the
        conditional and list operations are refused there)."""
        locks = adapter.key_locks()
        if locks is None:
            yield
            return
        async with locks.hold(adapter.lock_key(key) for key in keys):
            yield

    # ------------------------------------------------------------------ versioned records

    def _record(self, key: str, stored: Stored) -> VersionedRecord:
        return VersionedRecord(
            key,
            self._decode(stored.data),
            _version_of(stored),
            timestamp(_created_at(stored)),
            timestamp(_updated_at(stored)),
        )

    async def _get_record(self, key: str) -> VersionedRecord | None:
        return (await self._get_many_records([key])).get(key)

    async def _get_many_records(self, keys: list[str]) -> dict[str, VersionedRecord]:
        adapter = await self._adapter()
        found = await self._fetch(adapter, keys)
        return {key: self._record(key, found[key]) for key in keys if key in found}

    async def _put_record(
        self, key: str, value: dict[str, Any], data: str, ttl: float | None, condition: Condition
    ) -> WriteResult:
        vectors = await self._completed([(key, value, data)], [self._vector_of(value)])
        adapter = await self._adapter()
        async with self._locked(adapter, [key]):
            current = await self._fetch(adapter, [key])
            before = current.get(key)
            check_condition(condition, None if before is None else _version_of(before))
            (version,) = await self._upsert(adapter, [(key, value, data)], vectors, current)
        return WriteResult(version, before is None)

    async def _remove_record(self, key: str, if_version: str | None) -> bool:
        adapter = await self._adapter()
        async with self._locked(adapter, [key]):
            before = (await self._fetch(adapter, [key])).get(key)
            if if_version is not None:
                check_condition(if_version, None if before is None else _version_of(before))
            await self._guard("delete", adapter.delete([key]), adapter.errors)
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
        adapter = await self._adapter()
        async with self._locked(adapter, [key]):
            current = await self._fetch(adapter, [key])
            before = current.get(key)
            value, length = append_to(
                None if before is None else self._decode(before.data), field, items, max_items
            )
            await self._rewrite(adapter, key, value, current)
        return length

    async def _rewrite(
        self, adapter: VectorAdapter, key: str, value: dict[str, Any], current: Mapping[str, Stored]
    ) -> None:
        """Write a value changed by append or pop: checked (size limits) and given its vector
        as set() would, from its embedding or by the embedder from its new text."""
        data, vector = self._checked(value)
        items = [(key, value, data)]
        await self._upsert(adapter, items, await self._completed(items, [vector]), current)

    async def _pop_item(self, key: str, field: str) -> Any:
        adapter = await self._adapter()
        async with self._locked(adapter, [key]):
            current = await self._fetch(adapter, [key])
            before = current.get(key)
            if before is None:
                return None
            value = self._decode(before.data)
            popped, item = pop_from(value, field)
            if popped:
                await self._rewrite(adapter, key, value, current)
        return item

    async def _keys(self, prefix: str, limit: int, cursor: str | None) -> KeyPage:
        adapter = await self._adapter()
        return await self._guard(
            "list keys", adapter.list_keys(prefix, limit, cursor), adapter.errors
        )

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
        if type(limit) is not int or not 1 <= limit <= MAX_SEARCH_LIMIT:
            raise InvalidValueError(f"limit must be an int from 1 to {MAX_SEARCH_LIMIT}.")
        where = parse_filter(filter)
        if isinstance(embedding, str):
            if self.embedder is None:
                raise InvalidValueError("search() got a text but the store has no embedder.")
            vector = await self._embed(embedding, "embedding")
        else:
            vector = self._vector(embedding, "embedding")
        adapter = await self._adapter()
        hits = await self._guard("search", adapter.query(vector, limit, where), adapter.errors)
        kind = adapter.score_kind()
        scored = sorted(
            ((to_score(kind, hit.native_score), hit) for hit in hits),
            key=lambda pair: pair[0],
            reverse=True,
        )
        return [
            {"key": hit.key, "score": score, "value": self._decode(hit.data)}
            for score, hit in scored[:limit]
        ]


# ---------------------------------------------------------------------- stored metadata
# A point written before records carried metadata has none: its version is derived from
# its stored JSON text (stable until the next write, which stores a real version), and its
# times are the Unix epoch, meaning "before versions were kept" (kept as the creation time
# by later writes, since the real one is unknown).


def _version_of(stored: Stored) -> str:
    if stored.version is not None:
        return stored.version
    return hashlib.sha256(stored.data.encode("utf-8")).hexdigest()[:16]


def _created_at(stored: Stored) -> float:
    return 0.0 if stored.created_at is None else stored.created_at


def _updated_at(stored: Stored) -> float:
    return 0.0 if stored.updated_at is None else stored.updated_at
