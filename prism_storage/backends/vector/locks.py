"""Per-key locks for the embedded engines (Qdrant's local mode, milvus-lite).

Those engines serve one process only (``shared_across_processes`` is false), so a lock held
inside the process is enough to make read-check-write sequences on a record atomic: every
writer of the engine's data goes through it. A store may be used from several event loops
(one adapter per loop) in several threads, so a key's lock is handed from holder to waiter
(first come, first served) whatever loop each runs on, without blocking any loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterable

__all__ = ["KeyLocks", "key_locks"]

_Waiter = tuple[asyncio.AbstractEventLoop, "asyncio.Future[None]"]


class _Entry:
    __slots__ = ("held", "users", "waiters")

    def __init__(self) -> None:
        self.held = False
        self.waiters: deque[_Waiter] = deque()
        self.users = 0


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class KeyLocks:
    """Locks on the keys of one engine's data; an entry lives while someone uses it."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._entries: dict[str, _Entry] = {}

    @contextlib.asynccontextmanager
    async def hold(self, keys: Iterable[str]) -> AsyncIterator[None]:
        """Hold the locks of ``keys`` (taken in sorted order, so two holders of
        overlapping sets cannot deadlock)."""
        async with contextlib.AsyncExitStack() as stack:
            for key in sorted(set(keys)):
                await stack.enter_async_context(self._hold_one(key))
            yield

    @contextlib.asynccontextmanager
    async def _hold_one(self, key: str) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        waiter: _Waiter | None = None
        with self._mutex:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry()
            entry.users += 1
            if entry.held:
                waiter = (loop, loop.create_future())
                entry.waiters.append(waiter)
            else:
                entry.held = True
        try:
            if waiter is not None:
                try:
                    await waiter[1]
                except asyncio.CancelledError:
                    with self._mutex:
                        if waiter in entry.waiters:
                            entry.waiters.remove(waiter)  # never got the lock
                        else:
                            self._pass_on(entry)  # got it as it was cancelled
                    raise
            try:
                yield
            finally:
                with self._mutex:
                    self._pass_on(entry)
        finally:
            with self._mutex:
                entry.users -= 1
                if entry.users == 0:
                    del self._entries[key]

    @staticmethod
    def _pass_on(entry: _Entry) -> None:
        """Hand the held lock to the next waiter, or free it (under the mutex)."""
        while entry.waiters:
            loop, future = entry.waiters.popleft()
            try:
                loop.call_soon_threadsafe(_wake, future)
            except RuntimeError:
                continue  # its loop is closed: the next one
            return
        entry.held = False


_registry_lock = threading.Lock()
_registry: dict[str, KeyLocks] = {}


def key_locks(scope: str) -> KeyLocks:
    """The locks of one engine's data (``scope`` names it: engine, file, collection).
    Scopes are few (one per embedded store location), so they are kept for the process."""
    with _registry_lock:
        locks = _registry.get(scope)
        if locks is None:
            locks = _registry[scope] = KeyLocks()
        return locks
