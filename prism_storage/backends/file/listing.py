"""Scans of the file store's directory: the key of each record file (to build and repair
the key index), and sweeps of expired records and of the temp files of crashed writers.
Listing itself reads the index (:mod:`.index`)."""

from __future__ import annotations

import json
import os
import time

from .index import FileIndex
from .names import file_name, is_hashed_name, key_from_name
from .records import TEMP_PREFIX, is_expired

__all__ = ["DirectoryScan"]

#: Age (seconds) after which a temp file is taken as left by a crashed writer.
_STALE_TEMP_AGE = 3600


class DirectoryScan:
    """Reads and sweeps one store's directory; remembers the keys of hashed file names
    (read once from their files)."""

    def __init__(self) -> None:
        self._hashed_names: dict[str, str] = {}

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

    def sweep(self, directory: str, now: float, index: FileIndex) -> int:
        """Remove the records expired at ``now``; return how many. Then bring ``index`` in
        line with the records found: drop rows whose file is gone, add missing ones."""
        removed = 0
        present: dict[str, str] = {}
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
                        present[key] = entry.name
                        continue
                    # Under the index's exclusive lock no write is under way, so the
                    # check that the file still is the expired one (os.replace gives a
                    # new inode) and the unlink cannot be split by a writer.
                    with index.removing((key,)):
                        if os.stat(entry.path).st_ino == st.st_ino:
                            os.unlink(entry.path)
                            removed += 1
                        else:
                            present[key] = entry.name
                except FileNotFoundError:
                    continue
        index.reconcile(present)
        return removed


def _remove_stale_temp(entry: os.DirEntry[str]) -> None:
    """Remove a temp file left by a crashed writer (older than an hour)."""
    try:
        if entry.stat(follow_symlinks=False).st_mtime < time.time() - _STALE_TEMP_AGE:
            os.unlink(entry.path)
    except FileNotFoundError:
        pass
