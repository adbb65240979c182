"""A sorted index of the file store's keys: a page of keys costs O(page + log n).

An SQLite database in the store's directory (``.prism-index.sqlite3`` and its ``-wal`` and
``-shm``) holds a row ``(key, file name)`` for **every** record file; a row may be stale
(its file gone). A listing walks the rows in key order from the cursor and ``lstat``s each
file, skipping stale rows and expired records. Writes and deletes agree through ``flock``
on ``.prism-lock`` (one descriptor per handle): a write holds it SHARED while it makes
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
import errno
import os
import sqlite3
import stat
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence

__all__ = ["INDEX_NAME", "LOCK_NAME", "FileIndex"]

INDEX_NAME = ".prism-index.sqlite3"
LOCK_NAME = ".prism-lock"
#: Seconds SQLite waits for another writer of the index before it gives up.
BUSY_TIMEOUT = 60.0
#: Keys bound per statement when a batch is looked up (well under SQLite's limit).
_CHUNK = 500
#: Keys a store remembers as indexed before it starts over (about 100 bytes each).
_KNOWN_LIMIT = 200_000
#: Idle handles (connection + lock descriptor) a store keeps for its next calls.
_IDLE_LIMIT = 8
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS keys (key TEXT PRIMARY KEY, name TEXT NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
)
_NO_FLOCK = sys.platform == "win32"
if not _NO_FLOCK:
    import fcntl

EntryKey = Callable[[os.DirEntry[str]], "str | None"]
#: Connections a forked child inherited: kept, never closed nor freed, since SQLite must
#: not touch a connection across fork (closing it could upset the parent's locks).
_INHERITED: list[sqlite3.Connection] = []


class _Handle:
    """An SQLite connection and a descriptor of the lock file, used by one thread at a
    time: ``flock`` locks belong to an open file description, so each handle opens the
    lock file itself and the threads of one process exclude each other as processes do."""

    __slots__ = ("closed", "conn", "generation", "lock_fd", "pid")

    def __init__(self, conn: sqlite3.Connection, lock_fd: int, generation: int) -> None:
        self.conn = conn
        self.lock_fd = lock_fd
        self.generation = generation
        self.pid = os.getpid()
        self.closed = False

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.pid == os.getpid():
            self.conn.close()
            os.close(self.lock_fd)
        else:  # a forked child leaves its parent's handles alone
            _INHERITED.append(self.conn)

    def __del__(self) -> None:  # the index was collected without close()
        self.close()


class _Unlock:
    """What :meth:`FileIndex.adding` returns: at the end of ``with`` it releases the lock
    and hands the handle back."""

    __slots__ = ("_handle", "_index")

    def __init__(self, index: FileIndex, handle: _Handle) -> None:
        self._index, self._handle = index, handle

    def __enter__(self) -> None:
        pass

    def __exit__(self, *exc_info: object) -> None:
        try:
            self._index._release(self._handle.lock_fd)
        finally:
            self._index._give(self._handle)


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
    conn.execute("BEGIN")
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


@contextlib.contextmanager
def _as_os_errors(path: str) -> Iterator[None]:
    """Report SQLite failures as OSError, as the store reports every other I/O failure."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        hint = "" if isinstance(exc, sqlite3.OperationalError) else (
            "; it is rebuilt from the records if it is deleted, with its -wal and -shm "
            "files, while no process uses the store")
        raise OSError(errno.EIO, f"{exc} (file store index {path!r}{hint})") from exc


class FileIndex:
    """The key index of one file store directory.

    :param directory: the store's directory (it must exist before the first call).
    :param durable: commit with ``synchronous=FULL`` so rows survive a power loss.
    :param file_name: the record file name of a key.
    :param entry_key: the key a directory entry holds, or ``None`` for a file that is
        not a record (used to build the index and by :meth:`reconcile`).
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
        # list.pop() and .append() are atomic: threads share the pool without a lock.
        self._idle: list[_Handle] = []
        self._generation = 0
        self._built = False
        self._thread_lock = threading.Lock()  # the stand-in for flock where there is none
        self._known: set[str] = set()  # keys seen indexed while the counter read this
        self._known_counter = b""
        self._local_counter = 0  # the removal counter where there is no flock

    # ------------------------------------------------------------------ connections

    def _take(self) -> _Handle:
        """An idle handle, or a new one; the index is built first if it is not complete."""
        while True:
            try:
                handle = self._idle.pop()
            except IndexError:
                handle = self._open()
                break
            if handle.generation == self._generation and handle.pid == os.getpid():
                break
            handle.close()  # opened before close() or in the parent of a fork
        if not self._built:
            try:
                self._build(handle)
            except BaseException:
                self._give(handle)
                raise
        return handle

    def _give(self, handle: _Handle) -> None:
        if (handle.generation == self._generation and handle.pid == os.getpid()
                and len(self._idle) < _IDLE_LIMIT):
            self._idle.append(handle)
        else:
            handle.close()

    @contextlib.contextmanager
    def _handle(self) -> Iterator[_Handle]:
        handle = self._take()
        try:
            yield handle
        finally:
            self._give(handle)

    def _open(self) -> _Handle:
        lock_fd = os.open(os.path.join(self.directory, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            # Created owner-only before SQLite opens it; its -wal and -shm take its mode.
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
            with _as_os_errors(self.path):
                conn = sqlite3.connect(
                    self.path, timeout=BUSY_TIMEOUT, isolation_level=None,
                    check_same_thread=False,
                )
                try:
                    # Under the exclusive lock: switching to WAL and creating the tables
                    # must not race another process doing the same.
                    with self._locked(lock_fd, exclusive=True):
                        conn.execute("PRAGMA journal_mode=WAL")
                        for statement in _SCHEMA:
                            conn.execute(statement)
                    conn.execute(f"PRAGMA synchronous={'FULL' if self._durable else 'NORMAL'}")
                except BaseException:
                    conn.close()
                    raise
        except BaseException:
            os.close(lock_fd)
            raise
        return _Handle(conn, lock_fd, self._generation)

    def close(self) -> None:
        """Close the idle handles (those in use close when handed back); the next call
        opens new ones."""
        self._generation += 1
        while True:
            try:
                self._idle.pop().close()
            except IndexError:
                return

    def _acquire(self, fd: int, *, exclusive: bool) -> None:
        if _NO_FLOCK:  # one process only: writes and deletes take turns
            self._thread_lock.acquire()
        else:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)

    def _release(self, fd: int) -> None:
        if _NO_FLOCK:
            self._thread_lock.release()
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def _locked(self, fd: int, *, exclusive: bool) -> Iterator[None]:
        self._acquire(fd, exclusive=exclusive)
        try:
            yield
        finally:
            self._release(fd)

    def _removal_counter(self, fd: int) -> bytes:
        if _NO_FLOCK:
            return self._local_counter.to_bytes(8, "little")
        return os.pread(fd, 8, 0)

    def _count_removal(self, fd: int) -> None:
        """Called under the exclusive lock before any row is removed (see the module doc)."""
        if _NO_FLOCK:
            self._local_counter += 1
            return
        count = int.from_bytes(os.pread(fd, 8, 0), "little") + 1
        os.pwrite(fd, (count % 2**64).to_bytes(8, "little"), 0)

    def _build(self, handle: _Handle) -> None:
        """Index a directory whose index is not complete (created by an older version)."""
        conn = handle.conn
        with _as_os_errors(self.path):
            if not self._is_complete(conn):
                with self._locked(handle.lock_fd, exclusive=True):
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
                rows = [(key, entry.name) for entry in entries
                        if (key := self._entry_key(entry)) is not None]
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
            self._acquire(fd, exclusive=False)
        except BaseException:
            self._give(handle)
            raise
        try:
            counter = self._removal_counter(fd)
            if counter != self._known_counter:
                self._known.clear()
                self._known_counter = counter
            known = self._known
            missing = [k for k in keys if k not in known]
            if missing:
                with _as_os_errors(self.path):
                    self._insert_missing(handle.conn, missing)
                if len(known) > _KNOWN_LIMIT:
                    known.clear()
                known.update(missing)
        except BaseException:
            _Unlock(self, handle).__exit__()
            raise
        return _Unlock(self, handle)

    def _insert_missing(self, conn: sqlite3.Connection, keys: list[str]) -> None:
        missing: list[str] = []
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start:start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            found = {k for (k,) in conn.execute(
                f"SELECT key FROM keys WHERE key IN ({marks})", chunk)}
            missing.extend(k for k in chunk if k not in found)
        _in_one_transaction(conn, "INSERT OR IGNORE INTO keys VALUES (?, ?)",
                            [(k, self._file_name(k)) for k in missing])

    @contextlib.contextmanager
    def removing(self, keys: Iterable[str]) -> Iterator[None]:
        """Hold the exclusive lock while the body unlinks files; then drop the rows of
        those of ``keys`` whose file is gone (also when the body failed part way)."""
        keys = list(keys)
        with self._handle() as handle, self._locked(handle.lock_fd, exclusive=True):
            try:
                yield
            finally:
                gone = [k for k in keys if not self._exists(self._file_name(k))]
                if gone and self._durable:
                    # The unlinks must be on disk before the rows go: else a power loss
                    # could bring a file back without its row.
                    _fsync_directory(self.directory)
                with _as_os_errors(self.path):
                    self._delete_rows(handle, gone)

    def _exists(self, name: str) -> bool:
        try:
            os.lstat(os.path.join(self.directory, name))
        except FileNotFoundError:
            return False
        return True

    def _delete_rows(self, handle: _Handle, keys: list[str]) -> None:
        """Remove the rows of ``keys``; only under the exclusive lock."""
        conn = handle.conn
        if keys:
            self._count_removal(handle.lock_fd)
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
        with self._handle() as handle, _as_os_errors(self.path):
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
                    # Owner-execute marks a record with a TTL whose mtime is its expiry.
                    if st.st_mode & stat.S_IXUSR and st.st_mtime <= now:
                        continue
                    found.append(key)
                if len(rows) < fetch:
                    break
                low, sql = rows[-1][0], after
            if stale:
                self._prune(handle, stale)
        keys = found[:limit]
        return keys, (keys[-1] if len(found) > limit else None)

    def _prune(self, handle: _Handle, keys: list[str]) -> None:
        """Drop stale rows if the exclusive lock is free right now (else leave them)."""
        if _NO_FLOCK:
            return
        try:
            fcntl.flock(handle.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return
        try:
            self._delete_rows(handle, [k for k in keys if not self._exists(self._file_name(k))])
        finally:
            fcntl.flock(handle.lock_fd, fcntl.LOCK_UN)

    # ------------------------------------------------------------------ repair

    def reconcile(self, present: dict[str, str]) -> None:
        """Make the rows match ``present`` (key -> file name of each record file a full
        scan found): add missing rows (files written by a version without the index) and
        drop rows whose file is gone. Only keys re-checked under the lock are dropped."""
        with self._handle() as handle, _as_os_errors(self.path):
            conn = handle.conn
            indexed = dict(conn.execute("SELECT key, name FROM keys").fetchall())
            extra = [k for k in indexed if k not in present]
            if extra:
                with self._locked(handle.lock_fd, exclusive=True):
                    self._delete_rows(handle, [k for k in extra if not self._exists(indexed[k])])
            missing = [(k, n) for k, n in present.items() if k not in indexed]
            _in_one_transaction(conn, "INSERT OR IGNORE INTO keys VALUES (?, ?)", missing)
