"""The store browser's live health column: every store pinged at once."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from asgiref.sync import async_to_sync

from ..backends.base import BaseStorageBackend
from ..compat import outer_event_loop_running
from .failures import failure_message

__all__ = ["Health", "ping_all"]


@dataclass(frozen=True)
class Health:
    """One live ping: ``problem`` is ``None`` when the store answered."""

    problem: str | None
    latency_ms: float | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def label(self) -> str:
        """What the page shows: "OK (1.2 ms)" or the redacted failure."""
        if self.problem is not None:
            return self.problem
        return "OK" if self.latency_ms is None else f"OK ({self.latency_ms:.1f} ms)"


def ping_all(stores: dict[str, BaseStorageBackend]) -> dict[str, Health]:
    """Ping every store concurrently: alias -> its :class:`Health`."""

    async def ping(store: BaseStorageBackend) -> Health:
        started = time.perf_counter()
        try:
            await store.ping()
        except Exception as exc:  # any failure is a health result, never a crashed page
            return Health(failure_message(exc, store))
        return Health(None, (time.perf_counter() - started) * 1000)

    async def ping_every_store() -> dict[str, Health]:
        try:
            results = await asyncio.gather(*(ping(s) for s in stores.values()))
            return dict(zip(stores, results, strict=True))
        finally:
            if not outer_loop:  # the loop async_to_sync made ends now: release its clients
                for store in stores.values():
                    await store.close()

    outer_loop = outer_event_loop_running()
    return async_to_sync(ping_every_store)()
