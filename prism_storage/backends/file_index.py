"""A sorted index of the file store's keys, so that a page of keys costs O(page + log n).

The index is an SQLite database in the store's directory (``.prism-index.sqlite3``, with
its ``-wal`` and ``-shm`` files) holding one row ``(key, file name)`` per record file. The
invariant is one-sided: **every record file has a row**; a row may be stale (its file was
deleted, or a crash struck between the row and the file). A listing walks the rows in key
order from the cursor and checks each with one ``lstat`` of its file, so stale rows and
expired records are skipped and never returned.

Writers and deleters agree through ``flock`` on ``.prism-lock`` (one descriptor per
thread, so the threads of one process exclude each other as processes do):

* a write takes the lock SHARED, makes sure the key's row exists, writes the file, and
  releases: many writes run at once;
* a delete takes it EXCLUSIVE, unlinks the file, deletes the row if the file is gone, and
  releases; so does every other removal of rows (sweep, pruning, the first build).

A write and a delete of one key are therefore never interleaved, and a crash anywhere
leaves at worst a stale row. All names start with ``.``, which no record file name does.

So that an overwrite does not pay for an SQLite lookup, each store remembers the keys it
has seen indexed. Rows are only ever removed under the exclusive lock, and whoever removes
them first adds one to a counter kept in the lock file's first eight bytes; a write reads
the counter under its shared lock (so it cannot change meanwhile) and forgets what it
remembered when the counter moved.

The first use of a directory without a complete index (data from a version without one)
scans it once under the exclusive lock and records the rows and a ``complete`` mark in one
transaction: a crash during the build leaves no mark, and the next use builds it again.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import stat
import sys
import threading
import weakref
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
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS keys (key TEXT PRIMARY KEY, name TEXT NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
)
_NO_FLOCK = sys.platform == "win32"
if not _NO_FLOCK:
    import fcntl

EntryKey = Callable[[os.DirEntry[str]], "str | None"]


class _ThreadState:
    """One thread's SQLite connection and lock descriptor, closed when the thread ends."""

    __slots__ = ("__weakref__", "conn", "generation", "lock_fd", "pid")

    def __init__(self, conn: sqlite3.Connection, lock_fd: int, generation: int) -> None:
        self.conn: sqlite3.Connection | None = conn
        self.lock_fd = lock_fd
        self.generation = generation
        self.pid = os.getpid()

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is None:
            return
        if self.pid == os.getpid():  # a forked child leaves its parent's handles alone
            conn.close()
            os.close(self.lock_fd)

    def __del__(self) -> None:  # the thread (or the index) went away without close()
        self.close()


class _Unlock:
    """What :meth:`FileIndex.adding` returns: releases the lock at the end of ``with``."""

    __slots__ = ("_fd", "_index")

    def __init__(self, index: FileIndex, fd: int) -> None:
        self._index = index
        self._fd = fd

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: object) -> None:
        self._index._release(self._fd)


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


@contextlib.contextmanager
def _as_os_errors(path: str) -> Iterator[None]:
    """Report SQLite failures as OSError, as the store reports every other I/O failure."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        raise OSError(errno.EIO, f"{exc} (file store index {path!r})") from exc
    except sqlite3.DatabaseError as exc:
        raise OSError(
            errno.EIO,
            f"{exc} (file store index {path!r}; it is rebuilt from the records if it is "
            f"deleted, with its -wal and -shm files, while no process uses the store)",
        ) from exc


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
        self._local = threading.local()
        self._states: weakref.WeakSet[_ThreadState] = weakref.WeakSet()
        self._states_lock = threading.Lock()
        self._generation = 0
        self._built = False
        self._thread_lock = threading.Lock()  # the stand-in for flock where there is none
        self._known: set[str] = set()  # keys seen indexed while the counter read this
        self._known_counter = b""
        self._local_counter = 0  # the removal counter where there is no flock

    # ------------------------------------------------------------------ connections

    def _state(self) -> _ThreadState:
        state: _ThreadState | None = getattr(self._local, "state", None)
        if state is not None and self._built and self._usable(state):
            return state
        if state is None or not self._usable(state):
            if state is not None and state.pid == os.getpid():
                state.close()
            state = self._open()
            self._local.state = state
            with self._states_lock:
                self._states.add(state)
        if not self._built:
            self._build(state)
        return state

    def _usable(self, state: _ThreadState) -> bool:
        return (
            state.conn is not None
            and state.generation == self._generation
            and state.pid == os.getpid()
        )

    def _open(self) -> _ThreadState:
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
        return _ThreadState(conn, lock_fd, self._generation)

    def close(self) -> None:
        """Close every thread's connection; the next call opens new ones."""
        with self._states_lock:
            self._generation += 1
            states = list(self._states)
            self._states.clear()
        for state in states:
            state.close()

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

    def _build(self, state: _ThreadState) -> None:
        """Index a directory whose index is not complete (created by an older version)."""
        conn = state.conn
        assert conn is not None
        with _as_os_errors(self.path):
            if not self._is_complete(conn):
                with self._locked(state.lock_fd, exclusive=True):
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
        state = self._state()
        fd = state.lock_fd
        self._acquire(fd, exclusive=False)
        try:
            counter = self._removal_counter(fd)
            if counter != self._known_counter:
                self._known.clear()
                self._known_counter = counter
            known = self._known
            missing = [k for k in keys if k not in known]
            if missing:
                assert state.conn is not None
                with _as_os_errors(self.path):
                    self._insert_missing(state.conn, missing)
                if len(known) > _KNOWN_LIMIT:
                    known.clear()
                known.update(missing)
        except BaseException:
            self._release(fd)
            raise
        return _Unlock(self, fd)

    def _insert_missing(self, conn: sqlite3.Connection, keys: list[str]) -> None:
        if len(keys) == 1:  # the common case: an overwrite reads, it does not write
            if conn.execute("SELECT 1 FROM keys WHERE key = ?", keys).fetchone() is None:
                conn.execute("INSERT OR IGNORE INTO keys VALUES (?, ?)",
                             (keys[0], self._file_name(keys[0])))
            return
        missing: list[str] = []
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start:start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            found = {k for (k,) in conn.execute(
                f"SELECT key FROM keys WHERE key IN ({marks})", chunk)}
            missing.extend(k for k in chunk if k not in found)
        if missing:
            conn.execute("BEGIN")
            try:
                conn.executemany("INSERT OR IGNORE INTO keys VALUES (?, ?)",
                                 [(k, self._file_name(k)) for k in missing])
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    @contextlib.contextmanager
    def removing(self, keys: Iterable[str]) -> Iterator[None]:
        """Hold the exclusive lock while the body unlinks files; then drop the rows of
        those of ``keys`` whose file is gone (also when the body failed part way)."""
        keys = list(keys)
        state = self._state()
        conn = state.conn
        assert conn is not None
        with self._locked(state.lock_fd, exclusive=True):
            try:
                yield
            finally:
                gone = [k for k in keys if not self._exists(self._file_name(k))]
                with _as_os_errors(self.path):
                    self._delete_rows(state.lock_fd, conn, gone)

    def _exists(self, name: str) -> bool:
        try:
            os.lstat(os.path.join(self.directory, name))
        except FileNotFoundError:
            return False
        return True

    def _delete_rows(self, fd: int, conn: sqlite3.Connection, keys: list[str]) -> None:
        """Remove the rows of ``keys``; only under the exclusive lock."""
        if not keys:
            return
        self._count_removal(fd)
        if len(keys) == 1:
            conn.execute("DELETE FROM keys WHERE key = ?", keys)
            return
        conn.execute("BEGIN")
        try:
            conn.executemany("DELETE FROM keys WHERE key = ?", [(k,) for k in keys])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    # ------------------------------------------------------------------ reads

    def page(
        self, prefix: str, limit: int, cursor: str | None, now: float
    ) -> tuple[list[str], str | None]:
        """Up to ``limit`` live keys starting with ``prefix`` after ``cursor``, in order,
        and the cursor of the next page (``None`` after the last)."""
        state = self._state()
        conn = state.conn
        assert conn is not None
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
        with _as_os_errors(self.path):
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
            self._prune(state, stale)
        keys = found[:limit]
        return keys, (keys[-1] if len(found) > limit else None)

    def _prune(self, state: _ThreadState, keys: list[str]) -> None:
        """Drop stale rows if the exclusive lock is free right now (else leave them)."""
        if _NO_FLOCK:
            return
        try:
            fcntl.flock(state.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return
        try:
            gone = [k for k in keys if not self._exists(self._file_name(k))]
            assert state.conn is not None
            with _as_os_errors(self.path):
                self._delete_rows(state.lock_fd, state.conn, gone)
        finally:
            fcntl.flock(state.lock_fd, fcntl.LOCK_UN)

    # ------------------------------------------------------------------ repair

    def reconcile(self, present: dict[str, str]) -> None:
        """Make the rows match ``present`` (key -> file name of each record file a full
        scan found): add missing rows (files written by a version without the index) and
        drop rows whose file is gone. Only keys re-checked under the lock are dropped."""
        state = self._state()
        conn = state.conn
        assert conn is not None
        with _as_os_errors(self.path):
            indexed = dict(conn.execute("SELECT key, name FROM keys").fetchall())
            extra = [k for k in indexed if k not in present]
            if extra:
                with self._locked(state.lock_fd, exclusive=True):
                    gone = [k for k in extra if not self._exists(indexed[k])]
                    self._delete_rows(state.lock_fd, conn, gone)
            missing = [(k, n) for k, n in present.items() if k not in indexed]
            if missing:
                conn.execute("BEGIN")
                try:
                    conn.executemany("INSERT OR IGNORE INTO keys VALUES (?, ?)", missing)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
