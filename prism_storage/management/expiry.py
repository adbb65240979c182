"""Writing records with the expiry they had elsewhere (``prism_copy``, ``prism_import``).

A copied or imported record is a new write in the target store: it gets a version and
creation time of its own there. What it keeps is its *expiry*, where the source says
when that is: it is written with the time it had left, so a session that would have
expired in an hour still does, and one that has expired meanwhile is not written at all.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..backends.base import BaseStorageBackend

__all__ = ["BatchWrite", "read_batch", "write_batch"]


async def read_batch(
    store: BaseStorageBackend, keys: list[str]
) -> tuple[dict[str, dict[str, Any]], dict[str, datetime | None]]:
    """The values of ``keys`` that hold a record, and their expiries where the store
    keeps record metadata (else none)."""
    if not store.supports_versions:
        return await store.get_many(keys), {}
    records = await store.get_many_records(keys)
    values = {key: record.value for key, record in records.items()}
    return values, {key: record.expires_at for key, record in records.items()}


@dataclass
class BatchWrite:
    """What :func:`write_batch` did."""

    written: int = 0
    #: The keys of records whose expiry passed before they could be written (not written).
    expired: list[str] = field(default_factory=list)
    #: Records written without their expiry, the store being unable to expire records.
    expiry_dropped: int = 0


async def write_batch(
    store: BaseStorageBackend,
    values: Mapping[str, dict[str, Any]],
    expiries: Mapping[str, datetime | None],
) -> BatchWrite:
    """Write ``values`` to ``store``; those with an expiry in ``expiries`` with the time
    they have left.

    Records without one go in one ``set_many`` (the store's default ``ttl`` applies, as
    to any write); each of the others needs a ``set`` of its own, since ``set_many`` takes
    one ``ttl`` for all, and they are sent together.
    """
    result = BatchWrite()
    plain: dict[str, dict[str, Any]] = {}
    timed: dict[str, tuple[dict[str, Any], float]] = {}
    now = time.time()
    for key, value in values.items():
        expires_at = expiries.get(key)
        if expires_at is None:
            plain[key] = value
        elif (left := expires_at.timestamp() - now) <= 0:
            result.expired.append(key)
        elif store.supports_ttl:
            timed[key] = (value, left)
        else:
            result.expiry_dropped += 1
            plain[key] = value
    if plain:
        await store.set_many(plain)
    if timed:
        await asyncio.gather(*(store.set(k, v, ttl=left) for k, (v, left) in timed.items()))
    result.written = len(plain) + len(timed)
    return result
