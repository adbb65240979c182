"""Where :class:`~.checkpoint.PrismCheckpointSaver` keeps what, and how it reads it back.

Layout (every label a segment of :mod:`...segments`, so a prefix ending in ``/`` is exact):

* ``{prefix}c/{thread}/{ns}/{checkpoint_id}``: one checkpoint, its metadata and parent;
* ``{prefix}b/{thread}/{ns}/{channel}/{version}``: one channel value at one version,
  written once when the version is new and shared by every later checkpoint that keeps
  it (as LangGraph's own savers do, so a long thread does not copy unchanged state);
* ``{prefix}w/{thread}/{ns}/{checkpoint_id}/{task_id}/{idx}``: one pending write. One
  record per write, so tasks writing at the same time never overwrite each other;
* ``{prefix}r/{run_id}/{thread}/{ns}/{checkpoint_id}``: an empty marker per checkpoint
  whose metadata names a ``run_id``, so ``delete_for_runs`` lists a run's checkpoints
  instead of reading every checkpoint of the store;
* ``{prefix}l/{thread}/{ns}``: a copy of the checkpoint record put last in the namespace
  of the thread (see :mod:`.checkpoint_reading`).

Blobs are LangGraph's serializer output (``self.serde``), kept as ``{"type", "data"}``
with the bytes in base64: prism values are JSON.

Checkpoint ids are uuid6 strings, which sort as they were made: listing sorts them,
newest first (stores do not list keys in order).
"""

from __future__ import annotations

import base64
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.serde.base import SerializerProtocol

from ...backends.base import BaseStorageBackend
from ...segments import decode_segment, join
from .gathering import ConcurrentReads
from .running import folder_prefix, resolve_listing_store

DEFAULT_PREFIX = "langgraph/checkpoints/"
# Keys listed, records read and deleted per round trip.
PAGE_SIZE = 500


class CheckpointLayout(BaseCheckpointSaver[str]):
    """The keys of a checkpointer's records, their blobs, and paged access to the store."""

    def __init__(
        self,
        store: BaseStorageBackend | str = "default",
        *,
        prefix: str = DEFAULT_PREFIX,
        serde: SerializerProtocol | None = None,
    ) -> None:
        super().__init__(serde=serde)
        self.store = resolve_listing_store(
            store, "a checkpointer needs to find a thread's checkpoints."
        )
        self.prefix = folder_prefix(prefix)
        # A store that finds records by containment in its database reads the records
        # under a prefix in one query (every value contains ``{}``).
        self._contains = getattr(self.store, "supports_containment", False) and not getattr(
            self.store, "touch_on_read", False
        )
        self._reads = ConcurrentReads(self._get_all)

    # -- keys ---------------------------------------------------------------------------

    def _checkpoints(self, *labels: str) -> str:
        return f"{self.prefix}c/{join(*labels)}"

    def _blobs(self, *labels: str) -> str:
        return f"{self.prefix}b/{join(*labels)}"

    def _writes(self, *labels: str) -> str:
        return f"{self.prefix}w/{join(*labels)}"

    def _runs(self, *labels: str) -> str:
        return f"{self.prefix}r/{join(*labels)}"

    def _latest(self, *labels: str) -> str:
        return f"{self.prefix}l/{join(*labels)}"

    # -- store access -------------------------------------------------------------------

    async def _list(self, prefix: str) -> list[str]:
        return [key async for key in self.store.iter_keys(prefix, page_size=PAGE_SIZE)]

    async def _under(self, prefix: str) -> dict[str, dict[str, Any]]:
        """The records whose key starts with ``prefix``."""
        if self._contains:
            find = self.store.find_containing  # type: ignore[attr-defined]
            return {record.key: record.value for record in await find(prefix, {})}
        return await self._read(await self._list(prefix))

    async def _read(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        """The records at ``keys`` that exist. The reads of concurrent tasks made in one
        loop turn go to the store as one ``get_many`` (one statement where the store
        batches, instead of one per task when each task's reads alternate with its other
        calls). Records are shared by callers that read the same key: none changes one."""
        if not keys:
            return {}
        values = await self._reads.run(keys)
        return {key: value for key, value in zip(keys, values, strict=True) if value is not None}

    async def _get_all(self, keys: list[str]) -> list[dict[str, Any] | None]:
        distinct = list(dict.fromkeys(keys))
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(distinct), PAGE_SIZE):
            found.update(await self.store.get_many(distinct[start : start + PAGE_SIZE]))
        return [found.get(key) for key in keys]

    async def _delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), PAGE_SIZE):
            await self.store.delete_many(keys[start : start + PAGE_SIZE])

    # -- blobs --------------------------------------------------------------------------

    def _dump(self, value: Any) -> dict[str, str]:
        kind, data = self.serde.dumps_typed(value)
        return {"type": kind, "data": base64.b64encode(data).decode("ascii")}

    def _load(self, blob: dict[str, Any]) -> Any:
        return self.serde.loads_typed((blob["type"], base64.b64decode(blob["data"])))


def checkpoint_id_of(key: str) -> str:
    """The checkpoint id a checkpoint key (``.../{checkpoint_id}``) ends with."""
    return decode_segment(key.rsplit("/", 1)[1])
