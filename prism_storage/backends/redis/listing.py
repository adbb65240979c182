"""Listing a redis store's keys: ``SCAN`` over every node, page by page.

A cursor holds the node being scanned, the ``SCAN`` position on it, and the keys the
last ``SCAN`` returned beyond the page (a ``SCAN`` reply cannot be cut short). It is tied
to the store and the listing prefix that produced it: any other cursor is refused.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from typing import Any

from ...codec import validate_key
from ...exceptions import InvalidKeyError, InvalidValueError
from ..base import KeyPage

__all__ = ["KeyListing", "glob_escape", "record_key"]

_GLOB_SPECIAL = ("\\", "*", "?", "[", "]")
# SCAN ``COUNT`` bounds, and how many SCAN round trips one page may take before it is
# returned short (a short page with a cursor is allowed; it keeps each call bounded).
_MIN_SCAN_COUNT = 16
_MAX_SCAN_COUNT = 10_000
_MAX_SCANS_PER_PAGE = 64
_CURSOR_VERSION = 1
_SCAN_DONE = -1  # cursor position once every node is scanned (only queued keys remain)


def glob_escape(text: str) -> str:
    """Escape ``text`` so that a Redis MATCH pattern matches it literally."""
    for special in _GLOB_SPECIAL:
        text = text.replace(special, "\\" + special)
    return text


class KeyListing:
    """One page of the keys under ``key_prefix + prefix``, from ``cursor`` on.

    The cursor is checked when the listing is made (before any I/O); :meth:`page` then
    runs the scans on a client.
    """

    def __init__(
        self, key_prefix: str, prefix: str, limit: int, cursor: str | None, *, cluster: bool
    ) -> None:
        self.cluster = cluster
        self.limit = limit
        digest = hashlib.blake2s((key_prefix + prefix).encode(), digest_size=6)
        self.listing = digest.hexdigest()
        self.node_name, self.position, pending = (
            ("", 0, []) if cursor is None else _decode_cursor(cursor, self.listing)
        )
        self.keys, self.pending = pending[:limit], pending[limit:]
        self.pattern = glob_escape(key_prefix + prefix) + "*"
        self.skip = len(key_prefix)

    async def page(self, client: Any) -> KeyPage:
        """SCAN until the page is full (or the per-page budget is spent)."""
        page, pending, limit = self.keys, self.pending, self.limit
        seen = set(page)
        nodes = self._scan_nodes(client)
        index = len(nodes) if self.position == _SCAN_DONE else _node_index(nodes, self.node_name)
        at = self.position
        count = min(max(limit, _MIN_SCAN_COUNT), _MAX_SCAN_COUNT)
        scanned = matched = 0
        for _ in range(_MAX_SCANS_PER_PAGE):
            if len(page) >= limit or index >= len(nodes):
                break
            at, batch = await self._scan(client, nodes[index], at, count)
            scanned += count
            for raw in batch:
                key = record_key(raw, self.skip)
                if key is None or key in seen:
                    continue
                seen.add(key)
                matched += 1
                (page if len(page) < limit else pending).append(key)
            if at == 0:  # this node is done; the next one starts at 0
                index += 1
            count = _next_count(limit - len(page), matched, scanned, count)
        if index < len(nodes):
            return KeyPage(page, _encode_cursor(self.listing, nodes[index], at, pending))
        return KeyPage(
            page, _encode_cursor(self.listing, "", _SCAN_DONE, pending) if pending else None
        )

    def _scan_nodes(self, client: Any) -> list[str]:
        if not self.cluster:
            return [""]
        return sorted(node.name for node in client.get_primaries())

    async def _scan(
        self, client: Any, node: str, position: int, count: int
    ) -> tuple[int, list[bytes]]:
        if not self.cluster:
            next_position, batch = await client.scan(position, match=self.pattern, count=count)
            return int(next_position), batch
        target = client.get_node(node_name=node)
        if target is None:
            raise InvalidValueError(
                "The listing cursor refers to a Redis Cluster node that is gone; "
                "start the listing again."
            )
        positions, batch = await client.scan(
            position, match=self.pattern, count=count, target_nodes=target
        )
        return int(positions[node]), batch


def record_key(raw: bytes, skip: int) -> str | None:
    """The record key of a Redis key SCAN matched, or ``None`` for a foreign key."""
    try:
        return validate_key(raw.decode("utf-8")[skip:])
    except (UnicodeDecodeError, InvalidKeyError):
        return None


def _node_index(nodes: list[str], name: str) -> int:
    if not name:
        return 0
    try:
        return nodes.index(name)
    except ValueError:
        raise InvalidValueError(
            "The listing cursor refers to a Redis Cluster node that is gone; "
            "start the listing again."
        ) from None


def _next_count(needed: int, matched: int, scanned: int, count: int) -> int:
    """The next SCAN COUNT: aim at the keys still needed, given the density seen so far."""
    if needed <= 0:
        return count
    if matched == 0:
        return min(count * 4, _MAX_SCAN_COUNT)
    wanted = math.ceil(needed * scanned / matched)
    return min(max(wanted, _MIN_SCAN_COUNT), _MAX_SCAN_COUNT)


def _encode_cursor(listing: str, node: str, position: int, pending: list[str]) -> str:
    payload = json.dumps(
        [_CURSOR_VERSION, listing, node, position, pending],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, listing: str) -> tuple[str, int, list[str]]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        version, owner, node, position, pending = json.loads(raw)
        if (
            version != _CURSOR_VERSION
            or owner != listing
            or type(node) is not str
            or type(position) is not int
            or type(pending) is not list
        ):
            raise ValueError("not a cursor of this listing")
        return node, position, [validate_key(k) for k in pending]
    except (ValueError, TypeError, InvalidKeyError) as exc:
        raise InvalidValueError(
            "cursor is not a cursor returned by keys() for this store and prefix."
        ) from exc
