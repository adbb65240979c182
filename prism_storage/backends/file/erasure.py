"""Erasing a prefix of the file store: the indexed keys' files, a batch at a time."""

from __future__ import annotations

import os

from .index import FileIndex
from .locks import KeyLocks
from .names import file_name

__all__ = ["ERASE_BATCH", "erase_prefix"]

#: Keys unlinked per hold of their locks when a store erases by prefix.
ERASE_BATCH = 1000


def erase_prefix(directory: str, prefix: str, locks: KeyLocks, index: FileIndex) -> int:
    """Unlink the record files of the indexed keys under ``prefix``, a batch at a time
    under the keys' locks and the index's; return how many files were removed.

    A batch bounds how long one erasure holds the locks other writers wait for.
    """
    keys = index.keys_under(prefix)
    removed = 0
    for start in range(0, len(keys), ERASE_BATCH):
        batch = keys[start : start + ERASE_BATCH]
        with locks.holding(batch), index.removing(batch):
            for key in batch:
                try:
                    os.unlink(os.path.join(directory, file_name(key)))
                except FileNotFoundError:
                    continue
                removed += 1
    return removed
