"""Locks that make each write of a key one step for every thread and process of a store.

A write of a record reads something of the record it replaces (its creation time, its
version to check a condition, its list to append to) and then replaces it; another writer
of the same key must not get in between. Every write and delete of a key holds an
exclusive ``flock`` on one of :data:`STRIPES` lock files in ``.prism-locks/``, chosen by a
hash of the key, for its whole read-check-write.

Why stripes, not a lock file per key: a lock file cannot be unlinked safely while another
process may be opening it, so per-key files would stay, one per key ever written. With 256
stripes, two busy keys share a lock one time in 256, and then only take turns. Why not one
lock for the directory: writers of different keys would always take turns.

``flock`` locks belong to an open file description, so each acquisition opens the file
itself (a few µs): threads of one process exclude each other as processes do. Closing the
descriptor releases the lock, also when the process dies. Several keys are locked in
stripe order, so two multi-key writes never wait for each other in a cycle. These locks
are always taken before the key index's lock (:mod:`.handles`), never while holding it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import zlib
from collections.abc import Iterable, Iterator

__all__ = ["LOCKS_DIR", "STRIPES", "KeyLocks"]

LOCKS_DIR = ".prism-locks"
STRIPES = 256
_NO_FLOCK = sys.platform == "win32"
if not _NO_FLOCK:
    import fcntl

_OPEN_FLAGS = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)


def stripe(key: str) -> int:
    """The lock stripe of ``key``: the same in every process (``hash()`` is not)."""
    return zlib.crc32(key.encode("utf-8")) % STRIPES


class KeyLocks:
    """The write locks of the keys of one store directory.

    Where there is no ``flock`` (Windows), locks of this process stand in: threads take
    turns, and processes must not share a directory (as for the key index).
    """

    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory, LOCKS_DIR)
        self._thread_locks = [threading.Lock() for _ in range(STRIPES)] if _NO_FLOCK else []

    @contextlib.contextmanager
    def holding(self, keys: Iterable[str]) -> Iterator[None]:
        """Hold the locks of ``keys`` for the body of ``with``."""
        stripes = sorted({stripe(key) for key in keys})
        if _NO_FLOCK:
            with contextlib.ExitStack() as stack:
                for n in stripes:
                    stack.enter_context(self._thread_locks[n])
                yield
            return
        fds: list[int] = []
        try:
            for n in stripes:
                fd = self._open(n)
                fds.append(fd)
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            for fd in reversed(fds):
                os.close(fd)  # releases its lock

    def _open(self, n: int) -> int:
        path = os.path.join(self.path, f"{n:03d}")
        try:
            return os.open(path, _OPEN_FLAGS, 0o600)
        except FileNotFoundError:  # the first lock taken in this directory
            with contextlib.suppress(FileExistsError):
                os.mkdir(self.path, 0o700)
            return os.open(path, _OPEN_FLAGS, 0o600)
