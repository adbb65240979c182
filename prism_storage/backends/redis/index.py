"""Listing a standalone Redis store through its key index: sorted pages, each key once.

``SCAN`` returns a key again when Redis resizes its hash table between two calls, so a
listing over it cannot keep the promise that every key present throughout is listed
exactly once. The store therefore keeps a sorted set of its record keys (the index, at
``prefix + "\\x1ekeys"``), every member at score 0 so that Redis orders them by their
bytes: the write and delete scripts add and remove the key in the same atomic step as
the record (see :mod:`.scripts`). A page is one ``ZRANGEBYLEX`` from just after the last
key of the previous page, and the cursor is that key: pages come in UTF-8 byte order (the
order of code points, as the other stores sort), and no key can come twice.

The index can hold keys that are gone without a delete (expired, evicted): the page
script checks that each key exists and drops the entries of those that do not.

The member ``""`` (never a record key) marks an index known complete. Without it (data
written before the index existed, an index evicted or flushed) the first listing builds
the index from a ``SCAN`` of the store's keys, then adds the mark. Keys written while the
build runs are indexed by their writes; a key deleted meanwhile may be added back to the
index by the build, and is dropped by the next page that meets it.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ...codec import validate_key
from ...exceptions import InvalidKeyError, InvalidValueError
from ..base import KeyPage
from .client import client_errors
from .listing import KeyListing
from .scripts import LIST, Script

__all__ = ["IndexListing", "build_index", "has_hash_tag"]

T = TypeVar("T")

_CURSOR_VERSION = 2
#: How many index entries one page may look at beyond its size (entries of expired keys
#: are skipped, and dropped, on the way); past that the page is returned short.
_PAGE_BUDGET = 10_000
#: Keys per SCAN step of an index build.
_BUILD_COUNT = 1_000
#: A byte that never occurs in UTF-8: every key starting with ``p`` sorts before ``p + it``.
_AFTER_UTF8 = b"\xff"


class IndexListing:
    """One page of the keys under ``key_prefix + prefix``, after ``cursor``; the cursor is
    checked when the listing is made (before any I/O)."""

    def __init__(
        self, key_prefix: str, index_key: str, prefix: str, limit: int, cursor: str | None
    ) -> None:
        self.key_prefix = key_prefix
        self.index_key = index_key
        self.limit = limit
        digest = hashlib.blake2s((key_prefix + prefix).encode(), digest_size=6)
        self.listing = digest.hexdigest()
        after = None if cursor is None else _decode_cursor(cursor, self.listing, prefix)
        encoded = prefix.encode()
        if after is not None:
            self.low = b"(" + after.encode()
        else:
            self.low = b"[" + encoded if prefix else b"-"
        self.high = b"(" + encoded + _AFTER_UTF8 if prefix else b"+"

    async def page(self, client: Any) -> KeyPage | None:
        """The page, or ``None`` when the index is not complete (see :func:`build_index`)."""
        reply = await _evalsha(
            client,
            LIST,
            self.index_key,
            self.key_prefix,
            self.low,
            self.high,
            self.limit,
            self.limit + _PAGE_BUDGET,
        )
        if reply is None:
            return None
        members, last = reply
        keys = [member.decode() for member in members]
        if not last:
            return KeyPage(keys, None)
        return KeyPage(keys, _encode_cursor(self.listing, last.decode()))


async def build_index(
    listing: IndexListing,
    run: Callable[[str, Callable[[Any], Awaitable[Any]]], Awaitable[Any]],
    *,
    cluster: bool,
) -> None:
    """Add every record key of the store to its index (a ``SCAN`` of the store's keys,
    each page its own call under the store's timeout), then mark the index complete."""
    cursor: str | None = None

    async def step(client: Any) -> str | None:
        scan = KeyListing(listing.key_prefix, "", _BUILD_COUNT, cursor, cluster=cluster)
        page = await scan.page(client)
        if page.keys:
            await client.zadd(listing.index_key, dict.fromkeys(page.keys, 0))
        return page.cursor

    while True:
        cursor = await run("build the key index", step)
        if cursor is None:
            break
    await run("build the key index", lambda client: client.zadd(listing.index_key, {"": 0}))


def has_hash_tag(prefix: str) -> bool:
    """Whether ``prefix`` decides the hash slot of every key that starts with it: a Redis
    Cluster hashes only the part between the first ``{`` and the next ``}``, when that
    part is not empty."""
    opening = prefix.find("{")
    closing = prefix.find("}", opening + 1)
    return opening >= 0 and closing > opening + 1


async def _evalsha(client: Any, script: Script, *keys_and_args: Any) -> Any:
    """``EVALSHA`` of a one-key script, loading it once if the server does not know it."""
    command = ("EVALSHA", script.sha, 1, *keys_and_args)
    try:
        return await client.execute_command(*command)
    except client_errors().no_script:
        pass
    await client.execute_command("SCRIPT", "LOAD", script.body)
    return await client.execute_command(*command)


def _encode_cursor(listing: str, last: str) -> str:
    payload = json.dumps([_CURSOR_VERSION, listing, last], ensure_ascii=False)
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, listing: str, prefix: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        version, owner, last = json.loads(raw)
        if version != _CURSOR_VERSION or owner != listing or type(last) is not str:
            raise ValueError("not a cursor of this listing")
        if not last.startswith(prefix):
            raise ValueError("not a key of this listing")
        return validate_key(last)
    except (ValueError, TypeError, InvalidKeyError) as exc:
        raise InvalidValueError(
            "cursor is not a cursor returned by keys() for this store and prefix."
        ) from exc
