"""Scans of the file store's directory: listing keys page by page, sweeping expired
records and the temp files of crashed writers."""

from __future__ import annotations

import json
import os
import time

from ..base import KeyPage
from .names import file_name, is_hashed_name, key_from_name
from .records import TEMP_PREFIX, is_expired

__all__ = ["DirectoryScan"]

#: Age (seconds) after which a temp file is taken as left by a crashed writer.
_STALE_TEMP_AGE = 3600


class DirectoryScan:
    """Lists and sweeps one store's directory; remembers the keys of hashed file names
    (read once from their files)."""

    def __init__(self) -> None:
        self._hashed_names: dict[str, str] = {}

    def page(
        self, directory: str, prefix: str, limit: int, cursor: str | None, now: float
    ) -> KeyPage:
        """The keys after ``cursor`` starting with ``prefix``, in order, not expired."""
        found: list[str] = []
        with os.scandir(directory) as entries:
            for entry in entries:
                key = self.key_of(entry)
                if key is None or not key.startswith(prefix):
                    continue
                if cursor is not None and key <= cursor:
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if is_expired(st, now):
                    continue
                found.append(key)
        found.sort()
        page = found[:limit]
        more = len(found) > limit
        return KeyPage(page, page[-1] if more else None)

    def key_of(self, entry: os.DirEntry[str]) -> str | None:
        """The key of a record file; ``None`` for any other file."""
        name = entry.name
        if name[0] == "k":
            return key_from_name(name)
        if not is_hashed_name(name):
            return None
        key = self._hashed_names.get(name)
        if key is None:
            try:
                with open(entry.path, "rb") as fh:
                    key = json.loads(fh.read())["key"]
            except (OSError, ValueError, TypeError, KeyError):
                return None
            if not isinstance(key, str) or file_name(key) != name:
                return None
            self._hashed_names[name] = key
        return key

    def sweep(self, directory: str, now: float) -> int:
        """Remove the records expired at ``now``; return how many."""
        removed = 0
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.name.startswith(TEMP_PREFIX):
                    _remove_stale_temp(entry)
                    continue
                key = self.key_of(entry)
                if key is None:
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                    if not is_expired(st, now):
                        continue
                    # Re-check the file still is the expired one: a writer may have
                    # replaced it since the scan (os.replace gives it a new inode).
                    if os.stat(entry.path).st_ino == st.st_ino:
                        os.unlink(entry.path)
                        removed += 1
                except FileNotFoundError:
                    continue
        return removed


def _remove_stale_temp(entry: os.DirEntry[str]) -> None:
    """Remove a temp file left by a crashed writer (older than an hour)."""
    try:
        if entry.stat(follow_symlinks=False).st_mtime < time.time() - _STALE_TEMP_AGE:
            os.unlink(entry.path)
    except FileNotFoundError:
        pass
