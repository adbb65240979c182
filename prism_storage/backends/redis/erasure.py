"""Erasing the ``redis`` backend's records by prefix (``delete_prefix``).

:class:`PrefixErasure` is the part of :class:`~.backend.RedisStorageBackend` that erases:
through the key index where the store keeps one (one server, or a cluster store whose
prefix has a hash tag), as the base class erases by listing, else by ``SCAN`` of every
primary.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from ..listing import erase_listed
from .listing import glob_escape

if TYPE_CHECKING:
    from ..base import BaseStorageBackend

__all__ = ["PrefixErasure"]

T = TypeVar("T")

#: Keys per SCAN step (and so per UNLINK) of an erasure without an index.
_ERASE_BATCH = 1000


class PrefixErasure:
    """``_delete_prefix`` for the redis backend (see the module)."""

    if TYPE_CHECKING:  # provided by RedisStorageBackend
        _key_prefix: str
        _indexed: bool

        async def _run(self, action: str, operation: Callable[[Any], Awaitable[T]]) -> T: ...

    async def _delete_prefix(self, prefix: str) -> int:
        if self._indexed:
            # The base class's way: pages of the key index, in [prefix, successor), each
            # deleted with its index entries in one MULTI (``_delete_many``). The cost
            # follows the records erased, where a SCAN reads every key of the database.
            return await erase_listed(cast("BaseStorageBackend", self), prefix)
        return await self._erase_scanned(prefix)

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
