"""The small interface each vector engine implements for :class:`VectorStorageBackend`.

The backend validates everything (keys, values, vectors, filters) and turns engine scores
into its score convention; an adapter only moves records in and out of one engine. An
adapter is bound to one event loop (the backend keeps one per loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from ..base import KeyPage
from .filters import Node, Scalar
from .locks import KeyLocks

#: Least time the first use of an embedded engine may take (it starts in this process).
EMBEDDED_START_SECONDS = 60.0

__all__ = [
    "CREATED",
    "UPDATED",
    "VERSION",
    "Connection",
    "Hit",
    "IndexSpec",
    "Record",
    "ScoreKind",
    "Stored",
    "VectorAdapter",
    "point_id",
]

#: Where a point keeps its record metadata (payload / metadata / ``meta`` JSON keys, beside
#: the value's fields, whose names can never start with ``_prism``): the version, and the
#: creation and last write times as Unix seconds.
VERSION, CREATED, UPDATED = "_prism_version", "_prism_created", "_prism_updated"

Metric = Literal["cosine", "euclidean", "dotproduct"]
#: What an engine's native score is: a similarity (cosine, dot product), a Euclidean
#: distance, or a squared Euclidean distance.
ScoreKind = Literal["similarity", "distance", "squared_distance"]


def point_id(namespace: str, key: str) -> str:
    """The engine id of ``key`` in ``namespace``: a uuid-shaped 128-bit hash.

    The first half hashes the key alone, so listings (which follow id order) visit the same
    keys in the same order in every namespace; the second half hashes (namespace, key).
    """
    by_key = hashlib.sha256(key.encode("utf-8")).digest()[:8]
    by_pair = hashlib.sha256(f"{namespace}\x00{key}".encode()).digest()[:8]
    return str(uuid.UUID(bytes=by_key + by_pair))


@dataclass(frozen=True)
class IndexSpec:
    """What the backend was configured with (the adapter's view of it)."""

    name: str
    dimensions: int
    metric: Metric
    namespace: str  # "" is the default namespace
    timeout: float


@dataclass(frozen=True)
class Record:
    """One record to write: ``data`` is the value's JSON text, ``fields`` its filterable
    top-level fields."""

    key: str
    vector: list[float]
    data: str
    fields: dict[str, Scalar]
    version: str
    created_at: float
    updated_at: float

    def metadata(self) -> dict[str, Scalar]:
        """The record metadata as the point stores it."""
        return {VERSION: self.version, CREATED: self.created_at, UPDATED: self.updated_at}


@dataclass(frozen=True)
class Stored:
    """A record as read back: its JSON text and the metadata the point holds (``None``
    for a point written before records carried metadata)."""

    data: str
    version: str | None = None
    created_at: float | None = None
    updated_at: float | None = None

    @classmethod
    def of(cls, data: str, holder: Mapping[str, Any]) -> Stored:
        """``data`` with the metadata found in ``holder`` (a payload or metadata dict)."""
        version, created, updated = holder.get(VERSION), holder.get(CREATED), holder.get(UPDATED)
        if (
            isinstance(version, str)
            and isinstance(created, int | float)
            and isinstance(updated, int | float)
        ):
            return cls(data, version, float(created), float(updated))
        return cls(data)


@dataclass(frozen=True)
class Hit:
    key: str
    native_score: float
    data: str


class Connection(Protocol):
    """Where and how to reach the engine (the backend's connection options)."""

    @property
    def api_key(self) -> str | None: ...
    @property
    def environment(self) -> str | None: ...
    @property
    def index_name(self) -> str: ...
    @property
    def url(self) -> str | None: ...
    @property
    def path(self) -> str | None: ...


class VectorAdapter(ABC):
    """Moves records in and out of one engine; every method may raise the engine's
    connection errors (listed in ``errors``), which the backend maps to
    BackendUnavailableError."""

    #: The engine's connection-level exception types.
    errors: tuple[type[BaseException], ...] = ()

    def __init__(self, spec: IndexSpec, options: Connection) -> None:
        self.spec = spec
        self.options = options
        self._ready = False
        self._lock = asyncio.Lock()

    async def ready(self) -> None:
        """Create the collection/index on first use, or check that the existing one
        matches (:class:`SchemaMismatchError` if not)."""
        if self._ready:
            return
        async with self._lock:
            if not self._ready:
                await self.prepare()
                self._ready = True

    @classmethod
    @abstractmethod
    def validate_options(cls, options: Connection) -> None:
        """Raise InvalidOptionError for options this engine cannot use (no I/O)."""

    @property
    def embedded(self) -> bool:
        """The engine runs inside this process (no ``url``): milvus-lite or Qdrant's
        local mode."""
        return self.options.url is None

    @property
    def ready_timeout(self) -> float:
        """Seconds the first use may take. An embedded engine starts inside this process
        (milvus-lite launches its server and opens a socket), which on a loaded machine
        takes longer than a network call may: it gets at least a minute."""
        if self.embedded:
            return max(self.spec.timeout, EMBEDDED_START_SECONDS)
        return self.spec.timeout

    def key_locks(self) -> KeyLocks | None:
        """The per-key locks of an engine that serves this process only; ``None`` for a
        server that other processes share (where a lock in this process proves nothing)."""
        return None

    def lock_key(self, key: str) -> str:
        """What :meth:`key_locks` locks for ``key``: its place in the engine's data."""
        return f"{self.spec.name}\x00{self.spec.namespace}\x00{key}"

    @contextlib.asynccontextmanager
    async def locked(self, keys: Iterable[str]) -> AsyncIterator[None]:
        """Hold the locks of ``keys`` on an engine that serves this process only; on a
        shared server, nothing (the backend refuses the conditional and list operations
        there)."""
        locks = self.key_locks()
        if locks is None:
            yield
            return
        async with locks.hold(self.lock_key(key) for key in keys):
            yield

    def score_kind(self) -> ScoreKind:
        return "similarity" if self.spec.metric != "euclidean" else "distance"

    @abstractmethod
    async def prepare(self) -> None: ...

    @abstractmethod
    async def upsert(self, records: list[Record]) -> None: ...

    @abstractmethod
    async def fetch(self, keys: list[str]) -> dict[str, Stored]:
        """The given keys that exist, with their JSON text and metadata."""

    @abstractmethod
    async def delete(self, keys: list[str]) -> None: ...

    @abstractmethod
    async def query(self, vector: list[float], limit: int, where: Node | None) -> list[Hit]:
        """Up to ``limit`` nearest records, best first, with the engine's native score."""

    @abstractmethod
    async def list_keys(self, prefix: str, limit: int, cursor: str | None) -> KeyPage: ...

    @abstractmethod
    async def close(self) -> None: ...
