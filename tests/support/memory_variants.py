"""Memory stores standing for other kinds of store in the API, admin and command tests.

* :class:`UnversionedMemoryBackend` keeps no versions (its record flags are off): the API,
  the admin and the commands must keep their behaviour of before versioned records for
  such stores (third-party backends, engines that cannot), whatever the built-in backends
  support.
* :class:`GatedMemoryBackend` lets concurrent requests interleave between two store
  calls, as they do on a store reached over the network (the memory store alone never
  awaits, so they never would).
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from prism_storage.backends.memory import MemoryStorageBackend
from prism_storage.backends.versions import Condition, Record, WriteResult


class UnversionedMemoryBackend(MemoryStorageBackend):
    supports_versions = False
    supports_conditional_writes = False
    supports_atomic_lists = False


class GatedMemoryBackend(MemoryStorageBackend):
    """Holds every read and write at :attr:`gate` until as many callers wait there as it
    takes, so concurrent requests all reach the store before any of them goes on: the
    worst interleaving a store reached over the network can produce, made certain."""

    #: Set by a test for its duration (``None``: no waiting).
    gate: ClassVar[asyncio.Barrier | None] = None

    async def _wait(self) -> None:
        if self.gate is not None:
            await self.gate.wait()

    async def _exists(self, key: str) -> bool:
        await self._wait()
        return await super()._exists(key)

    async def _set(self, key: str, value: dict[str, Any], data: str, ttl: float | None) -> None:
        await self._wait()
        await super()._set(key, value, data, ttl)

    async def _get_record(self, key: str) -> Record | None:
        await self._wait()
        return await super()._get_record(key)

    async def _put_record(
        self, key: str, value: dict[str, Any], data: str, ttl: float | None, condition: Condition
    ) -> WriteResult:
        await self._wait()
        return await super()._put_record(key, value, data, ttl, condition)


def memory_variant(variant: str, name: str) -> dict:
    """The ``PRISM_STORAGE`` entry of a ``variant`` ("Unversioned", "Gated") store."""
    return {
        "BACKEND": f"tests.support.memory_variants.{variant}MemoryBackend",
        "OPTIONS": {"name": name},
    }
