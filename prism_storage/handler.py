"""``storages``: one backend instance per configured alias, created lazily."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

from django.utils.connection import BaseConnectionHandler

from .backends.base import BaseStorageBackend
from .conf import ALIAS_KEYS, storage_setting
from .exceptions import ConfigurationError, InvalidStoreAliasError
from .registry import Registry, accepted_options

__all__ = ["StorageHandler", "storages"]


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


class StorageHandler(BaseConnectionHandler):
    """Reads ``PRISM_STORAGE`` and hands out one backend instance per alias.

    Unlike Django's cache handler the instances are shared by every thread: backends are
    thread-safe and keep one client per event loop themselves.
    """

    settings_name = "PRISM_STORAGE"
    exception_class = InvalidStoreAliasError

    def __init__(self, settings: Any = None) -> None:
        super().__init__(settings)
        self._connections = SimpleNamespace()
        self._create_lock = threading.Lock()

    def configure_settings(self, settings: Any) -> Any:
        if settings is None:
            settings = storage_setting()
        if not isinstance(settings, dict):
            raise ConfigurationError(
                "PRISM_STORAGE must be a dict of aliases, e.g. {'default': {'BACKEND': 'orm'}}."
            )
        return settings

    def create_connection(self, alias: str) -> BaseStorageBackend:
        backend, options = alias_config(self.settings, alias)
        if "alias" in options:
            raise ConfigurationError(
                f"PRISM_STORAGE[{alias!r}]['OPTIONS'] may not set 'alias': it is the key "
                "the store is configured under."
            )
        accepted = accepted_options(Registry.get_provider(backend))
        if accepted is None or "alias" in accepted:
            return Registry.create(backend, alias=alias, **options)  # type: ignore[return-value]
        store = Registry.create(backend, **options)
        if isinstance(store, BaseStorageBackend):  # a subclass whose __init__ takes no alias
            store.alias = alias
        return store  # type: ignore[return-value]

    def __getitem__(self, alias: str) -> BaseStorageBackend:
        try:
            store: BaseStorageBackend = getattr(self._connections, alias)
            return store
        except AttributeError:
            pass
        if alias not in self.settings:
            raise self.exception_class(
                f"No store {alias!r} in PRISM_STORAGE; configured: "
                f"{', '.join(sorted(self.settings)) or 'none'}."
            )
        with self._create_lock:
            existing: BaseStorageBackend | None = getattr(self._connections, alias, None)
            if existing is not None:
                return existing
            created = self.create_connection(alias)
            setattr(self._connections, alias, created)
        return created

    def initialized(self) -> list[BaseStorageBackend]:
        return list(vars(self._connections).values())

    def reset(self) -> None:
        """Forget the configuration and every instance (on ``setting_changed``)."""
        self.__dict__.pop("settings", None)
        self._settings = None
        self._connections = SimpleNamespace()

    async def aclose_all(self) -> None:
        """Close every instance created so far."""
        for store in self.initialized():
            await store.close()

    def close_all(self) -> None:
        from asgiref.sync import async_to_sync

        async_to_sync(self.aclose_all)()


storages = StorageHandler()
