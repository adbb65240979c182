"""A sorted index of the file store's keys: a page of keys costs O(page + log n).

An SQLite database in the store's directory (``.prism-index.sqlite3`` and its ``-wal`` and
``-shm``) holds a row ``(key, file name)`` for **every** record file; a row may be stale
(its file gone). A listing walks the rows in key order from the cursor and ``lstat``s each
file, skipping stale rows and expired records. Writes and deletes agree through ``flock``
on ``.prism-lock`` (:mod:`.handles`): a write holds it SHARED while it makes
sure of the row and then writes the file; every removal of rows (delete, sweep, pruning)
holds it EXCLUSIVE and removes a row only once its file is gone. So a crash leaves at
worst a stale row, and a write and a delete of one key never interleave.

An overwrite skips the SQLite lookup for keys this store has seen indexed; whoever removes
rows first bumps a counter in the lock file's first 8 bytes, and a write (under its shared
lock, so the counter cannot move meanwhile) forgets those keys when the counter moved.

A directory without a complete index (written by a version without one) is scanned once
under the exclusive lock; rows and the ``complete`` mark commit in one transaction, so a
crash during the build means a new build. docs/file.md gives the reasoning.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence

from .handles import INDEX_NAME, LOCK_NAME, Handle, HandlePool, as_os_errors
from .records import is_expired

__all__ = ["INDEX_NAME", "LOCK_NAME", "FileIndex"]

#: Keys bound per statement when a batch is looked up (well under SQLite's limit).
_CHUNK = 500
#: Keys a store remembers as indexed before it starts over (about 100 bytes each).
_KNOWN_LIMIT = 200_000

EntryKey = Callable[[os.DirEntry[str]], "str | None"]


class _Unlock:
    """What :meth:`FileIndex.adding` returns: at the end of ``with`` it releases the lock
    and hands the handle back."""

    __slots__ = ("_handle", "_pool")

    def __init__(self, pool: HandlePool, handle: Handle) -> None:
        self._pool, self._handle = pool, handle

    def __enter__(self) -> None:
        pass

    def __exit__(self, *exc_info: object) -> None:
        try:
            self._pool.release(self._handle.lock_fd)
        finally:
            self._pool.give(self._handle)


def _upper_bound(prefix: str) -> str | None:
    """The least string above every string that starts with ``prefix`` (None: no bound)."""
    chars = list(prefix)
    while chars:
        code = ord(chars.pop()) + 1
        if code == 0xD800:  # keys hold no surrogates: the next character is U+E000
            code = 0xE000
        if code <= 0x10FFFF:
            return "".join(chars) + chr(code)
    return None


def _in_one_transaction(
    conn: sqlite3.Connection, sql: str, rows: Sequence[tuple[str, ...]]
) -> None:
    if not rows:
        return
    conn.execute("BEGIN IMMEDIATE")  # the write lock up front: no busy snapshot to upgrade
    try:
        conn.executemany(sql, rows)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _fsync_directory(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileIndex:
    """The key index of one file store directory.

    :param directory: the store's directory (it must exist before the first call).
    :param durable: commit with ``synchronous=FULL`` so rows survive a power loss.
    :param file_name: the record file name of a key.
    :param entry_key: the key a directory entry holds, or ``None`` for a file that is
        not a record (used to build the index).
    """

    def __init__(
        self,
        directory: str,
        *,
        durable: bool,
        file_name: Callable[[str], str],
        entry_key: EntryKey,
    ) -> None:
        self.directory = directory
        self.path = os.path.join(directory, INDEX_NAME)
        self._durable = durable
        self._file_name = file_name
        self._entry_key = entry_key
        self._pool = HandlePool(directory, durable=durable)
        self._built = False
        self._known: set[str] = set()  # keys seen indexed while the counter read this
        self._known_counter = b""

    def close(self) -> None:
        """Close the idle connections and lock descriptors; the next call opens new ones."""
        self._pool.close()

    def _take(self) -> Handle:
        """A handle, once the index is complete (built on first use if it is not)."""
        handle = self._pool.take()
        if not self._built:
            try:
                self._build(handle)
            except BaseException:
                self._pool.give(handle)
                raise
        return handle

    @contextlib.contextmanager
    def _handle(self) -> Iterator[Handle]:
        handle = self._take()
        try:
            yield handle
        finally:
            self._pool.give(handle)

    def _build(self, handle: Handle) -> None:
        """Index a directory whose index is not complete (created by an older version)."""
        conn = handle.conn
        with as_os_errors(self.path):
            if not self._is_complete(conn):
                with self._pool.locked(handle.lock_fd, exclusive=True):
                    if not self._is_complete(conn):
                        self._scan_into(conn)
        self._built = True

    @staticmethod
    def _is_complete(conn: sqlite3.Connection) -> bool:
        row = conn.execute("SELECT value FROM meta WHERE name = 'complete'").fetchone()
        return row is not None

    def _scan_into(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            with os.scandir(self.directory) as entries:
                rows = [
                    (key, entry.name)
                    for entry in entries
                    if (key := self._entry_key(entry)) is not None
                ]
            conn.executemany("INSERT OR IGNORE INTO keys VALUES (?, ?)", rows)
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('complete', '1')")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    # ------------------------------------------------------------------ writes

    def adding(self, keys: Sequence[str]) -> _Unlock:
        """Take the shared lock and make sure each of ``keys`` has a row; use as
        ``with index.adding(keys): <write the files>``, which releases the lock."""
        handle = self._take()
        fd = handle.lock_fd
        try:
            self._pool.acquire(fd, exclusive=False)
        except BaseException:
            self._pool.give(handle)
            raise
        try:
            counter = self._pool.removal_counter(fd)
            if counter != self._known_counter:
                self._known.clear()
                self._known_counter = counter
            known = self._known
            missing = [k for k in keys if k not in known]
            if missing:
                with as_os_errors(self.path):
                    self._insert_missing(handle.conn, missing)
                if len(known) > _KNOWN_LIMIT:
                    known.clear()
                known.update(missing)
        except BaseException:
            _Unlock(self._pool, handle).__exit__()
            raise
        return _Unlock(self._pool, handle)

    def _insert_missing(self, conn: sqlite3.Connection, keys: list[str]) -> None:
        missing: list[str] = []
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            found = {
                k for (k,) in conn.execute(f"SELECT key FROM keys WHERE key IN ({marks})", chunk)
            }
            missing.extend(k for k in chunk if k not in found)
        _in_one_transaction(
            conn,
            "INSERT OR IGNORE INTO keys VALUES (?, ?)",
            [(k, self._file_name(k)) for k in missing],
        )

    @contextlib.contextmanager
    def removing(self, keys: Iterable[str]) -> Iterator[None]:
        """Hold the exclusive lock while the body unlinks files; then drop the rows of
        those of ``keys`` whose file is gone (also when the body failed part way)."""
        keys = list(keys)
        with self._handle() as handle, self._pool.locked(handle.lock_fd, exclusive=True):
            try:
                yield
            finally:
                gone = [k for k in keys if not self._exists(self._file_name(k))]
                if gone and self._durable:
                    # The unlinks must be on disk before the rows go: else a power loss
                    # could bring a file back without its row.
                    _fsync_directory(self.directory)
                with as_os_errors(self.path):
                    self._delete_rows(handle, gone)

    def _exists(self, name: str) -> bool:
        try:
            os.lstat(os.path.join(self.directory, name))
        except FileNotFoundError:
            return False
        return True

    def _delete_rows(self, handle: Handle, keys: list[str]) -> None:
        """Remove the rows of ``keys``; only under the exclusive lock."""
        conn = handle.conn
        if keys:
            self._pool.count_removal(handle.lock_fd)
        if len(keys) == 1:
            conn.execute("DELETE FROM keys WHERE key = ?", keys)
        else:
            _in_one_transaction(conn, "DELETE FROM keys WHERE key = ?", [(k,) for k in keys])

    # ------------------------------------------------------------------ reads

    def page(
        self, prefix: str, limit: int, cursor: str | None, now: float
    ) -> tuple[list[str], str | None]:
        """Up to ``limit`` live keys starting with ``prefix`` after ``cursor``, in order,
        and the cursor of the next page (``None`` after the last)."""
        upper = _upper_bound(prefix)
        bound = "" if upper is None else " AND key < ?"
        after = f"SELECT key, name FROM keys WHERE key > ?{bound} ORDER BY key LIMIT ?"
        if cursor is not None and cursor >= prefix:
            low, sql = cursor, after
        else:
            low, sql = prefix, after.replace("key > ?", "key >= ?", 1)
        found: list[str] = []
        stale: list[str] = []
        join, lstat = os.path.join, os.lstat
        directory, want = self.directory, limit + 1
        with self._handle() as handle, as_os_errors(self.path):
            conn = handle.conn
            while len(found) < want:
                fetch = want - len(found)
                args = (low, fetch) if upper is None else (low, upper, fetch)
                rows = conn.execute(sql, args).fetchall()
                for key, name in rows:
                    try:
                        st = lstat(join(directory, name))
                    except FileNotFoundError:
                        stale.append(key)
                        continue
                    if is_expired(st, now):  # one stat: the expiry is in mode and mtime
                        continue
                    found.append(key)
                if len(rows) < fetch:
                    break
                low, sql = rows[-1][0], after
            if stale:
                self._prune(handle, stale)
        keys = found[:limit]
        return keys, (keys[-1] if len(found) > limit else None)

    def keys_under(self, prefix: str) -> list[str]:
        """Every indexed key starting with ``prefix`` (``""``: all), stale rows included:
        what an erasure must unlink."""
        upper = _upper_bound(prefix)
        sql, args = "SELECT key FROM keys WHERE key >= ?", [prefix]
        if upper is not None:
            sql, args = sql + " AND key < ?", [prefix, upper]
        with self._handle() as handle, as_os_errors(self.path):
            return [key for (key,) in handle.conn.execute(sql, args)]

    def _prune(self, handle: Handle, keys: list[str]) -> None:
        """Drop stale rows if the exclusive lock is free right now (else leave them)."""
        if not self._pool.try_exclusive(handle.lock_fd):
            return
        try:
            self._delete_rows(handle, [k for k in keys if not self._exists(self._file_name(k))])
        finally:
            self._pool.release(handle.lock_fd)

    # ------------------------------------------------------------------ repair

    def reconcile(self, present: dict[str, str]) -> None:
        """Make the rows match ``present`` (key -> file name of each record file a full
        scan found): add missing rows (files written by a version without the index) and
        drop rows whose file is gone. Only keys re-checked under the lock are dropped."""
        with self._handle() as handle, as_os_errors(self.path):
            conn = handle.conn
            indexed = dict(conn.execute("SELECT key, name FROM keys").fetchall())
            extra = [k for k in indexed if k not in present]
            if extra:
                with self._pool.locked(handle.lock_fd, exclusive=True):
                    self._delete_rows(handle, [k for k in extra if not self._exists(indexed[k])])
            missing = [(k, n) for k, n in present.items() if k not in indexed]
            _in_one_transaction(conn, "INSERT OR IGNORE INTO keys VALUES (?, ?)", missing)
