"""``file``: one JSON file per key in a directory.

File names are derived from the key so that no key can name a path outside ``data_dir``
and keys differing only in case never share a file on a case-insensitive filesystem:
``[a-z0-9-]`` stay as they are, every other UTF-8 byte becomes ``_xx``. Keys whose
encoding would be too long for a file name are stored under the SHA-256 of the key.
Each file holds ``{"key", "expires_at", "value"}`` so that any file can be verified.

A write goes to a new owner-only temp file in ``data_dir`` (created with ``O_EXCL``) that
then replaces the record with ``os.replace``: a reader sees the old record or the new one,
never a partial file, and a failed write leaves the old record and no temp file.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import secrets
import stat
import time
from itertools import count
from pathlib import Path
from typing import Any

from django.core.checks import CheckMessage, Error, Warning

from ..exceptions import ConfigurationError, CorruptRecordError, InvalidOptionError
from ._batching import BatchedThreadRunner
from .base import BaseStorageBackend, Clock, KeyPage, LoopBoundClients, check_ttl
from .file_index import FileIndex

__all__ = ["FileStorageBackend"]

_SAFE = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789-")
_ESCAPED = {b: (chr(b) if b in _SAFE else f"_{b:02x}") for b in range(256)}
_UNESCAPE = re.compile(r"_([0-9a-f]{2})")
_NAME_LIMIT = 240  # file names may be 255 bytes; leave room for the prefix and suffix
_SUFFIX = ".json"
_TEMP_PREFIX = ".tmp-"
# A file whose owner-execute bit is set has a TTL, and its mtime is its expiry time; this
# lets a listing skip expired records with one stat() instead of reading every file.
_EXPIRING_MODE = 0o700
_PLAIN_MODE = 0o600
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0)
_KEY_ENCODER = json.JSONEncoder(ensure_ascii=False)


def _file_name(key: str) -> str:
    encoded = "".join([_ESCAPED[b] for b in key.encode("utf-8")])
    if len(encoded) <= _NAME_LIMIT:
        return f"k{encoded}{_SUFFIX}"
    return f"h{hashlib.sha256(key.encode('utf-8')).hexdigest()}{_SUFFIX}"


def _key_from_name(name: str) -> str | None:
    """The key a direct file name encodes; ``None`` for hashed or foreign names."""
    if not (name.startswith("k") and name.endswith(_SUFFIX)):
        return None
    body = name[1 : -len(_SUFFIX)]
    try:
        raw = _UNESCAPE.sub(lambda m: chr(int(m.group(1), 16)), body).encode("latin-1")
        key = raw.decode("utf-8")
    except (UnicodeError, ValueError):
        return None
    return key if _file_name(key) == name else None


def _read_file(path: str) -> bytes:
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


class FileStorageBackend(BaseStorageBackend):
    """Stores each record as a JSON file in ``data_dir``.

    :param data_dir: the directory (created owner-only if missing and
        ``create_if_missing``).
    :param ttl: default expiry in seconds for every write; ``None`` never expires.
    :param durable: fsync each file and the directory, so a write that returned survives
        a power loss (slower).
    :param clock: returns the current time as a Unix timestamp (injectable for tests).
    """

    backend_name = "file"
    supports_ttl = True
    ttl_uses_clock = True
    supports_listing = True
    supports_sweep = True
    native_batch = True

    def __init__(
        self,
        data_dir: str | os.PathLike[str] = "./data",
        create_if_missing: bool = True,
        *,
        ttl: float | None = None,
        durable: bool = False,
        clock: Clock = time.time,
        alias: str | None = None,
    ) -> None:
        super().__init__(alias=alias)
        if not isinstance(data_dir, str | os.PathLike) or not os.fspath(data_dir):
            raise InvalidOptionError("data_dir must be a non-empty path.")
        if not isinstance(create_if_missing, bool) or not isinstance(durable, bool):
            raise InvalidOptionError("create_if_missing and durable must be True or False.")
        self.data_dir = Path(data_dir)
        self.create_if_missing = create_if_missing
        self.default_ttl = None if ttl is None else check_ttl(ttl)
        self.durable = durable
        self.clock = clock
        self._ready = False
        self._directory_path = os.fspath(self.data_dir)
        self._hashed_names: dict[str, str] = {}
        # Temp names need only be unlikely to collide: O_EXCL refuses a name that exists.
        self._temp_tag = secrets.token_hex(4)
        self._temp_serial = count()
        self._runners: LoopBoundClients[BatchedThreadRunner] = LoopBoundClients(
            lambda: BatchedThreadRunner(asyncio.get_running_loop()), _nothing_to_close
        )
        # index hook: the sorted key index that listing reads (see file_index.py)
        self._index = FileIndex(
            self._directory_path, durable=durable, file_name=_file_name,
            entry_key=self._entry_key,
        )

    def describe(self) -> str:
        return f"data_dir={str(self.data_dir)!r}"

    def check(self) -> list[CheckMessage]:
        messages: list[CheckMessage] = []
        if not self.data_dir.is_absolute():
            messages.append(
                Warning(
                    f"data_dir {str(self.data_dir)!r} is relative: it depends on the "
                    "directory the process starts in.",
                    hint="Use an absolute path, e.g. BASE_DIR / 'agent-data'.",
                    id="prism_storage.W001",
                )
            )
        target = self.data_dir
        while not target.exists() and target.parent != target:
            target = target.parent
        if self.data_dir.exists() and not self.data_dir.is_dir():
            messages.append(
                Error(f"data_dir {str(self.data_dir)!r} is not a directory.",
                      id="prism_storage.E008")
            )
        elif not self.data_dir.exists() and not self.create_if_missing:
            messages.append(
                Error(
                    f"data_dir {str(self.data_dir)!r} does not exist and create_if_missing "
                    "is False.",
                    hint="Create the directory or set create_if_missing=True.",
                    id="prism_storage.E008",
                )
            )
        elif not os.access(target, os.W_OK | os.X_OK):
            messages.append(
                Error(
                    f"data_dir {str(self.data_dir)!r} is not writable by this process.",
                    id="prism_storage.E008",
                )
            )
        return messages

    # ------------------------------------------------------------------ sync core

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
        name = _file_name(key)
        try:
            raw = _read_file(os.path.join(self._directory(), name))
        except FileNotFoundError:
            return None
        try:
            record = json.loads(raw)
            stored_key, expires_at, value = record["key"], record["expires_at"], record["value"]
        except (ValueError, TypeError, KeyError) as exc:
            raise CorruptRecordError(
                f"The file store record {name!r} in {str(self.data_dir)!r} is corrupted."
            ) from exc
        if stored_key != key or type(value) is not dict:
            raise CorruptRecordError(f"The file store record {name!r} does not hold key {key!r}.")
        if expires_at is not None and expires_at <= now:
            return None
        return value

    def _write(self, key: str, data: str, expires_at: float | None) -> None:
        self._directory()
        with self._index.adding((key,)):  # index hook: the row exists before the file
            self._write_file(key, data, expires_at)

    def _write_file(self, key: str, data: str, expires_at: float | None) -> None:
        directory = self._directory()
        head = (
            f'{{"key":{_KEY_ENCODER.encode(key)},'
            f'"expires_at":{"null" if expires_at is None else repr(expires_at)},"value":'
        )
        temp, fd = self._create_temp(directory)
        try:
            try:
                _write_all(fd, [head.encode("utf-8"), data.encode("utf-8"), b"}"])
                if self.durable:
                    os.fsync(fd)
            finally:
                os.close(fd)
            if expires_at is not None:
                os.chmod(temp, _EXPIRING_MODE)
                os.utime(temp, (expires_at, expires_at))
            os.replace(temp, os.path.join(directory, _file_name(key)))
            temp = ""
        finally:
            if temp:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temp)
        if self.durable:
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def _create_temp(self, directory: str) -> tuple[str, int]:
        """Create and open a new owner-only temp file in ``directory``."""
        while True:
            name = f"{_TEMP_PREFIX}{os.getpid()}-{self._temp_tag}-{next(self._temp_serial)}"
            temp = os.path.join(directory, name)
            try:
                return temp, os.open(temp, _TEMP_FLAGS, _PLAIN_MODE)
            except FileExistsError:  # left behind by a crashed writer: take the next name
                continue

    def _remove(self, key: str) -> None:
        self._directory()
        with self._index.removing((key,)):  # index hook: the row goes after the file
            self._unlink(key)

    def _unlink(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self._directory(), _file_name(key)))

    def _expires_at(self, ttl: float | None) -> float | None:
        return None if ttl is None else self.clock() + ttl

    def _list(self, prefix: str, limit: int, cursor: str | None) -> KeyPage:
        self._directory()
        return KeyPage(*self._index.page(prefix, limit, cursor, self.clock()))  # index hook

    def _entry_key(self, entry: os.DirEntry[str]) -> str | None:
        name = entry.name
        if name[0] == "k":
            return _key_from_name(name)
        if name[0] != "h" or not name.endswith(_SUFFIX):
            return None
        key = self._hashed_names.get(name)
        if key is None:
            try:
                with open(entry.path, "rb") as fh:
                    key = json.loads(fh.read())["key"]
            except (OSError, ValueError, TypeError, KeyError):
                return None
            if not isinstance(key, str) or _file_name(key) != name:
                return None
            self._hashed_names[name] = key
        return key

    def _sweep(self) -> int:
        now = self.clock()
        removed = 0
        present: dict[str, str] = {}  # index hook: the records the scan found
        with os.scandir(self._directory()) as entries:
            for entry in entries:
                if entry.name.startswith(_TEMP_PREFIX):
                    removed += self._remove_stale_temp(entry, now)
                    continue
                key = self._entry_key(entry)
                if key is None:
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                    if not (st.st_mode & stat.S_IXUSR and st.st_mtime <= now):
                        present[key] = entry.name
                        continue
                    # Under the index's exclusive lock no write is under way, so the
                    # check that the file still is the expired one (os.replace gives a
                    # new inode) and the unlink cannot be split by a writer.
                    with self._index.removing((key,)):  # index hook
                        if os.stat(entry.path).st_ino == st.st_ino:
                            os.unlink(entry.path)
                            removed += 1
                        else:
                            present[key] = entry.name
                except FileNotFoundError:
                    continue
        self._index.reconcile(present)  # index hook: drop stale rows, add missing ones
        return removed

    @staticmethod
    def _remove_stale_temp(entry: os.DirEntry[str], now: float) -> int:
        """Remove a temp file left by a crashed writer (older than an hour)."""
        try:
            if entry.stat(follow_symlinks=False).st_mtime < time.time() - 3600:
                os.unlink(entry.path)
        except FileNotFoundError:
            pass
        return 0

    # ------------------------------------------------------------------ async API

    async def _run(self, action: str, function: Any, *args: Any) -> Any:
        try:
            return await self._runners.get().run(function, *args)
        except OSError as exc:
            error = self._unavailable(exc, action)
            raise error from error.__cause__

    async def _get(self, key: str) -> dict[str, Any] | None:
        return await self._run("read", self._read, key, self.clock())

    async def _set(self, key: str, value: dict[str, Any], data: str, ttl: float | None) -> None:
        await self._run("write", self._write, key, data, self._expires_at(ttl))

    async def _delete(self, key: str) -> None:
        await self._run("delete", self._remove, key)

    async def _get_many(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        def read_all() -> dict[str, dict[str, Any]]:
            now = self.clock()
            values = ((k, self._read(k, now)) for k in keys)
            return {k: v for k, v in values if v is not None}

        return await self._run("read", read_all)

    async def _set_many(
        self, items: list[tuple[str, dict[str, Any], str]], ttl: float | None
    ) -> None:
        def write_all() -> None:
            expires_at = self._expires_at(ttl)
            self._directory()
            with self._index.adding([key for key, _, _ in items]):  # index hook
                for key, _value, data in items:
                    self._write_file(key, data, expires_at)

        await self._run("write", write_all)

    async def _delete_many(self, keys: list[str]) -> None:
        def remove_all() -> None:
            self._directory()
            with self._index.removing(keys):  # index hook
                for key in keys:
                    self._unlink(key)

        await self._run("delete", remove_all)

    async def _keys(self, prefix: str, limit: int, cursor: str | None) -> KeyPage:
        return await self._run("list keys", self._list, prefix, limit, cursor)

    async def sweep(self) -> int:
        return await self._run("sweep", self._sweep)

    async def close(self) -> None:
        await super().close()
        self._index.close()  # index hook: its idle SQLite connections and lock descriptors

    async def ping(self) -> None:
        def probe() -> None:
            directory = self._directory()
            if not os.access(directory, os.W_OK | os.X_OK):
                raise PermissionError(f"{str(directory)!r} is not writable")

        await self._run("open its directory", probe)


async def _nothing_to_close(runner: BatchedThreadRunner) -> None:
    """Runners hold no resources: their workers end when the queue is empty."""
