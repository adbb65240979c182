"""Handles on the key index of a file store: SQLite connections to ``.prism-index.sqlite3``
and descriptors of ``.prism-lock``, pooled per store, and the lock they take.

A handle is used by one thread at a time. ``flock`` locks belong to an open file
description, so each handle opens the lock file itself: the threads of one process then
exclude each other as processes do. The lock file's first eight bytes hold a counter of
row removals (see :mod:`.index`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import sys
import threading
from collections.abc import Iterator

__all__ = ["INDEX_NAME", "LOCK_NAME", "Handle", "HandlePool", "as_os_errors"]

INDEX_NAME = ".prism-index.sqlite3"
LOCK_NAME = ".prism-lock"
#: Seconds SQLite waits for another writer of the index before it gives up.
BUSY_TIMEOUT = 60.0
#: Idle handles a store keeps for its next calls.
_IDLE_LIMIT = 8
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS keys (key TEXT PRIMARY KEY, name TEXT NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
)
_NO_FLOCK = sys.platform == "win32"
if not _NO_FLOCK:
    import fcntl

#: Connections a forked child inherited: kept, never closed nor freed, since SQLite must
#: not touch a connection across fork (closing it could upset the parent's locks).
_INHERITED: list[sqlite3.Connection] = []


class _IndexConnection(sqlite3.Connection):
    """A connection that closes itself when collected.

    Stores are long-lived and nobody is obliged to ``close()`` one, so an idle pooled
    connection may only be reclaimed by the garbage collector, possibly before the
    :class:`Handle` that would close it (in a reference cycle the order is arbitrary).
    Python 3.13 warns about a connection collected open; closing it here is the cleanup
    the warning asks for. In a forked child the parent's connection is kept instead:
    SQLite must not touch it across the fork.
    """

    pid = 0

    def __del__(self) -> None:
        if self.pid == os.getpid():
            self.close()
        else:
            _INHERITED.append(self)


@contextlib.contextmanager
def as_os_errors(path: str) -> Iterator[None]:
    """Report SQLite failures as OSError, as the store reports every other I/O failure."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        hint = (
            ""
            if isinstance(exc, sqlite3.OperationalError)
            else (
                "; it is rebuilt from the records if it is deleted, with its -wal and -shm "
                "files, while no process uses the store"
            )
        )
        raise OSError(errno.EIO, f"{exc} (file store index {path!r}{hint})") from exc


class Handle:
    """An SQLite connection and a descriptor of the lock file."""

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

    def __del__(self) -> None:  # the pool was collected without close()
        self.close()


class HandlePool:
    """The handles of one store's directory, and the lock they take.

    Where there is no ``flock`` (Windows), a lock of this process stands in: writes and
    deletes take turns within one process, and processes must not share a directory.
    """

    def __init__(self, directory: str, *, durable: bool) -> None:
        self.directory = directory
        self.path = os.path.join(directory, INDEX_NAME)
        self._durable = durable
        # list.pop() and .append() are atomic: threads share the pool without a lock.
        self._idle: list[Handle] = []
        self._generation = 0
        self._thread_lock = threading.Lock()
        self._local_counter = 0  # the removal counter where there is no flock

    def take(self) -> Handle:
        """An idle handle, or a new one."""
        while True:
            try:
                handle = self._idle.pop()
            except IndexError:
                return self._open()
            if handle.generation == self._generation and handle.pid == os.getpid():
                return handle
            handle.close()  # opened before close() or in the parent of a fork

    def give(self, handle: Handle) -> None:
        """Hand back a handle taken with :meth:`take`."""
        if (
            handle.generation == self._generation
            and handle.pid == os.getpid()
            and len(self._idle) < _IDLE_LIMIT
        ):
            self._idle.append(handle)
        else:
            handle.close()

    @contextlib.contextmanager
    def handle(self) -> Iterator[Handle]:
        handle = self.take()
        try:
            yield handle
        finally:
            self.give(handle)

    def _open(self) -> Handle:
        lock_fd = os.open(os.path.join(self.directory, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            # Created owner-only before SQLite opens it; its -wal and -shm take its mode.
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
            with as_os_errors(self.path):
                conn = sqlite3.connect(
                    self.path,
                    timeout=BUSY_TIMEOUT,
                    isolation_level=None,
                    check_same_thread=False,
                    factory=_IndexConnection,
                )
                conn.pid = os.getpid()
                try:
                    # Under the exclusive lock: switching to WAL and creating the tables
                    # must not race another process doing the same.
                    with self.locked(lock_fd, exclusive=True):
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
        return Handle(conn, lock_fd, self._generation)

    def close(self) -> None:
        """Close the idle handles (those in use close when handed back); the next call
        opens new ones."""
        self._generation += 1
        while True:
            try:
                self._idle.pop().close()
            except IndexError:
                return

    # ------------------------------------------------------------------ the lock

    def acquire(self, fd: int, *, exclusive: bool) -> None:
        if _NO_FLOCK:
            self._thread_lock.acquire()
        else:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)

    def try_exclusive(self, fd: int) -> bool:
        """Take the exclusive lock if it is free right now."""
        if _NO_FLOCK:
            return self._thread_lock.acquire(blocking=False)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def release(self, fd: int) -> None:
        if _NO_FLOCK:
            self._thread_lock.release()
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def locked(self, fd: int, *, exclusive: bool) -> Iterator[None]:
        self.acquire(fd, exclusive=exclusive)
        try:
            yield
        finally:
            self.release(fd)

    def removal_counter(self, fd: int) -> bytes:
        if _NO_FLOCK:
            return self._local_counter.to_bytes(8, "little")
        return os.pread(fd, 8, 0)

    def count_removal(self, fd: int) -> None:
        """Called under the exclusive lock before any row is removed."""
        if _NO_FLOCK:
            self._local_counter += 1
            return
        count = int.from_bytes(os.pread(fd, 8, 0), "little") + 1
        os.pwrite(fd, (count % 2**64).to_bytes(8, "little"), 0)
