"""A full store around a class that implements only the specification's protocol.

``Registry.register`` accepts any class with async ``get``/``set``/``delete`` (the
:class:`~prism_storage.protocol.MemoryProvider` protocol). The handler, the JSON API, the
admin and the commands all speak :class:`BaseStorageBackend`, so ``storages[alias]`` wraps
such an instance in :class:`ProtocolAdapter`: the base class validates keys and values
before any I/O as for every store, the batch operations become one call per key, and
every capability flag is false, so listing, expiry and search raise
:class:`~prism_storage.exceptions.UnsupportedOperationError` instead of degrading. Each
call to the wrapped store gets the base class's timeout, and a timeout or ``OSError``
becomes :class:`~prism_storage.exceptions.BackendUnavailableError`, as on every store.
"""

from __future__ import annotations

import inspect
from typing import Any

from ..codec import decode_value, encode_value
from ..exceptions import CorruptRecordError, InvalidValueError
from ..protocol import MemoryProvider
from .base import BaseStorageBackend

__all__ = ["ProtocolAdapter", "as_store"]


class ProtocolAdapter(BaseStorageBackend):
    """Offers the whole store API over a ``MemoryProvider`` instance (``provider``)."""

    supports_ttl = False
    supports_listing = False
    supports_search = False
    supports_sweep = False
    native_batch = False
    # Nothing is known about the wrapped store, so nothing is promised.
    shared_across_processes = False

    def __init__(self, provider: MemoryProvider, *, alias: str | None = None) -> None:
        super().__init__(alias=alias)
        self.provider = provider

    def describe(self) -> str:
        return f"wrapping {type(self.provider).__qualname__}"

    async def close(self) -> None:
        # The protocol has no close(); a provider that has an async one gets it called.
        close = getattr(self.provider, "close", None)
        if inspect.iscoroutinefunction(close):
            await close()

    # The provider may keep the very dict it was given, or hand out its own: values cross
    # the boundary as fresh copies both ways, so callers and the provider never share one.

    async def _get(self, key: str) -> dict[str, Any] | None:
        value = await self._guard("read", self.provider.get(key))
        if value is None:
            return None
        try:
            if type(value) is not dict:
                raise InvalidValueError("not a dict", "$")
            return decode_value(encode_value(value))
        except InvalidValueError as exc:
            raise CorruptRecordError(
                f"{type(self.provider).__qualname__}.get({key!r}) returned a value that is "
                f"not a dict of JSON data: {exc}"
            ) from None

    async def _set(self, key: str, value: dict[str, Any], data: str, ttl: float | None) -> None:
        await self._guard("write", self.provider.set(key, decode_value(data)))

    async def _delete(self, key: str) -> None:
        await self._guard("delete", self.provider.delete(key))

    # One call at a time: nothing says the wrapped store takes concurrent calls.

    async def _get_many(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for key in keys:
            value = await self._get(key)
            if value is not None:
                found[key] = value
        return found

    async def _set_many(
        self, items: list[tuple[str, dict[str, Any], str]], ttl: float | None
    ) -> None:
        for key, value, data in items:
            await self._set(key, value, data, ttl)

    async def _delete_many(self, keys: list[str]) -> None:
        for key in keys:
            await self._delete(key)


def as_store(provider: MemoryProvider, *, alias: str | None = None) -> BaseStorageBackend:
    """``provider`` itself if it is a full store, else ``provider`` wrapped in an adapter."""
    if isinstance(provider, BaseStorageBackend):
        return provider
    return ProtocolAdapter(provider, alias=alias)
