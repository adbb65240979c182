"""The base class every built-in backend derives from.

Public methods validate their arguments (before any I/O) and then call the protected
``_get``/``_set``/... hooks a backend implements. The batch and listing extensions have
generic fallbacks here, so a third-party backend that implements only the three hooks of
the specification still offers the whole API; built-in backends override them natively.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from ..codec import MAX_DEPTH, decode_value, encode_value, validate_key, validate_keys
from ..exceptions import (
    BackendUnavailableError,
    InvalidOptionError,
    InvalidValueError,
    MissingDependencyError,
    PrismStorageError,
    UnsupportedOperationError,
)
from ..observability import (
    deleted,
    erased,
    expired,
    logger,
    observe_overrides,
    observed,
    saved,
)
from ..signals import prefix_deleted, record_deleted, record_saved, records_expired
from .redaction import RedactedCause, redact
from .versions import RecordOperations

__all__ = [
    "BaseStorageBackend",
    "Clock",
    "KeyPage",
    "check_erasure",
    "check_touch_on_read",
    "check_ttl",
]

Clock = Callable[[], float]
T = TypeVar("T")
E = TypeVar("E", bound=BaseException)

#: ``keys()`` returns at most this many keys per page unless asked otherwise.
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 10_000
#: Keys deleted per batch when a store erases by prefix through listing.
ERASE_BATCH = 500
#: Seconds a network call may take before it fails with BackendUnavailableError.
DEFAULT_TIMEOUT = 5.0
#: Longest expiry ``set(..., ttl=...)`` takes, in seconds (about 100 years): beyond it no
#: backend's timestamps (file times, datetimes, Redis milliseconds) are sure to hold.
MAX_TTL = 100 * 365 * 24 * 3600

#: Characters no backend's cursor holds (as in keys); a cursor with one was never handed out.
_NOT_IN_CURSORS = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


@dataclass(frozen=True)
class KeyPage:
    """One page of a key listing. ``cursor`` is ``None`` on the last page."""

    keys: list[str]
    cursor: str | None = None

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)


class BaseStorageBackend(RecordOperations):
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
      operations where the flags say so (see :mod:`.versions`).
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
        if type(prefix) is not str:
            raise InvalidValueError("prefix must be a str.")
        if prefix:
            # A prefix obeys the key rules, except that it may be a partial key.
            validate_key(prefix)
        if type(limit) is not int or not 1 <= limit <= MAX_PAGE_SIZE:
            raise InvalidValueError(f"limit must be an int from 1 to {MAX_PAGE_SIZE}.")
        if cursor is not None and (
            type(cursor) is not str or not cursor or _NOT_IN_CURSORS.search(cursor)
        ):
            raise InvalidValueError("cursor must be a cursor string returned by keys().")
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
        import importlib.util

        for module, extra in cls.requires:
            try:
                found = importlib.util.find_spec(module) is not None
            except (ImportError, ValueError):  # a parent package is missing or broken
                found = False
            if not found:
                raise MissingDependencyError(cls.backend_name, module, extra)

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
        """Remove the keys starting with ``prefix`` (``""``: every key); return how many."""
        removed = 0
        batch: list[str] = []
        # Deleting keys the listing already returned leaves the rest of it intact: a key
        # present throughout a listing is returned once, whatever else is deleted.
        async for key in self.iter_keys(prefix, page_size=ERASE_BATCH):
            batch.append(key)
            if len(batch) == ERASE_BATCH:
                await self._delete_many(batch)
                removed, batch = removed + len(batch), []
        if batch:
            await self._delete_many(batch)
            removed += len(batch)
        return removed

    async def _touch(self, key: str, ttl: float | None) -> bool:
        """Set the live record's expiry to now + ``ttl`` (``None``: never), atomically."""
        raise UnsupportedOperationError(
            f"The {self.backend_name!r} backend does not implement touch()."
        )

    # ------------------------------------------------------------------- helpers

    default_ttl: float | None = None

    def _resolve_ttl(self, ttl: float | None) -> float | None:
        if ttl is None:
            return self.default_ttl
        if not self.supports_ttl:
            raise UnsupportedOperationError(
                f"The {self.backend_name!r} backend does not support expiry (ttl)."
            )
        return check_ttl(ttl)

    @staticmethod
    def _decode(data: str | bytes) -> dict[str, Any]:
        return decode_value(data)

    def _encode(self, value: dict[str, Any]) -> str:
        """Validate and encode a value; enforces ``max_value_bytes``."""
        data = encode_value(
            value, decimal_exact=self._keeps_numbers_as_decimals(), max_depth=self._max_depth()
        )
        limit = self.max_value_bytes
        if limit is not None and len(data) > limit // 4 and len(data.encode()) > limit:
            raise InvalidValueError(
                f"The value is {len(data.encode())} bytes as JSON; the {self.backend_name!r} "
                f"store accepts at most {limit}.",
                "$",
            )
        return data

    def _keeps_numbers_as_decimals(self) -> bool:
        """Whether the store hands JSON numbers back from decimals (PostgreSQL ``jsonb``):
        then floats that print as whole numbers are refused (see ``encode_value``)."""
        return False

    def _max_depth(self) -> int:
        """How deep the store lets dicts and lists nest (the codec's own limit unless the
        database behind it allows fewer levels)."""
        return MAX_DEPTH

    def _secrets(self) -> list[str]:
        """Secret strings to scrub from error messages (API keys, URL passwords)."""
        return []

    def _redact(self, text: str) -> str:
        """``text`` without this store's secrets or any password in a URL."""
        return redact(text, self._secrets())

    def _caused_by(self, error: E, exc: BaseException) -> E:
        """Chain ``exc`` to ``error`` as its cause, or, when ``exc`` quotes a secret, a
        stand-in that carries its redacted text (the client's exception is dropped)."""
        raw = f"{exc!r} {exc}"
        if self._redact(raw) != raw:
            error.__cause__ = RedactedCause(self._redact(f"{type(exc).__name__}: {exc}"))
            error.__suppress_context__ = True
        else:
            error.__cause__ = exc
        return error

    def _unavailable(self, exc: BaseException, action: str) -> BackendUnavailableError:
        """Build the BackendUnavailableError for ``exc``, with secrets scrubbed."""
        detail = self._redact(f"{type(exc).__name__}: {exc}")
        error = BackendUnavailableError(
            f"The {self.backend_name!r} store could not {action}: {detail}"
        )
        # An outage is worth a warning wherever the error ends up; the text is redacted.
        logger.warning("Store %r is unavailable: %s", self.alias, error)
        return self._caused_by(error, exc)

    def _translate_error(self, exc: Exception, action: str) -> Exception | None:
        """The typed error standing for ``exc`` (raised by the client while trying to
        ``action``), or ``None`` to let ``exc`` through unchanged.

        Backends override this to map their client library's exceptions, building the
        typed error with :meth:`_redact` and :meth:`_caused_by` so no secret reaches it,
        and end with ``super()._translate_error(exc, action)``: timeouts and ``OSError``
        mean the store cannot be reached.
        """
        if isinstance(exc, TimeoutError | OSError):
            return self._unavailable(exc, action)
        return None

    def _error_for(
        self, exc: Exception, action: str, errors: tuple[type[BaseException], ...] = ()
    ) -> Exception | None:
        """The error to raise instead of ``exc``, or ``None`` to let ``exc`` through:
        typed errors pass; ``errors`` (connection-level exceptions of the client) mean
        the store is unavailable; anything else goes through :meth:`_translate_error`.

        Raise the result outside the ``except`` block that caught ``exc``, as
        ``raise error from error.__cause__``, so the client's exception (which may quote
        a secret) is not attached as its ``__context__``.
        """
        if isinstance(exc, PrismStorageError):
            return None  # already typed (BackendPermissionError is an OSError too)
        if isinstance(exc, errors):
            return self._unavailable(exc, action)
        return self._translate_error(exc, action)

    async def _guard(
        self,
        action: str,
        awaitable: Awaitable[T],
        errors: tuple[type[BaseException], ...] = (),
        *,
        seconds: float | None = None,
    ) -> T:
        """Await ``awaitable`` within ``seconds`` (default ``self.timeout``), mapping
        failures to typed errors (see :meth:`_error_for`); a call that outlasts the timeout
        is unavailable."""
        try:
            async with asyncio.timeout(self.timeout if seconds is None else seconds):
                return await awaitable
        except Exception as exc:
            error = self._error_for(exc, action, errors)
            if error is None:
                raise
        # Raised here, after the except block, so the client's exception (which may quote a
        # secret) is not attached as __context__.
        raise error from error.__cause__


def check_ttl(ttl: object) -> float:
    """Validate a TTL in seconds: a positive int or float of at most :data:`MAX_TTL`."""
    if (
        not isinstance(ttl, int | float)
        or isinstance(ttl, bool)
        or not 0 < ttl <= MAX_TTL  # also refuses NaN
    ):
        raise InvalidValueError(
            f"ttl must be a positive number of seconds up to {MAX_TTL}, not {ttl!r}."
        )
    return float(ttl)


def check_touch_on_read(touch_on_read: object, default_ttl: float | None) -> bool:
    """Validate the ``touch_on_read`` option: a bool, and true only with a default ``ttl``
    (a read has no other expiry to slide to)."""
    if type(touch_on_read) is not bool:
        raise InvalidOptionError("touch_on_read must be True or False.")
    if touch_on_read and default_ttl is None:
        raise InvalidOptionError(
            "touch_on_read needs a default ttl: it resets a record's expiry to now + ttl "
            "on every read."
        )
    return touch_on_read


def check_erasure(prefix: object, all: object, whole: str) -> None:
    """Validate ``delete_prefix``'s arguments: a prefix obeying the key rules, and an
    empty one (which erases the whole ``whole``) only with ``all=True``."""
    if type(prefix) is not str:
        raise InvalidValueError("prefix must be a str.")
    if type(all) is not bool:
        raise InvalidValueError("all must be True or False.")
    if prefix:
        validate_key(prefix)
    elif not all:
        raise InvalidValueError(
            f"delete_prefix() refuses an empty prefix (it would erase the whole {whole}); "
            f"pass all=True to erase everything in the {whole}."
        )
