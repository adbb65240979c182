"""The synchronous core of the file store: one key's file, read and written.

:class:`KeyFiles` is mixed into :class:`~.backend.FileStorageBackend`, whose async methods
run these in worker threads (:mod:`.threads`). Every write and delete of a key holds the
key's lock (:mod:`.locks`) from the moment it reads what it replaces until the file is in
place, and takes the index's lock (:mod:`.index`) inside it, never the other way round.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...codec import encode_trusted
from ...exceptions import ConfigurationError, CorruptRecordError
from ..base import BaseStorageBackend, Clock
from ..versions import Condition, WriteResult, check_condition, new_version
from .index import FileIndex
from .locks import KeyLocks
from .records import (
    Head,
    Meta,
    Stored,
    TempNames,
    read_head,
    read_record,
    read_stored,
    remove_record,
    write_record,
)

__all__ = ["KeyFiles"]

# A mixin of the backend: typed as the backend it is part of, a plain class at run time.
if TYPE_CHECKING:
    _Backend = BaseStorageBackend
else:
    _Backend = object


class KeyFiles(_Backend):
    """Reads, writes, deletes and expiry slides of one key's file, under its lock.

    The attributes are set by the backend's ``__init__``.
    """

    data_dir: Path
    create_if_missing: bool
    durable: bool
    clock: Clock
    touch_on_read: bool
    _ready: bool
    _directory_path: str
    _temps: TempNames
    _locks: KeyLocks
    _index: FileIndex

    def _directory(self) -> str:
        if not self._ready:
            if not self.data_dir.is_dir():
                if not self.create_if_missing:
                    raise ConfigurationError(
                        f"The file store directory {str(self.data_dir)!r} does not exist "
                        "(create_if_missing=False)."
                    )
                self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._ready = True
        return self._directory_path

    def _read(self, key: str, now: float) -> dict[str, Any] | None:
        return read_record(self._directory(), key, now)

    def _write(
        self, key: str, data: str, ttl: float | None, condition: Condition = None
    ) -> WriteResult:
        self._directory()
        with self._locks.holding((key,)):
            now = self.clock()
            head = self._head(key, now, strict=condition is not None)
            check_condition(condition, None if head is None else head.version)
            with self._index.adding((key,)):  # the key's row exists before its file
                meta = self._write_file(key, data, self._expiry(ttl, now), head, now)
        return WriteResult(meta.version, head is None)

    def _head(self, key: str, now: float, *, strict: bool) -> Head | None:
        """What a write keeps of the record it replaces. A damaged record counts as
        absent for a plain write (which repairs it); a conditional one raises."""
        try:
            return read_head(self._directory_path, key, now)
        except CorruptRecordError:
            if strict:
                raise
            return None

    def _write_file(
        self, key: str, data: str, expires_at: float | None, head: Head | None, now: float
    ) -> Meta:
        """Write the file of ``key`` (under its lock and the index's), keeping the creation
        time of the live record ``head`` it replaces."""
        meta = Meta(new_version(), now if head is None else head.created_at, now)
        write_record(
            self._directory_path,
            key,
            data,
            expires_at,
            meta,
            temps=self._temps,
            durable=self.durable,
        )
        return meta

    def _remove(self, key: str, if_version: str | None = None) -> bool:
        directory = self._directory()
        with self._locks.holding((key,)):
            head = self._head(key, self.clock(), strict=if_version is not None)
            if if_version is not None:
                check_condition(if_version, None if head is None else head.version)
            with self._index.removing((key,)):  # the row goes once the file is gone
                remove_record(directory, key)
        return head is not None

    def _expiry(self, ttl: float | None, now: float) -> float | None:
        return None if ttl is None else now + ttl

    def _slide(self, key: str, ttl: float | None) -> Stored | None:
        """Give ``key``'s live record the expiry now + ``ttl`` (``None``: never) and return
        it; ``None`` if there is none. The file is rewritten with the same value, version
        and times, under the key's lock, so no concurrent write or delete is undone."""
        self._directory()
        with self._locks.holding((key,)):
            now = self.clock()
            current = self._stored(key, now)
            if current is None:
                return None
            expires_at = self._expiry(ttl, now)
            meta = Meta(current.version, current.created_at, current.updated_at)
            data = encode_trusted(current.value)  # read from our own file: already valid
            with self._index.adding((key,)):
                write_record(
                    self._directory_path,
                    key,
                    data,
                    expires_at,
                    meta,
                    temps=self._temps,
                    durable=self.durable,
                )
        return current._replace(expires_at=expires_at)

    def _read_stored(self, key: str, now: float) -> Stored | None:
        """What a read returns of ``key``: slid forward when the store touches on read."""
        if self.touch_on_read:
            return self._slide(key, self.default_ttl)
        return self._stored(key, now)

    def _stored(self, key: str, now: float) -> Stored | None:
        return read_stored(self._directory(), key, now)
