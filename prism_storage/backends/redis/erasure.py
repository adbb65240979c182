"""Erasing the ``redis`` backend's records by prefix (``delete_prefix``).

:class:`PrefixErasure` is the half of :class:`~.backend.RedisStorageBackend` that erases:
through the key index where the store keeps one (one server, or a cluster store whose
prefix has a hash tag), else by ``SCAN`` of every primary.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ..base import KeyPage
from .listing import glob_escape
from .scripts import DELETE, Script

__all__ = ["PrefixErasure"]

T = TypeVar("T")

#: Keys per page of an erasure (and per SCAN step).
_ERASE_BATCH = 1000


class PrefixErasure:
    """``_delete_prefix`` for the redis backend (see the module)."""

    if TYPE_CHECKING:  # provided by RedisStorageBackend
        cluster: bool
        _key_prefix: str
        _index_key: str
        _indexed: bool

        async def _run(self, action: str, operation: Callable[[Any], Awaitable[T]]) -> T: ...

        async def _keys(self, prefix: str, limit: int, cursor: str | None) -> KeyPage: ...

        async def _eval_many(
            self, action: str, script: Script, calls: Sequence[tuple[str, tuple[Any, ...]]]
        ) -> list[Any]: ...

    async def _delete_prefix(self, prefix: str) -> int:
        if self._indexed:
            return await self._erase_indexed(prefix)
        return await self._erase_scanned(prefix)

    async def _erase_indexed(self, prefix: str) -> int:
        """Erase through the key index, a page of keys in ``[prefix, successor)`` at a
        time: the cost follows the records erased, where a SCAN reads every key of the
        database. A page's cursor is its last key, so erasing the page keeps it valid."""
        removed, cursor = 0, None
        while True:
            page = await self._keys(prefix, _ERASE_BATCH, cursor)
            if page.keys:
                removed += await self._erase_keys(page.keys)
            if page.cursor is None:
                return removed
            cursor = page.cursor

    async def _erase_keys(self, keys: list[str]) -> int:
        """Delete the records ``keys`` with their index entries, atomically (a key written
        again meanwhile is never left out of the index); return how many existed."""
        if self.cluster:  # one slot (a hash tag): the delete script per key, pipelined
            replies = await self._eval_many("delete", DELETE, [(key, ()) for key in keys])
            return sum(int(reply) for reply in replies)
        names = [self._key_prefix + key for key in keys]

        async def unlink(client: Any) -> int:
            pipe = client.pipeline(transaction=True)
            pipe.unlink(*names)  # UNLINK frees the memory in the background
            pipe.zrem(self._index_key, *keys)
            unlinked, _ = await pipe.execute()
            return int(unlinked)

        return await self._run("delete", unlink)

    async def _erase_scanned(self, prefix: str) -> int:
        """A cluster store whose prefix has no hash tag keeps no index: SCAN every primary
        for the pattern and UNLINK what it finds. The pattern starts with the store's
        prefix and its separator, so every Redis key it matches is a record of this store
        under ``prefix``: glob characters in either are escaped to match only themselves."""
        pattern = glob_escape(self._key_prefix + prefix) + "*"
        removed = 0
        for node in await self._run("list keys", self._primaries):
            position = None
            while position != 0:
                position, names = await self._run(
                    "list keys",
                    functools.partial(
                        self._scan, node=node, position=position or 0, pattern=pattern
                    ),
                )
                if names:
                    # The cluster client splits the UNLINK by hash slot.
                    unlink = functools.partial(_unlink, names=names)
                    removed += int(await self._run("delete", unlink))
        return removed

    async def _primaries(self, client: Any) -> list[str]:
        return sorted(node.name for node in client.get_primaries())

    async def _scan(
        self, client: Any, *, node: str, position: int, pattern: str
    ) -> tuple[int, list[bytes]]:
        target = client.get_node(node_name=node)
        if target is None:  # the node left the cluster meanwhile: its keys went elsewhere
            return 0, []
        positions, names = await client.scan(
            position, match=pattern, count=_ERASE_BATCH, target_nodes=target
        )
        return int(positions[node]), names


async def _unlink(client: Any, *, names: list[bytes]) -> Any:
    return await client.unlink(*names)
