"""A record's metadata as its point keeps it (see :mod:`.adapter`): fresh metadata for
each write, and the versioned record a stored point stands for.

A point written before records carried metadata has none: its version is derived from
its stored JSON text (stable until the next write, which stores a real version), and its
times are the Unix epoch, meaning "before versions were kept" (kept as the creation time
by later writes, since the real one is unknown).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any

from ..versions import Record as VersionedRecord
from ..versions import new_version, timestamp
from .adapter import Record, Stored
from .filters import filterable_fields

__all__ = ["created_at", "new_records", "updated_at", "version_of", "versioned_record"]


def version_of(stored: Stored) -> str:
    if stored.version is not None:
        return stored.version
    return hashlib.sha256(stored.data.encode("utf-8")).hexdigest()[:16]


def created_at(stored: Stored) -> float:
    return 0.0 if stored.created_at is None else stored.created_at


def updated_at(stored: Stored) -> float:
    return 0.0 if stored.updated_at is None else stored.updated_at


def versioned_record(
    key: str, stored: Stored, decode: Callable[[str], dict[str, Any]]
) -> VersionedRecord:
    r"""The record ``stored`` holds, its JSON text ``decode``\ d."""
    return VersionedRecord(
        key,
        decode(stored.data),
        version_of(stored),
        timestamp(created_at(stored)),
        timestamp(updated_at(stored)),
    )


def new_records(
    items: list[tuple[str, dict[str, Any], str]],
    vectors: list[list[float]],
    current: Mapping[str, Stored],
    now: float,
) -> list[Record]:
    """The points to write for ``items`` at ``now``, each with its vector, its filterable
    fields and a new version, keeping the creation time of the ``current`` record."""
    records = []
    for (key, value, data), vector in zip(items, vectors, strict=True):
        before = current.get(key)
        created = now if before is None else created_at(before)
        fields = filterable_fields(value)
        records.append(Record(key, vector, data, fields, new_version(), created, now))
    return records
