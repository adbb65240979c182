"""Running the adapters' coroutines from sync code, as :mod:`prism_storage.sync` does."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from asgiref.sync import async_to_sync

from ...backends.base import BaseStorageBackend
from ...compat import outer_event_loop_running
from ...exceptions import UnsupportedOperationError

T = TypeVar("T")


def run_sync(
    store: BaseStorageBackend, method: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any
) -> T:
    """Run ``method(*args, **kwargs)`` to its end from sync code.

    On an outer loop (a sync view under ASGI) the call runs there; elsewhere asgiref
    starts a loop for the call, and the store's clients for that loop are closed before it
    ends, so no connection outlives its loop.
    """
    if outer_event_loop_running():
        return async_to_sync(method)(*args, **kwargs)

    async def on_short_lived_loop() -> T:
        try:
            return await method(*args, **kwargs)
        finally:
            await store.close()

    return async_to_sync(on_short_lived_loop)()


def resolve_store(store: BaseStorageBackend | str) -> BaseStorageBackend:
    """A store instance, or the store of a ``PRISM_STORAGE`` alias."""
    if isinstance(store, str):
        from ...handler import storages

        return storages[store]
    if not isinstance(store, BaseStorageBackend):
        raise TypeError(f"Expected a prism store or an alias, not {type(store).__name__}.")
    return store


def resolve_listing_store(store: BaseStorageBackend | str, needed_for: str) -> BaseStorageBackend:
    """:func:`resolve_store`, refusing a store that cannot list its keys (``needed_for``
    ends the error's sentence: what listing is needed for)."""
    resolved = resolve_store(store)
    if not resolved.supports_listing:
        raise UnsupportedOperationError(
            f"The {resolved.backend_name!r} backend cannot list keys, which {needed_for}"
        )
    return resolved


def folder_prefix(prefix: str) -> str:
    """``prefix`` ending in ``/``, so that listing under it is exact."""
    return prefix if prefix.endswith("/") else prefix + "/"
