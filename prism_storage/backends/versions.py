"""Versioned records: metadata, conditional writes, atomic list operations.

Every record a store keeps carries a *version* (an opaque string that changes on every
write, usable as an HTTP ``ETag``), when it was created and last written, and when it
expires. On top of them:

* ``get_record`` / ``get_many_records`` return a :class:`Record` (value and metadata);
* ``put`` writes like ``set``, optionally only if the record is still at a version
  (``if_version``) or only if there is none (``if_absent``, Django cache's ``add``), and
  says what it did (:class:`WriteResult`); ``remove`` deletes, optionally at a version;
  a condition that does not hold raises :class:`VersionConflictError` and writes nothing;
* ``append`` / ``pop`` add items to and take the last item from a list field of a record
  as one atomic operation of the store: concurrent callers in any number of processes
  never lose or duplicate an item;
* ``update`` reads, applies a function and writes back at the version it read, retrying
  on conflict: any store with conditional writes has it.

A store implements the hooks (``_get_record``, ``_put_record``, ``_remove_record``,
``_append_items``, ``_pop_item``) natively, each one atomic operation on its server, and
sets the capability flags; where it cannot, the flag stays false and the call raises
``UnsupportedOperationError`` rather than fall back to something that is not atomic.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Final

from ..codec import encode_value, validate_key, validate_keys
from ..exceptions import InvalidValueError, UnsupportedOperationError, VersionConflictError
from ..observability import appended, logger, observed, popped, put_saved, removed
from ..signals import record_deleted, record_saved
from .values import ValueRules

__all__ = [
    "ABSENT",
    "DEFAULT_LIST_FIELD",
    "DEFAULT_UPDATE_ATTEMPTS",
    "Condition",
    "Record",
    "RecordOperations",
    "WriteResult",
    "append_to",
    "check_condition",
    "new_version",
    "pop_from",
    "timestamp",
]

#: The list field ``append``/``pop`` use unless told otherwise.
DEFAULT_LIST_FIELD = "messages"
#: How many times ``update`` re-reads and retries when another writer got in first.
DEFAULT_UPDATE_ATTEMPTS = 16


class _Absent:
    """The condition "only if there is no record" (see :data:`ABSENT`)."""

    _instance: ClassVar[_Absent | None] = None

    def __new__(cls) -> _Absent:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ABSENT"


#: The condition a backend's ``_put_record`` receives for ``if_absent=True``.
ABSENT: Final = _Absent()
#: What a backend's ``_put_record`` must check: nothing (``None``), that there is no record
#: (:data:`ABSENT`), or that the record is at this version (``str``).
Condition = str | _Absent | None


@dataclass(frozen=True)
class Record:
    """A stored value with its metadata (datetimes are aware, in UTC)."""

    key: str
    value: dict[str, Any]
    #: Changes on every write; opaque: compare it for equality only.
    version: str
    created_at: datetime
    updated_at: datetime
    #: ``None`` when the record never expires.
    expires_at: datetime | None = None


@dataclass(frozen=True)
class WriteResult:
    """What a write did: the record's new version, and whether it created the record."""

    version: str
    created: bool


def new_version() -> str:
    """A fresh version: 16 random hex digits, so a deleted and re-created record never
    repeats a version an old ``ETag`` holds (a counter starting again would)."""
    return os.urandom(8).hex()


def timestamp(seconds: float) -> datetime:
    """A Unix timestamp as an aware UTC datetime."""
    return datetime.fromtimestamp(seconds, UTC)


def check_condition(condition: Condition, version: str | None) -> None:
    """Raise VersionConflictError unless ``condition`` holds for a record now at
    ``version`` (``None``: there is no record). For backends checking under a lock."""
    if condition is None:
        return
    if condition is ABSENT:
        if version is not None:
            raise VersionConflictError(f"A record exists (version {version}).", version)
    elif condition != version:
        raise VersionConflictError(
            f"The record is at version {version}, not {condition}."
            if version is not None
            else f"There is no record (expected version {condition}).",
            version,
        )


def _field_list(value: dict[str, Any], field: str) -> list[Any]:
    items = value.get(field)
    if items is None:
        return []
    if not isinstance(items, list):
        raise InvalidValueError(
            f"The record's {field!r} field is a {type(items).__name__}, not a list.",
            f"$.{field}",
        )
    return items


def append_to(
    value: dict[str, Any] | None, field: str, items: list[Any], max_items: int | None
) -> tuple[dict[str, Any], int]:
    """``value`` (a new dict if ``None``) with ``items`` added to its list ``field``, kept
    to the latest ``max_items``; and the list's new length. For backends that apply
    ``append`` under a lock of their own; raises InvalidValueError if the field is not a
    list."""
    value = {} if value is None else value
    merged = _field_list(value, field) + items
    if max_items is not None and len(merged) > max_items:
        merged = merged[len(merged) - max_items :]
    value[field] = merged
    return value, len(merged)


def pop_from(value: dict[str, Any], field: str) -> tuple[bool, Any]:
    """Take the last item of ``value``'s list ``field``: ``(True, item)``, or
    ``(False, None)`` when the list is empty or absent (``value`` is then unchanged)."""
    items = _field_list(value, field)
    if not items:
        return False, None
    return True, items.pop()


def _check_field(field: object) -> str:
    if type(field) is not str or not field:
        raise InvalidValueError("field must be a non-empty str.")
    return field


def _check_version(version: object) -> str:
    if type(version) is not str or not version:
        raise InvalidValueError("if_version must be a version string from a record.")
    return version


class RecordOperations(ValueRules):
    """The versioned-record half of :class:`~prism_storage.backends.base.BaseStorageBackend`.

    Public methods validate their arguments (before any I/O), check the capability flag
    and call the hooks below.
    """

    backend_name: ClassVar[str]
    #: Records carry metadata: ``get_record`` and ``get_many_records`` work.
    supports_versions: ClassVar[bool] = False
    #: ``put`` and ``remove`` take conditions (``if_version``, ``if_absent``); ``update``.
    supports_conditional_writes: ClassVar[bool] = False
    #: ``append`` and ``pop`` are atomic operations of the store.
    supports_atomic_lists: ClassVar[bool] = False

    # ------------------------------------------------------------------ public API

    @observed("get_record")
    async def get_record(self, key: str) -> Record | None:
        """The record stored under ``key`` with its metadata, or ``None``."""
        validate_key(key)
        self._require("supports_versions", "keep record versions")
        return await self._get_record(key)

    @observed("get_many_records", shape="keys")
    async def get_many_records(self, keys: Iterable[str]) -> dict[str, Record]:
        """``{key: Record}`` for the given keys that hold a record, in one round trip
        where the store allows it."""
        key_list = list(dict.fromkeys(validate_keys(keys)))
        self._require("supports_versions", "keep record versions")
        if not key_list:
            return {}
        return await self._get_many_records(key_list)

    @observed("put", gen_ai="upsert_memory", signal=record_saved, send=put_saved)
    async def put(
        self,
        key: str,
        value: dict[str, Any],
        *,
        ttl: float | None = None,
        if_version: str | None = None,
        if_absent: bool = False,
    ) -> WriteResult:
        """Store ``value`` under ``key`` and return the new version and whether the
        record was created.

        With ``if_version`` the write happens only if the record is still at that
        version; with ``if_absent`` only if there is no record. Otherwise it raises
        :class:`~prism_storage.exceptions.VersionConflictError` (carrying the current
        version) and nothing is written. A record's creation time survives overwrites.
        """
        validate_key(key)
        condition: Condition = None
        if if_absent:
            if if_version is not None:
                raise InvalidValueError("Pass if_version or if_absent, not both.")
            condition = ABSENT
        elif if_version is not None:
            condition = _check_version(if_version)
        data = self._encode(value)
        resolved_ttl = self._resolve_ttl(ttl)
        self._require("supports_versions", "keep record versions")
        if condition is not None:
            self._require("supports_conditional_writes", "write conditionally")
        return await self._put_record(key, value, data, resolved_ttl, condition)

    @observed("remove", gen_ai="delete_memory", signal=record_deleted, send=removed)
    async def remove(self, key: str, *, if_version: str | None = None) -> bool:
        """Delete ``key``; return whether there was a record. With ``if_version`` it
        deletes only the record at that version, else raises VersionConflictError."""
        validate_key(key)
        version = None if if_version is None else _check_version(if_version)
        self._require("supports_versions", "keep record versions")
        if version is not None:
            self._require("supports_conditional_writes", "delete conditionally")
        return await self._remove_record(key, version)

    @observed("append", gen_ai="update_memory", signal=record_saved, send=appended)
    async def append(
        self,
        key: str,
        items: list[Any],
        *,
        field: str = DEFAULT_LIST_FIELD,
        max_items: int | None = None,
        ttl: float | None = None,
    ) -> int:
        """Add ``items`` to the end of the list ``field`` of the record ``key``, as one
        atomic operation, and return the list's new length.

        The record (``{field: items}``) or the field is created when absent. With
        ``max_items`` only the latest ``max_items`` items are kept. ``ttl`` sets the
        record's expiry; without it a new record gets the store's default and an
        existing one keeps its own. A field that holds something other than a list
        raises InvalidValueError and nothing is written.
        """
        validate_key(key)
        _check_field(field)
        if not isinstance(items, list | tuple):
            raise InvalidValueError("items must be a list of JSON values.")
        if max_items is not None and (type(max_items) is not int or max_items < 1):
            raise InvalidValueError("max_items must be a positive int.")
        items = list(items)
        # Validated as part of a record, with the store's own rules and limits; the items'
        # JSON array is then cut out of that record's text (``{"<field>":[...]}``).
        data = self._encode({field: items})
        start = len(encode_value({field: []})) - len("[]}")
        items_data = data[start:-1]
        resolved_ttl = None if ttl is None else self._resolve_ttl(ttl)
        self._require("supports_atomic_lists", "append atomically")
        if not items and max_items is None:
            # Nothing to add: report the length without writing (no new version).
            record = await self._get_record(key) if self.supports_versions else None
            return 0 if record is None else len(_field_list(record.value, field))
        return await self._append_items(key, field, items, items_data, max_items, resolved_ttl)

    @observed("pop", gen_ai="update_memory", signal=record_saved, send=popped)
    async def pop(self, key: str, *, field: str = DEFAULT_LIST_FIELD) -> Any:
        """Remove and return the last item of the list ``field`` of ``key`` as one atomic
        operation; ``None`` when there is no record or the list is empty. No item is
        ever handed to two callers."""
        validate_key(key)
        _check_field(field)
        self._require("supports_atomic_lists", "pop atomically")
        return await self._pop_item(key, field)

    @observed("update", gen_ai="update_memory")
    async def update(
        self,
        key: str,
        fn: Callable[[dict[str, Any] | None], dict[str, Any]],
        *,
        ttl: float | None = None,
        attempts: int = DEFAULT_UPDATE_ATTEMPTS,
    ) -> dict[str, Any]:
        """Replace the value of ``key`` by ``fn(current value or None)`` without losing a
        concurrent write: read, apply ``fn``, write only if the record is still at the
        version read, and start again when it is not (up to ``attempts`` times, then
        VersionConflictError). ``fn`` may run more than once; it must not have side
        effects. Returns the value written."""
        validate_key(key)
        if not callable(fn):
            raise InvalidValueError("fn must be a callable taking the current value.")
        if type(attempts) is not int or attempts < 1:
            raise InvalidValueError("attempts must be a positive int.")
        self._require("supports_conditional_writes", "write conditionally")
        conflict: VersionConflictError | None = None
        for attempt in range(attempts):
            if conflict is not None:
                # The key stays out of the log: it may name a person.
                logger.warning(
                    "update on store %r: another writer got in first; retry %d of %d",
                    getattr(self, "alias", None),
                    attempt,
                    attempts - 1,
                )
            record = await self.get_record(key)
            new_value = fn(None if record is None else record.value)
            try:
                if record is None:
                    await self.put(key, new_value, ttl=ttl, if_absent=True)
                else:
                    await self.put(key, new_value, ttl=ttl, if_version=record.version)
            except VersionConflictError as exc:
                conflict = exc
                continue
            return new_value
        assert conflict is not None
        raise conflict

    # ------------------------------------------------------------- hooks to implement

    async def _get_record(self, key: str) -> Record | None:
        raise NotImplementedError

    async def _get_many_records(self, keys: list[str]) -> dict[str, Record]:
        found = {}
        for key in keys:  # override with one round trip
            record = await self._get_record(key)
            if record is not None:
                found[key] = record
        return found

    async def _put_record(
        self, key: str, value: dict[str, Any], data: str, ttl: float | None, condition: Condition
    ) -> WriteResult:
        """Write one record atomically if ``condition`` holds, else raise
        ``VersionConflictError(current_version)`` having written nothing. ``data`` is
        ``value`` encoded; ``ttl`` is resolved (``None``: no expiry)."""
        raise NotImplementedError

    async def _remove_record(self, key: str, if_version: str | None) -> bool:
        raise NotImplementedError

    async def _append_items(
        self,
        key: str,
        field: str,
        items: list[Any],
        items_data: str,
        max_items: int | None,
        ttl: float | None,
    ) -> int:
        """Append atomically (see :meth:`append`). ``items_data`` is ``items`` encoded as
        a JSON array; ``ttl`` is ``None`` unless the caller passed one."""
        raise NotImplementedError

    async def _pop_item(self, key: str, field: str) -> Any:
        raise NotImplementedError

    # ------------------------------------------------------------------- helpers

    def _require(self, flag: str, what: str) -> None:
        if not getattr(self, flag):
            raise UnsupportedOperationError(
                f"The {self.backend_name!r} backend cannot {what} ({flag} is false)."
            )
