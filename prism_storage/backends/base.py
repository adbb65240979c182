"""The base class every built-in backend derives from.

Public methods validate their arguments (before any I/O) and then call the protected
``_get``/``_set``/... hooks a backend implements. The batch and listing extensions have
generic fallbacks here, so a third-party backend that implements only the three hooks of
the specification still offers the whole API; built-in backends override them natively.

The shared machinery lives beside it: :mod:`.versions` (versioned records),
:mod:`.values` (encoding and TTL resolution), :mod:`.error_translation` (typed errors,
secrets scrubbed), :mod:`.listing` (pages, listing arguments, erasure by listing) and
:mod:`.ttl` (expiry rules).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar

from ..codec import validate_key, validate_keys
from ..exceptions import InvalidValueError, UnsupportedOperationError
from ..observability import deleted, erased, expired, observe_overrides, observed, saved
from ..signals import prefix_deleted, record_deleted, record_saved, records_expired
from .clients import check_installed
from .error_translation import ErrorTranslation
from .listing import (
    DEFAULT_PAGE_SIZE,
    ERASE_BATCH,
    MAX_PAGE_SIZE,
    KeyPage,
    check_erasure,
    check_listing,
    erase_listed,
)
from .ttl import MAX_TTL, check_touch_on_read, check_ttl
from .versions import RecordOperations

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "DEFAULT_TIMEOUT",
    "ERASE_BATCH",
    "MAX_PAGE_SIZE",
    "MAX_TTL",
    "BaseStorageBackend",
    "Clock",
    "KeyPage",
    "check_erasure",
    "check_touch_on_read",
    "check_ttl",
]

Clock = Callable[[], float]

#: Seconds a network call may take before it fails with BackendUnavailableError.
DEFAULT_TIMEOUT = 5.0


class BaseStorageBackend(RecordOperations, ErrorTranslation):
    """An async key -> JSON-dict store.

    Contract (the conformance suite in :mod:`prism_storage.testing` proves it):

    * keys are non-empty ``str`` of at most 512 characters without control characters;
      anything else raises :class:`~prism_storage.exceptions.InvalidKeyError` before I/O;
    * values are dicts of JSON data; ``get`` returns an equal, newly built dict; anything
      else raises :class:`~prism_storage.exceptions.InvalidValueError` before I/O;
    * ``get`` of a missing key returns ``None``, ``delete`` of a missing key does nothing,
      ``set`` overwrites;
    * a store that cannot be reached raises
      :class:`~prism_storage.exceptions.BackendUnavailableError`, never returns ``None``;
    * an operation the backend cannot do raises
      :class:`~prism_storage.exceptions.UnsupportedOperationError`;
    * records carry versions and timestamps, and take conditional writes and atomic list
      operations where the flags say so (see :mod:`.versions`);
    * client failures become typed errors with no secret in them (see
      :mod:`.error_translation`: a backend overrides ``_translate_error`` and ``_secrets``).
    """

    #: The registry name of the backend (``"file"``, ``"redis"``...).
    backend_name: ClassVar[str] = "custom"
    #: ``set(..., ttl=...)`` and a default ``ttl`` are honoured.
    supports_ttl: ClassVar[bool] = False
    #: Expiry is driven by the ``clock`` option (so tests can inject time); ``False`` when
    #: the server keeps time itself (Redis).
    ttl_uses_clock: ClassVar[bool] = False
    #: ``keys()`` lists the store.
    supports_listing: ClassVar[bool] = False
    #: ``search()`` does similarity search.
    supports_search: ClassVar[bool] = False
    #: Expired records must be removed by ``sweep()`` (the store does not drop them itself).
    supports_sweep: ClassVar[bool] = False
    #: The batch operations are single round trips rather than the generic fallbacks.
    native_batch: ClassVar[bool] = False
    #: Several processes may use the store at once (false for embedded engines that lock
    #: their files, such as Qdrant's local mode).
    shared_across_processes: bool = True
    #: Largest encoded value (bytes) the store accepts; bigger ones raise InvalidValueError.
    max_value_bytes: ClassVar[int | None] = None
    #: Options that hold secrets: never shown in repr, logs or errors.
    secret_options: ClassVar[tuple[str, ...]] = ()
    #: ``(module, pip extra)`` pairs this backend needs beyond Django.
    requires: ClassVar[tuple[tuple[str, str], ...]] = ()

    timeout: float = DEFAULT_TIMEOUT
    #: The PRISM_STORAGE alias (set by ``__init__``; ``None`` for a store built by hand).
    alias: str | None = None
    #: Length of the vectors ``search()`` takes; ``None`` when the store does not search.
    dimensions: int | None = None
    #: Turns a text into a vector (sync or async callable); ``None`` when there is none.
    embedder: Callable[[str], Sequence[float] | Awaitable[Sequence[float]]] | None = None

    @property
    def supports_text_search(self) -> bool:
        """``search()`` also takes a text, which the store embeds itself."""
        return self.supports_search and self.embedder is not None

    #: Whether this class's own overrides of public methods send signals, spans and logs.
    #: False for a store whose public methods call another store's public methods (a
    #: scope), which report each operation already.
    reports_operations: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # An override of a public method (a backend's native ``sweep``) is observed like
        # the method it replaces. It must call the protected hooks, not ``super()``'s
        # public method, or its operation would be reported twice.
        if cls.reports_operations:
            observe_overrides(cls)

    def __init__(self, *, alias: str | None = None) -> None:
        #: The PRISM_STORAGE alias this instance was created for (``None`` when built by
        #: hand). The handler passes it at construction, so a backend may derive defaults
        #: from it (the orm store's namespace).
        self.alias = alias

    # ------------------------------------------------------------------ public API

    @observed("get")
    async def get(self, key: str) -> dict[str, Any] | None:
        """Return the value stored under ``key``, or ``None`` if there is none."""
        return await self._get(validate_key(key))

    @observed("set", gen_ai="upsert_memory", signal=record_saved, send=saved)
    async def set(self, key: str, value: dict[str, Any], *, ttl: float | None = None) -> None:
        """Store ``value`` under ``key``, replacing any previous value.

        ``ttl`` (seconds) overrides the store's default expiry for this record.
        """
        validate_key(key)
        data = self._encode(value)
        await self._set(key, value, data, self._resolve_ttl(ttl))

    @observed("delete", gen_ai="delete_memory", signal=record_deleted, send=deleted)
    async def delete(self, key: str) -> None:
        """Remove ``key``; does nothing if it is absent."""
        await self._delete(validate_key(key))

    @observed("exists")
    async def exists(self, key: str) -> bool:
        """Return whether ``key`` holds a (non-expired) value."""
        return await self._exists(validate_key(key))

    @observed("get_many", shape="keys")
    async def get_many(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Return ``{key: value}`` for the given keys that hold a value (missing omitted)."""
        key_list = list(dict.fromkeys(validate_keys(keys)))
        if not key_list:
            return {}
        return await self._get_many(key_list)

    @observed("set_many", gen_ai="upsert_memory", shape="mapping", signal=record_saved, send=saved)
    async def set_many(
        self, mapping: Mapping[str, dict[str, Any]], *, ttl: float | None = None
    ) -> None:
        """Store every ``key: value`` of ``mapping``. All are validated before any is written."""
        if not isinstance(mapping, Mapping):
            raise InvalidValueError("set_many() takes a mapping of key -> value.")
        items = [(validate_key(k), v, self._encode(v)) for k, v in mapping.items()]
        if items:
            await self._set_many(items, self._resolve_ttl(ttl))

    @observed(
        "delete_many", gen_ai="delete_memory", shape="keys", signal=record_deleted, send=deleted
    )
    async def delete_many(self, keys: Iterable[str]) -> None:
        """Remove every given key; absent keys are ignored."""
        key_list = list(dict.fromkeys(validate_keys(keys)))
        if key_list:
            await self._delete_many(key_list)

    @observed("keys", shape="none")
    async def keys(
        self, prefix: str = "", limit: int = DEFAULT_PAGE_SIZE, cursor: str | None = None
    ) -> KeyPage:
        """Return one page of the keys starting with ``prefix``.

        Pass the returned ``cursor`` back to get the next page; it is ``None`` on the last
        page. Across the pages of one listing every key present throughout is returned
        exactly once. A page may hold fewer than ``limit`` keys (even none) before the end.
        """
        if not self.supports_listing:
            raise UnsupportedOperationError(f"The {self.backend_name!r} backend cannot list keys.")
        check_listing(prefix, limit, cursor)
        return await self._keys(prefix, limit, cursor)

    async def iter_keys(self, prefix: str = "", page_size: int = 500) -> AsyncIterator[str]:
        """Yield every key starting with ``prefix``, page by page."""
        cursor: str | None = None
        while True:
            page = await self.keys(prefix, limit=page_size, cursor=cursor)
            for key in page.keys:
                yield key
            if page.cursor is None:
                return
            cursor = page.cursor

    @observed(
        "delete_prefix", gen_ai="delete_memory", shape="none", signal=prefix_deleted, send=erased
    )
    async def delete_prefix(self, prefix: str, *, all: bool = False) -> int:
        """Remove every record whose key starts with ``prefix``; return how many were removed.

        ``prefix`` obeys the key rules (it may be a partial key) and is checked before any
        I/O. An empty prefix would erase the whole store, so it is refused with
        InvalidValueError unless ``all=True`` is passed too (``delete_prefix("", all=True)``).
        The count may include records that had expired but were not yet swept. Records
        written while the erasure runs may survive it. Backends erase natively; the
        fallback lists the keys and deletes them in batches (it needs listing).
        """
        check_erasure(prefix, all, "store")
        if not self.supports_listing:
            raise UnsupportedOperationError(
                f"The {self.backend_name!r} backend cannot list keys, so cannot erase by prefix."
            )
        return await self._delete_prefix(prefix)

    def scoped(self, *segments: str) -> BaseStorageBackend:
        """A store confined to the keys under ``segments`` (see :mod:`.scoped`): its keys
        are relative to the scope, and no operation on it reaches a key outside it."""
        from .scoped import ScopedStore

        return ScopedStore(self, segments)

    @observed("search", gen_ai="search_memory", shape="none")
    async def search(
        self,
        embedding: list[float],
        limit: int = 5,
        *,
        filter: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Return up to ``limit`` records most similar to ``embedding``, best first."""
        raise UnsupportedOperationError(
            f"The {self.backend_name!r} backend does not support similarity search."
        )

    @observed("sweep", gen_ai="delete_memory", shape="none", signal=records_expired, send=expired)
    async def sweep(self) -> int:
        """Remove expired records the store keeps until swept; return how many."""
        raise UnsupportedOperationError(f"The {self.backend_name!r} backend has nothing to sweep.")

    # Sliding expiry (see docs/expiry.md).

    #: Every successful ``get``, ``get_many``, ``get_record`` and ``get_many_records``
    #: resets the expiry of the records it returns to now + the default ``ttl`` (the
    #: ``touch_on_read`` option; only with a default ``ttl``).
    touch_on_read: bool = False

    @observed("touch", gen_ai="update_memory")
    async def touch(self, key: str, ttl: float | None = None) -> bool:
        """Reset the expiry of ``key`` to ``ttl`` seconds from now; return whether it held a
        live record (a missing or expired key is left absent, never revived).

        ``ttl=None`` gives the expiry a fresh write would get: the store's default ``ttl``,
        or none at all (the record becomes permanent) on a store without a default, as
        Django's ``cache.touch(key, None)``. The value, version, ``created_at`` and
        ``updated_at`` are unchanged: only ``expires_at`` moves. Atomic per key: a
        concurrent write is never lost and a concurrent delete is never undone.
        Stores without expiry (``supports_ttl`` false) raise UnsupportedOperationError.
        """
        validate_key(key)
        if not self.supports_ttl:
            raise UnsupportedOperationError(
                f"The {self.backend_name!r} backend does not keep expiry: nothing to touch."
            )
        return await self._touch(key, self._resolve_ttl(ttl))

    @observed("ping", shape="none")
    async def ping(self) -> None:
        """Check that the store answers; raise BackendUnavailableError if it does not."""
        await self._get("prism-storage:ping")

    async def close(self) -> None:
        """Release connections and clients. The backend stays usable: it reconnects lazily."""

    @property
    def capabilities(self) -> dict[str, bool]:
        """The capability flags as a dict (for views, commands and checks)."""
        return {
            "ttl": self.supports_ttl,
            "listing": self.supports_listing,
            "search": self.supports_search,
            "sweep": self.supports_sweep,
            "native_batch": self.native_batch,
            "shared_across_processes": self.shared_across_processes,
            "versions": self.supports_versions,
            "conditional_writes": self.supports_conditional_writes,
            "atomic_lists": self.supports_atomic_lists,
            "text_search": self.supports_text_search,
        }

    def describe(self) -> str:
        """A one-line description without secrets (for repr, checks and the admin)."""
        return ""

    def check(self) -> list[Any]:
        """System-check messages about this instance's options (no I/O)."""
        return []

    @classmethod
    def check_dependencies(cls, **options: Any) -> None:
        """Raise MissingDependencyError if a package these options need is missing."""
        check_installed(cls.backend_name, cls.requires)

    def __repr__(self) -> str:
        detail = self.describe()
        return f"<{type(self).__name__}{' ' + detail if detail else ''}>"

    # ------------------------------------------------------------- hooks to implement

    async def _get(self, key: str) -> dict[str, Any] | None:
        raise NotImplementedError

    async def _set(self, key: str, value: dict[str, Any], data: str, ttl: float | None) -> None:
        """Store one record. ``data`` is ``value`` already validated and encoded as JSON."""
        raise NotImplementedError

    async def _delete(self, key: str) -> None:
        raise NotImplementedError

    # ------------------------------------------------- generic fallbacks (override them)

    async def _exists(self, key: str) -> bool:
        return await self._get(key) is not None

    async def _get_many(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        values = await asyncio.gather(*(self._get(k) for k in keys))
        return {k: v for k, v in zip(keys, values, strict=True) if v is not None}

    async def _set_many(
        self, items: list[tuple[str, dict[str, Any], str]], ttl: float | None
    ) -> None:
        await asyncio.gather(*(self._set(k, v, data, ttl) for k, v, data in items))

    async def _delete_many(self, keys: list[str]) -> None:
        await asyncio.gather(*(self._delete(k) for k in keys))

    async def _keys(self, prefix: str, limit: int, cursor: str | None) -> KeyPage:
        raise UnsupportedOperationError(f"The {self.backend_name!r} backend cannot list keys.")

    async def _delete_prefix(self, prefix: str) -> int:
        """Remove the keys starting with ``prefix`` (``""``: every key); return how many.
        The fallback lists them and deletes them in batches."""
        return await erase_listed(self, prefix)

    async def _touch(self, key: str, ttl: float | None) -> bool:
        """Set the live record's expiry to now + ``ttl`` (``None``: never), atomically."""
        raise UnsupportedOperationError(
            f"The {self.backend_name!r} backend does not implement touch()."
        )
