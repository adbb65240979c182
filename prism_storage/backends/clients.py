"""Plumbing for backends built on client libraries: optional imports, one client per loop."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from ..exceptions import MissingDependencyError

__all__ = ["LoopBoundClients", "check_installed", "require"]

ClientT = TypeVar("ClientT")


def require(module: str, *, backend: str, extra: str, package: str | None = None) -> Any:
    """Import an optional client library, or raise MissingDependencyError naming the extra."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(backend, package or module.split(".")[0], extra) from exc


def check_installed(backend: str, requires: tuple[tuple[str, str], ...]) -> None:
    """Raise MissingDependencyError for the first ``(module, pip extra)`` of ``requires``
    that cannot be imported (looked up without importing it)."""
    for module, extra in requires:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a parent package is missing or broken
            found = False
        if not found:
            raise MissingDependencyError(backend, module, extra)


class LoopBoundClients(Generic[ClientT]):
    """Keeps one client per running event loop.

    Async clients (redis, httpx, aiohttp, grpc) are bound to the loop they were created on,
    and a Django process may drive one backend from several loops (``async_to_sync`` runs a
    fresh loop per call in sync code). A client whose loop has been garbage-collected is
    forgotten; ``close_all`` closes the ones that can still be closed.
    """

    def __init__(
        self,
        create: Callable[[], ClientT],
        close: Callable[[ClientT], Any],
    ) -> None:
        self._create = create
        self._close = close
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ClientT] = (
            weakref.WeakKeyDictionary()
        )

    def get(self) -> ClientT:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._create()
            self._clients[loop] = client
        return client

    def peek(self) -> ClientT | None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        return self._clients.get(loop)

    async def close_all(self) -> None:
        current = asyncio.get_running_loop()
        for loop, client in list(self._clients.items()):
            del self._clients[loop]
            if loop is current:
                await self._close(client)
            elif not loop.is_closed() and loop.is_running():
                asyncio.run_coroutine_threadsafe(self._close(client), loop)
