"""The backend registry: names to backend classes, imported on first use."""

from __future__ import annotations

import inspect
import threading
from typing import Any, ClassVar, cast

from asgiref.sync import iscoroutinefunction
from django.utils.module_loading import import_string

from .exceptions import InvalidOptionError, UnknownBackendError
from .protocol import MemoryProvider

__all__ = ["BUILTIN_BACKENDS", "Registry"]

#: Built-in backends as dotted paths, so importing prism_storage imports no client library.
BUILTIN_BACKENDS: dict[str, str] = {
    "file": "prism_storage.backends.file.FileStorageBackend",
    "memory": "prism_storage.backends.memory.MemoryStorageBackend",
    "orm": "prism_storage.backends.orm.ORMStorageBackend",
    "redis": "prism_storage.backends.redis.RedisStorageBackend",
    "supabase": "prism_storage.backends.supabase.SupabaseStorageBackend",
    "vector": "prism_storage.backends.vector.VectorStorageBackend",
}

_PROTOCOL_METHODS = ("get", "set", "delete")


def _check_provider_class(name: str, provider_class: Any) -> None:
    if not inspect.isclass(provider_class):
        raise TypeError(f"Backend {name!r} must be a class, not {provider_class!r}.")
    missing = [
        m
        for m in _PROTOCOL_METHODS
        # asgiref's test also knows methods marked as coroutine functions (the observed
        # public methods of BaseStorageBackend return their coroutine without being one).
        if not iscoroutinefunction(getattr(provider_class, m, None))
    ]
    if missing:
        raise TypeError(
            f"Backend {name!r} ({provider_class.__qualname__}) does not implement the "
            f"MemoryProvider protocol: missing async {', '.join(missing)}()."
        )


class Registry:
    """Maps backend names (``"file"``, ``"redis"``...) to backend classes."""

    _providers: ClassVar[dict[str, str | type[MemoryProvider]]] = dict(BUILTIN_BACKENDS)
    _lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def register(cls, name: str, provider_class: type[MemoryProvider]) -> None:
        """Register ``provider_class`` under ``name``, replacing any previous entry."""
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError("A backend name must be a non-empty str without dots.")
        _check_provider_class(name, provider_class)
        with cls._lock:
            cls._providers[name] = provider_class

    @classmethod
    def unregister(cls, name: str) -> None:
        """Remove a registered name (built-in names are restored by re-registering)."""
        with cls._lock:
            cls._providers.pop(name, None)

    @classmethod
    def names(cls) -> list[str]:
        """The registered backend names, sorted."""
        return sorted(cls._providers)

    @classmethod
    def get_provider(cls, name: str) -> type[MemoryProvider]:
        """Return the class registered as ``name`` (or the class at a dotted path)."""
        if not isinstance(name, str) or not name:
            raise UnknownBackendError(
                f"A backend name must be a non-empty str; known backends: {', '.join(cls.names())}."
            )
        entry = cls._providers.get(name)
        if entry is None and "." in name:
            entry = name
        if entry is None:
            raise UnknownBackendError(
                f"Unknown storage backend {name!r}. Known backends: {', '.join(cls.names())}; "
                "or give the dotted path of a backend class."
            )
        if isinstance(entry, str):
            try:
                provider_class = import_string(entry)
            except ImportError as exc:
                raise UnknownBackendError(
                    f"Could not import storage backend {name!r} ({entry}): {exc}"
                ) from exc
            _check_provider_class(name, provider_class)
            if name in cls._providers:
                with cls._lock:
                    cls._providers[name] = provider_class
            return cast("type[MemoryProvider]", provider_class)
        return entry

    @classmethod
    def create(cls, provider_type: str, **kwargs: Any) -> MemoryProvider:
        """Instantiate the backend ``provider_type`` with ``kwargs`` as its options.

        An option the backend does not take raises :class:`InvalidOptionError` naming the
        options it does take; a missing optional package raises
        :class:`~prism_storage.exceptions.MissingDependencyError` naming the pip extra.
        """
        provider_class = cls.get_provider(provider_type)
        check_options(provider_class, kwargs)
        check_dependencies = getattr(provider_class, "check_dependencies", None)
        if check_dependencies is not None:
            check_dependencies(**kwargs)
        return provider_class(**kwargs)


def accepted_options(provider_class: type) -> list[str] | None:
    """The keyword options ``provider_class`` takes, or ``None`` if it takes ``**kwargs``."""
    params = list(inspect.signature(provider_class).parameters.values())
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def check_options(provider_class: type, options: dict[str, Any]) -> None:
    """Raise InvalidOptionError for an option ``provider_class`` does not take."""
    accepted = accepted_options(provider_class)
    if accepted is None:
        return
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise InvalidOptionError(
            f"{provider_class.__name__} got unknown option(s) {', '.join(map(repr, unknown))}; "
            f"it accepts: {', '.join(accepted)}."
        )
