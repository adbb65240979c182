"""What every adapter needs: the prism store it was given, by instance or by alias."""

from __future__ import annotations

from ..backends.base import BaseStorageBackend
from ..exceptions import InvalidValueError

__all__ = ["check_prefix", "resolve_store"]


def resolve_store(store: BaseStorageBackend | str) -> BaseStorageBackend:
    """``store`` itself, or ``storages[store]`` when it is an alias of ``PRISM_STORAGE``."""
    if isinstance(store, str):
        from ..handler import storages

        return storages[store]
    if not isinstance(store, BaseStorageBackend):
        raise InvalidValueError(
            f"store must be a prism store or the alias of one, not {type(store).__name__}."
        )
    return store


def check_prefix(prefix: object) -> str:
    """A key prefix is a str (possibly empty); keys are validated by the store itself."""
    if type(prefix) is not str:
        raise InvalidValueError("key_prefix must be a str.")
    return prefix
