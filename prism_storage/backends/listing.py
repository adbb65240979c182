"""Key listings shared by every store: the page type, the arguments ``keys()`` and
``delete_prefix()`` accept, and erasure by prefix through listing (the fallback of a store
without a native erasure)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..codec import validate_key
from ..exceptions import InvalidValueError

if TYPE_CHECKING:
    from .base import BaseStorageBackend

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "ERASE_BATCH",
    "MAX_PAGE_SIZE",
    "KeyPage",
    "check_erasure",
    "check_listing",
    "erase_listed",
]

#: ``keys()`` returns at most this many keys per page unless asked otherwise.
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 10_000
#: Keys deleted per batch when a store erases by prefix through listing.
ERASE_BATCH = 500

#: Characters no backend's cursor holds (as in keys); a cursor with one was never handed out.
_NOT_IN_CURSORS = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


@dataclass(frozen=True)
class KeyPage:
    """One page of a key listing. ``cursor`` is ``None`` on the last page."""

    keys: list[str]
    cursor: str | None = None

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)


def check_listing(prefix: object, limit: object, cursor: object) -> None:
    """Validate the arguments of ``keys()`` before any I/O."""
    if type(prefix) is not str:
        raise InvalidValueError("prefix must be a str.")
    if prefix:
        # A prefix obeys the key rules, except that it may be a partial key.
        validate_key(prefix)
    if type(limit) is not int or not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidValueError(f"limit must be an int from 1 to {MAX_PAGE_SIZE}.")
    if cursor is not None and (
        type(cursor) is not str or not cursor or _NOT_IN_CURSORS.search(cursor)
    ):
        raise InvalidValueError("cursor must be a cursor string returned by keys().")


def check_erasure(prefix: object, all: object, whole: str) -> None:
    """Validate ``delete_prefix``'s arguments: a prefix obeying the key rules, and an
    empty one (which erases the whole ``whole``) only with ``all=True``."""
    if type(prefix) is not str:
        raise InvalidValueError("prefix must be a str.")
    if type(all) is not bool:
        raise InvalidValueError("all must be True or False.")
    if prefix:
        validate_key(prefix)
    elif not all:
        raise InvalidValueError(
            f"delete_prefix() refuses an empty prefix (it would erase the whole {whole}); "
            f"pass all=True to erase everything in the {whole}."
        )


async def erase_listed(store: BaseStorageBackend, prefix: str) -> int:
    """Remove the keys of ``store`` starting with ``prefix`` (``""``: every key) by listing
    them and deleting them in batches; return how many."""
    removed = 0
    batch: list[str] = []
    # Deleting keys the listing already returned leaves the rest of it intact: a key
    # present throughout a listing is returned once, whatever else is deleted.
    async for key in store.iter_keys(prefix, page_size=ERASE_BATCH):
        batch.append(key)
        if len(batch) == ERASE_BATCH:
            await store._delete_many(batch)
            removed, batch = removed + len(batch), []
    if batch:
        await store._delete_many(batch)
        removed += len(batch)
    return removed
