"""The small interface each vector engine implements for :class:`VectorStorageBackend`.

The backend validates everything (keys, values, vectors, filters) and turns engine scores
into its score convention; an adapter only moves records in and out of one engine. An
adapter is bound to one event loop (the backend keeps one per loop).
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal, Protocol

from ..base import KeyPage
from .filters import Node, Scalar

__all__ = ["Connection", "Hit", "IndexSpec", "Record", "ScoreKind", "VectorAdapter", "point_id"]

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

    def score_kind(self) -> ScoreKind:
        return "similarity" if self.spec.metric != "euclidean" else "distance"

    @abstractmethod
    async def prepare(self) -> None: ...

    @abstractmethod
    async def upsert(self, records: list[Record]) -> None: ...

    @abstractmethod
    async def fetch(self, keys: list[str]) -> dict[str, str]:
        """``{key: JSON text}`` of the given keys that exist."""

    @abstractmethod
    async def delete(self, keys: list[str]) -> None: ...

    @abstractmethod
    async def query(self, vector: list[float], limit: int, where: Node | None) -> list[Hit]:
        """Up to ``limit`` nearest records, best first, with the engine's native score."""

    @abstractmethod
    async def list_keys(self, prefix: str, limit: int, cursor: str | None) -> KeyPage: ...

    @abstractmethod
    async def close(self) -> None: ...
