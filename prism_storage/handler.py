"""``storages``: one store per configured alias, created lazily and shared by every thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from .backends.base import BaseStorageBackend
from .backends.protocol_adapter import as_store
from .conf import ALIAS_KEYS, storage_setting
from .exceptions import ConfigurationError, InvalidStoreAliasError
from .registry import Registry, accepted_options

__all__ = ["StorageHandler", "alias_config", "build_store", "storages"]


def alias_config(settings: Any, alias: str) -> tuple[str, dict[str, Any]]:
    """Return ``(BACKEND, OPTIONS)`` for ``alias``, or raise ConfigurationError."""
    config = settings[alias]
    if not isinstance(config, dict):
        raise ConfigurationError(f"PRISM_STORAGE[{alias!r}] must be a dict.")
    unknown = set(config) - ALIAS_KEYS
    if unknown:
        raise ConfigurationError(
            f"PRISM_STORAGE[{alias!r}] has unknown key(s) {sorted(unknown)}; "
            f"allowed: {sorted(ALIAS_KEYS)}."
        )
    backend = config.get("BACKEND")
    if not isinstance(backend, str) or not backend:
        raise ConfigurationError(f"PRISM_STORAGE[{alias!r}] needs a BACKEND.")
    options = config.get("OPTIONS", {})
    if not isinstance(options, dict):
        raise ConfigurationError(f"PRISM_STORAGE[{alias!r}]['OPTIONS'] must be a dict.")
    return backend, dict(options)


def alias_in_options_error(alias: str) -> ConfigurationError:
    return ConfigurationError(
        f"PRISM_STORAGE[{alias!r}]['OPTIONS'] may not set 'alias': it is the key the store "
        "is configured under."
    )


def build_store(alias: str, backend: str, options: dict[str, Any]) -> BaseStorageBackend:
    """The store ``alias`` configures: ``backend`` built with ``options``, knowing its alias.

    A class that takes an ``alias`` keyword (or ``**kwargs``) gets it at construction. A
    class that implements only the specification's protocol is wrapped in a
    :class:`~prism_storage.backends.protocol_adapter.ProtocolAdapter`.
    """
    if "alias" in options:
        raise alias_in_options_error(alias)
    accepted = accepted_options(Registry.get_provider(backend))
    if accepted is None or "alias" in accepted:
        provider = Registry.create(backend, alias=alias, **options)
    else:
        provider = Registry.create(backend, **options)
        if isinstance(provider, BaseStorageBackend):
            # A subclass written before stores took their alias: its __init__ has no
            # ``alias`` parameter, so the alias can only be given after construction.
            provider.alias = alias
    return as_store(provider, alias=alias)


class StorageHandler:
    """Reads ``PRISM_STORAGE`` and hands out one store per alias.

    Unlike Django's cache handler the instances are shared by every thread: stores are
    thread-safe and keep one client per event loop themselves. The setting is read on first
    use and forgotten by :meth:`reset` (on ``setting_changed``).
    """

    def __init__(self, settings: dict[str, Any] | None = None) -> None:
        self._explicit_settings = settings
        self._settings: dict[str, Any] | None = None
        self._stores: dict[str, BaseStorageBackend] = {}
        self._lock = threading.Lock()

    @property
    def settings(self) -> dict[str, Any]:
        """The ``PRISM_STORAGE`` dict (or the one given to the constructor)."""
        settings = self._settings
        if settings is None:
            settings = self._read_settings()
            self._settings = settings
        return settings

    def _read_settings(self) -> dict[str, Any]:
        settings = self._explicit_settings
        if settings is None:
            settings = storage_setting()
        if not isinstance(settings, dict):
            raise ConfigurationError(
                "PRISM_STORAGE must be a dict of aliases, e.g. {'default': {'BACKEND': 'orm'}}."
            )
        return settings

    def create_connection(self, alias: str) -> BaseStorageBackend:
        """Build a new store for ``alias`` (not cached: use ``storages[alias]``)."""
        backend, options = alias_config(self.settings, alias)
        return build_store(alias, backend, options)

    def __getitem__(self, alias: str) -> BaseStorageBackend:
        store = self._stores.get(alias)
        if store is not None:
            return store
        if alias not in self.settings:
            raise InvalidStoreAliasError(
                f"No store {alias!r} in PRISM_STORAGE; configured: "
                f"{', '.join(sorted(self.settings)) or 'none'}."
            )
        with self._lock:
            store = self._stores.get(alias)
            if store is None:
                store = self.create_connection(alias)
                self._stores[alias] = store
        return store

    def __iter__(self) -> Iterator[str]:
        return iter(self.settings)

    def all(self, initialized_only: bool = False) -> list[BaseStorageBackend]:
        """Every configured store (only those created so far with ``initialized_only``)."""
        if initialized_only:
            return self.initialized()
        return [self[alias] for alias in self]

    def initialized(self) -> list[BaseStorageBackend]:
        return list(self._stores.values())

    def reset(self) -> None:
        """Forget the configuration and every instance (on ``setting_changed``)."""
        with self._lock:
            self._settings = None
            self._stores = {}

    async def aclose_all(self) -> None:
        """Close every instance created so far."""
        for store in self.initialized():
            await store.close()

    def close_all(self) -> None:
        from asgiref.sync import async_to_sync

        async_to_sync(self.aclose_all)()


storages = StorageHandler()
