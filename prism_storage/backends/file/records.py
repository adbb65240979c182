"""Reading and writing the file store's record files.

Each file holds ``{"key", "expires_at", "value"}`` so that any file can be verified. A
write goes to a new owner-only temp file in the store's directory (created with
``O_EXCL``) that then replaces the record with ``os.replace``: a reader sees the old record
or the new one, never a partial file, and a failed write leaves the old record and no temp
file.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
from itertools import count
from typing import Any

from ...exceptions import CorruptRecordError
from .names import file_name

__all__ = ["TEMP_PREFIX", "TempNames", "is_expired", "read_record", "remove_record", "write_record"]

TEMP_PREFIX = ".tmp-"
# A file whose owner-execute bit is set has a TTL, and its mtime is its expiry time; this
# lets a listing skip expired records with one stat() instead of reading every file.
_EXPIRING_MODE = 0o700
_PLAIN_MODE = 0o600
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0)
_KEY_ENCODER = json.JSONEncoder(ensure_ascii=False)


def is_expired(st: os.stat_result, now: float) -> bool:
    """Whether the record file with status ``st`` has expired at ``now``."""
    return bool(st.st_mode & stat.S_IXUSR) and st.st_mtime <= now


def read_file(path: str) -> bytes:
    """The whole content of ``path``, in one read for a file that does not grow."""
    fd = os.open(path, _READ_FLAGS)
    try:
        size = os.fstat(fd).st_size
        data = os.read(fd, size + 1)
        if len(data) <= size:  # a short read of a regular file is its end
            return data
        chunks = [data]  # the file grew since fstat (not one of ours): read to the end
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
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
    try:
        record = json.loads(raw)
        stored_key, expires_at, value = record["key"], record["expires_at"], record["value"]
    except (ValueError, TypeError, KeyError) as exc:
        raise CorruptRecordError(
            f"The file store record {name!r} in {directory!r} is corrupted."
        ) from exc
    if stored_key != key or type(value) is not dict:
        raise CorruptRecordError(f"The file store record {name!r} does not hold key {key!r}.")
    if expires_at is not None and expires_at <= now:
        return None
    return value


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
    *,
    temps: TempNames,
    durable: bool,
) -> None:
    """Replace ``key``'s record with the JSON value ``data``, atomically; ``durable``:
    fsync the file and the directory before returning."""
    head = (
        f'{{"key":{_KEY_ENCODER.encode(key)},'
        f'"expires_at":{"null" if expires_at is None else repr(expires_at)},"value":'
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
