"""Reading and writing the file store's record files.

Each file holds ``{"version", "created_at", "updated_at", "expires_at", "key", "value"}``
(times as Unix timestamps), the metadata first so that a write can read the creation time
of the record it replaces from the file's first bytes, whatever the value's size. The key
lets any file be verified. Files written before records had versions hold only ``{"key",
"expires_at", "value"}``; they are read as they are, with a version derived from their
content (stable until the next write, which gives the file the new layout) and times from
the file's status (see :func:`_derived`).

A write goes to a new owner-only temp file in the store's directory (created with
``O_EXCL``) that then replaces the record with ``os.replace``: a reader sees the old record
or the new one, never a partial file, and a failed write leaves the old record and no temp
file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import stat
from itertools import count
from typing import Any, NamedTuple, cast

from ...exceptions import CorruptRecordError
from .names import file_name

__all__ = [
    "TEMP_PREFIX",
    "Head",
    "Meta",
    "Stored",
    "TempNames",
    "is_expired",
    "read_head",
    "read_record",
    "read_stored",
    "remove_record",
    "write_record",
]

TEMP_PREFIX = ".tmp-"
# A file whose owner-execute bit is set has a TTL, and its mtime is its expiry time; this
# lets a listing skip expired records with one stat() instead of reading every file.
_EXPIRING_MODE = 0o700
_PLAIN_MODE = 0o600
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0)
_KEY_ENCODER = json.JSONEncoder(ensure_ascii=False)
#: The first bytes of a file in the versioned layout, as :func:`write_record` writes them.
_HEAD = re.compile(
    rb'\{"version":"([0-9a-f]{1,64})","created_at":([-+.e0-9]+),"updated_at":[-+.e0-9]+,'
    rb'"expires_at":(null|[-+.e0-9]+),'
)
#: Bytes read to find the metadata: the head above is at most ~170 bytes long.
_HEAD_BYTES = 256


class Meta(NamedTuple):
    """What a write records besides the value (Unix timestamps)."""

    version: str
    created_at: float
    updated_at: float


class Stored(NamedTuple):
    """A record read whole: its value and metadata (Unix timestamps)."""

    value: dict[str, Any]
    version: str
    created_at: float
    updated_at: float
    expires_at: float | None


class Head(NamedTuple):
    """What a write needs of the record it replaces (Unix timestamps)."""

    version: str
    created_at: float


def is_expired(st: os.stat_result, now: float) -> bool:
    """Whether the record file with status ``st`` has expired at ``now``."""
    return bool(st.st_mode & stat.S_IXUSR) and st.st_mtime <= now


def read_file(path: str) -> bytes:
    """The whole content of ``path``, in one read for a file that does not grow."""
    return _read_file(path)[0]


def _read_file(path: str) -> tuple[bytes, os.stat_result]:
    fd = os.open(path, _READ_FLAGS)
    try:
        st = os.fstat(fd)
        size = st.st_size
        data = os.read(fd, size + 1)
        if len(data) <= size:  # a short read of a regular file is its end
            return data, st
        chunks = [data]  # the file grew since fstat (not one of ours): read to the end
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks), st
    finally:
        os.close(fd)


def _write_all(fd: int, parts: list[bytes]) -> None:
    """Write ``parts`` in order, with one ``writev`` where the OS has it (no joined copy)."""
    written = os.writev(fd, parts) if hasattr(os, "writev") else 0
    if written < sum(map(len, parts)):  # a short write (or no writev): finish byte-exactly
        rest = memoryview(b"".join(parts))[written:]
        while rest:
            rest = rest[os.write(fd, rest) :]


def read_record(directory: str, key: str, now: float) -> dict[str, Any] | None:
    """The value of ``key`` in ``directory``; ``None`` if absent or expired at ``now``."""
    name = file_name(key)
    try:
        raw = read_file(os.path.join(directory, name))
    except FileNotFoundError:
        return None
    record = _parse(directory, name, key, raw)
    expires_at = record["expires_at"]
    if expires_at is not None and expires_at <= now:
        return None
    return cast("dict[str, Any]", record["value"])  # checked by _parse


def _parse(directory: str, name: str, key: str, raw: bytes) -> dict[str, Any]:
    """The JSON object of a record file, checked to hold ``key``'s record."""
    try:
        record: dict[str, Any] = json.loads(raw)
        stored_key, expires_at, value = record["key"], record["expires_at"], record["value"]
    except (ValueError, TypeError, KeyError) as exc:
        raise CorruptRecordError(
            f"The file store record {name!r} in {directory!r} is corrupted."
        ) from exc
    if stored_key != key or type(value) is not dict:
        raise CorruptRecordError(f"The file store record {name!r} does not hold key {key!r}.")
    if expires_at is not None and type(expires_at) not in (int, float):
        raise CorruptRecordError(f"The file store record {name!r} has a bad expiry.")
    return record


def read_stored(directory: str, key: str, now: float) -> Stored | None:
    """``key``'s record with its metadata; ``None`` if absent or expired at ``now``."""
    name = file_name(key)
    try:
        raw, st = _read_file(os.path.join(directory, name))
    except FileNotFoundError:
        return None
    record = _parse(directory, name, key, raw)
    expires_at = record["expires_at"]
    if expires_at is not None and expires_at <= now:
        return None
    if "version" not in record:
        return Stored(record["value"], *_derived(raw, st), expires_at)
    try:
        meta = Meta(record["version"], record["created_at"], record["updated_at"])
    except KeyError as exc:
        raise CorruptRecordError(f"The file store record {name!r} lacks metadata.") from exc
    if type(meta.version) is not str or not all(type(t) in (int, float) for t in meta[1:]):
        raise CorruptRecordError(f"The file store record {name!r} has bad metadata.")
    return Stored(record["value"], *meta, expires_at)


def read_head(directory: str, key: str, now: float) -> Head | None:
    """The version and creation time of ``key``'s record; ``None`` if absent or expired at
    ``now``. Reads only the file's first bytes, unless the file has the old layout."""
    path = os.path.join(directory, file_name(key))
    try:
        fd = os.open(path, _READ_FLAGS)
    except FileNotFoundError:
        return None
    try:
        first = os.pread(fd, _HEAD_BYTES, 0)
    finally:
        os.close(fd)
    match = _HEAD.match(first)
    if match is None:  # the old layout (or a damaged file: read_stored says which)
        stored = read_stored(directory, key, now)
        return None if stored is None else Head(stored.version, stored.created_at)
    expires = match[3]
    if expires != b"null" and float(expires) <= now:
        return None
    # The key is not checked here: the name is derived from it, and a file holding
    # another key's record is refused by every read of the value.
    return Head(match[1].decode("ascii"), float(match[2]))


def _derived(raw: bytes, st: os.stat_result) -> Meta:
    """Metadata for a file written before records had versions.

    The version is a digest of the content: the same at every read until a write replaces
    the file (a write always gives a fresh random version). The file was last written at
    its mtime, or, for a file with an expiry (whose mtime holds the expiry), at its ctime,
    which the chmod, utime and rename of that write set. The creation time is not known:
    the last write stands in for it.
    """
    written = st.st_ctime if st.st_mode & stat.S_IXUSR else st.st_mtime
    return Meta(hashlib.sha256(raw).hexdigest()[:16], written, written)


class TempNames:
    """Names for one store's temp files. They need only be unlikely to collide:
    ``O_EXCL`` refuses a name that exists."""

    def __init__(self) -> None:
        self.tag = secrets.token_hex(4)
        self.serial = count()

    def create(self, directory: str) -> tuple[str, int]:
        """Create and open a new owner-only temp file in ``directory``."""
        while True:
            name = f"{TEMP_PREFIX}{os.getpid()}-{self.tag}-{next(self.serial)}"
            temp = os.path.join(directory, name)
            try:
                return temp, os.open(temp, _TEMP_FLAGS, _PLAIN_MODE)
            except FileExistsError:  # left behind by a crashed writer: take the next name
                continue


def write_record(
    directory: str,
    key: str,
    data: str,
    expires_at: float | None,
    meta: Meta,
    *,
    temps: TempNames,
    durable: bool,
) -> None:
    """Replace ``key``'s record with the JSON value ``data`` and ``meta``, atomically;
    ``durable``: fsync the file and the directory before returning."""
    head = (
        f'{{"version":"{meta.version}","created_at":{float(meta.created_at)!r},'
        f'"updated_at":{float(meta.updated_at)!r},'
        f'"expires_at":{"null" if expires_at is None else repr(float(expires_at))},'
        f'"key":{_KEY_ENCODER.encode(key)},"value":'
    )
    temp, fd = temps.create(directory)
    try:
        try:
            _write_all(fd, [head.encode("utf-8"), data.encode("utf-8"), b"}"])
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        if expires_at is not None:
            os.chmod(temp, _EXPIRING_MODE)
            os.utime(temp, (expires_at, expires_at))
        os.replace(temp, os.path.join(directory, file_name(key)))
        temp = ""
    finally:
        if temp:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
    if durable:
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def remove_record(directory: str, key: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(directory, file_name(key)))
