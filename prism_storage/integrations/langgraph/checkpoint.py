"""A LangGraph checkpointer over any prism store that lists its keys.

Layout (every label a segment of :mod:`.segments`, so a prefix ending in ``/`` is exact):

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
  of the thread, written in the same ``set_many`` as the checkpoint, so the latest
  checkpoint is one read instead of a listing of the thread. LangGraph puts a thread's
  checkpoints one at a time, each with an id of its moment, so the one put last is the
  newest. The copy is trusted only while its checkpoint exists (``delete_for_runs`` may
  remove it); without a copy (a thread written before it existed) or with a stale one, the
  thread's checkpoints are listed as before.

Blobs are LangGraph's serializer output (``self.serde``), kept as ``{"type", "data"}``
with the bytes in base64: prism values are JSON. The step, source and ids are kept in
clear beside them so the admin's store browser shows what a checkpoint is.

Checkpoint ids are uuid6 strings, which sort as they were made: listing sorts them,
newest first (stores do not list keys in order).
"""

from __future__ import annotations

import asyncio
import base64
import random
from collections.abc import AsyncIterator, Awaitable, Iterator, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_checkpoint_metadata,
    writes_sort_key,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from ...backends.base import BaseStorageBackend
from ...exceptions import UnsupportedOperationError
from ...segments import decode_segment, encode_segment, join
from .running import resolve_store, run_sync

__all__ = ["PrismCheckpointSaver"]

DEFAULT_PREFIX = "langgraph/checkpoints/"
# Keys listed and records read per round trip.
PAGE_SIZE = 500
# The id prefix a page of checkpoints must share for their writes to be read at once: 8
# hex digits of a uuid6 fix its time to a window of about 27 s.
PAGE_ID_PREFIX = 8


class PrismCheckpointSaver(BaseCheckpointSaver[str]):
    """Checkpoints of LangGraph threads in a prism store (an instance or an alias)."""

    def __init__(
        self,
        store: BaseStorageBackend | str = "default",
        *,
        prefix: str = DEFAULT_PREFIX,
        serde: SerializerProtocol | None = None,
    ) -> None:
        super().__init__(serde=serde)
        self.store = resolve_store(store)
        if not self.store.supports_listing:
            raise UnsupportedOperationError(
                f"The {self.store.backend_name!r} backend cannot list keys, which a "
                "checkpointer needs to find a thread's checkpoints."
            )
        if not prefix.endswith("/"):
            prefix += "/"
        self.prefix = prefix
        # A store that finds records by containment in its database reads the records
        # under a prefix in one query (every value contains ``{}``).
        self._contains = getattr(self.store, "supports_containment", False) and not getattr(
            self.store, "touch_on_read", False
        )

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

    async def _list(self, prefix: str) -> list[str]:
        return [key async for key in self.store.iter_keys(prefix, page_size=PAGE_SIZE)]

    async def _under(self, prefix: str) -> dict[str, dict[str, Any]]:
        """The records whose key starts with ``prefix``."""
        if self._contains:
            find = self.store.find_containing  # type: ignore[attr-defined]
            return {record.key: record.value for record in await find(prefix, {})}
        return await self._read(await self._list(prefix))

    async def _read(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        if not keys:
            return found
        for start in range(0, len(keys), PAGE_SIZE):
            found.update(await self.store.get_many(keys[start : start + PAGE_SIZE]))
        return found

    # -- blobs --------------------------------------------------------------------------

    def _dump(self, value: Any) -> dict[str, str]:
        kind, data = self.serde.dumps_typed(value)
        return {"type": kind, "data": base64.b64encode(data).decode("ascii")}

    def _load(self, blob: dict[str, Any]) -> Any:
        return self.serde.loads_typed((blob["type"], base64.b64decode(blob["data"])))

    # -- writing ------------------------------------------------------------------------

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        configurable = config["configurable"]
        thread_id: str = configurable["thread_id"]
        checkpoint_ns: str = configurable.get("checkpoint_ns", "")
        values = checkpoint.get("channel_values", {})
        stored = {k: v for k, v in checkpoint.items() if k != "channel_values"}
        records: dict[str, dict[str, Any]] = {}
        for channel, version in new_versions.items():
            blob = self._dump(values[channel]) if channel in values else {"type": "empty"}
            key = self._blobs(thread_id, checkpoint_ns, channel) + encode_segment(str(version))
            records[key] = {"channel": channel, "version": str(version), **blob}
        full_metadata = get_checkpoint_metadata(config, metadata)
        key = self._checkpoints(thread_id, checkpoint_ns) + encode_segment(checkpoint["id"])
        run_id = full_metadata.get("run_id")
        if isinstance(run_id, str) and run_id:
            marker = self._runs(run_id, thread_id, checkpoint_ns) + encode_segment(checkpoint["id"])
            records[marker] = {}
        records[key] = record = {
            "thread_id": thread_id,
            "checkpoint_ns": checkpoint_ns,
            "checkpoint_id": checkpoint["id"],
            "parent_checkpoint_id": configurable.get("checkpoint_id"),
            # In clear for people browsing the store; the blobs below are what is read.
            "step": _plain(full_metadata.get("step")),
            "source": _plain(full_metadata.get("source")),
            "run_id": run_id if isinstance(run_id, str) and run_id else None,
            "checkpoint": self._dump(stored),
            "metadata": self._dump(full_metadata),
        }
        records[self._latest(thread_id) + encode_segment(checkpoint_ns)] = record
        # One call, the checkpoint (and its copy) last: a store that writes the mapping at
        # once or in order never shows the checkpoint without its channel values.
        await self.store.set_many(records)
        return {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": checkpoint_ns,
                "checkpoint_id": checkpoint["id"],
            }
        }

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        configurable = config["configurable"]
        base = self._writes(
            configurable["thread_id"],
            configurable.get("checkpoint_ns", ""),
            configurable["checkpoint_id"],
            task_id,
        )
        records: dict[str, dict[str, Any]] = {}
        for position, (channel, value) in enumerate(writes):
            idx = WRITES_IDX_MAP.get(channel, position)
            records[f"{base}{idx}"] = {
                "task_id": task_id,
                "task_path": task_path,
                "idx": idx,
                "channel": channel,
                "value": self._dump(value),
            }
        # A regular write (idx >= 0) is kept as first written, as a task retried after a
        # crash must not change what its first run recorded; special writes replace.
        regular = [key for key, record in records.items() if record["idx"] >= 0]
        if regular:
            for key in await self._read(regular):
                del records[key]
        if records:
            await self.store.set_many(records)

    # -- reading ------------------------------------------------------------------------

    async def _tuple(
        self,
        record: dict[str, Any],
        confirm: str | None = None,
        page_writes: Awaitable[dict[str, dict[str, Any]]] | None = None,
    ) -> CheckpointTuple | None:
        """The tuple of the checkpoint ``record``; ``None`` when ``confirm`` (the key of
        the checkpoint the record is a copy of) holds nothing any more. ``page_writes``:
        the writes of a page of checkpoints that includes this one, read once for all."""
        thread_id = record["thread_id"]
        checkpoint_ns = record["checkpoint_ns"]
        checkpoint_id = record["checkpoint_id"]
        checkpoint: Checkpoint = self._load(record["checkpoint"])
        blob_keys = {
            self._blobs(thread_id, checkpoint_ns, channel) + encode_segment(str(version)): channel
            for channel, version in checkpoint["channel_versions"].items()
        }
        # One round trip for both (stores batch concurrent calls).
        # The checkpoint to confirm is read with the values: one statement, not two.
        reads = [*blob_keys, confirm] if confirm is not None else list(blob_keys)
        writes_prefix = self._writes(thread_id, checkpoint_ns, checkpoint_id)
        pending, found = await asyncio.gather(
            self._under(writes_prefix) if page_writes is None else page_writes,
            self._read(reads),
        )
        if page_writes is not None:
            pending = {k: w for k, w in pending.items() if k.startswith(writes_prefix)}
        if confirm is not None and confirm not in found:
            return None
        values = {
            channel: self._load(found[key])
            for key, channel in blob_keys.items()
            if key in found and found[key]["type"] != "empty"
        }
        writes = sorted(
            pending.values(),
            key=lambda w: writes_sort_key(w["task_path"], w["task_id"], w["idx"]),
        )
        parent = record.get("parent_checkpoint_id")
        return CheckpointTuple(
            config={
                "configurable": {
                    "thread_id": thread_id,
                    "checkpoint_ns": checkpoint_ns,
                    "checkpoint_id": checkpoint_id,
                }
            },
            checkpoint={**checkpoint, "channel_values": values},
            metadata=self._load(record["metadata"]),
            parent_config=(
                {
                    "configurable": {
                        "thread_id": thread_id,
                        "checkpoint_ns": checkpoint_ns,
                        "checkpoint_id": parent,
                    }
                }
                if parent
                else None
            ),
            pending_writes=[(w["task_id"], w["channel"], self._load(w["value"])) for w in writes],
        )

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        configurable = config["configurable"]
        thread_id: str = configurable["thread_id"]
        checkpoint_ns: str = configurable.get("checkpoint_ns", "")
        prefix = self._checkpoints(thread_id, checkpoint_ns)
        checkpoint_id = get_checkpoint_id(config)
        if checkpoint_id:
            key = prefix + encode_segment(checkpoint_id)
        else:
            latest = await self.store.get(self._latest(thread_id) + encode_segment(checkpoint_ns))
            if latest is not None:
                confirm = prefix + encode_segment(latest["checkpoint_id"])
                found = await self._tuple(latest, confirm=confirm)
                if found is not None:
                    return found
            keys = await self._list(prefix)
            if not keys:
                return None
            key = max(keys, key=_checkpoint_id_of)
        record = await self.store.get(key)
        return None if record is None else await self._tuple(record)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        if config is None:
            prefix = self._checkpoints()
        else:
            configurable = config["configurable"]
            checkpoint_ns = configurable.get("checkpoint_ns")
            labels = [configurable["thread_id"]]
            if checkpoint_ns is not None:
                labels.append(checkpoint_ns)
            prefix = self._checkpoints(*labels)
        only = get_checkpoint_id(config) if config else None
        before_id = get_checkpoint_id(before) if before else None
        keys = await self._list(prefix)
        if only:
            keys = [k for k in keys if _checkpoint_id_of(k) == only]
        if before_id:
            keys = [k for k in keys if _checkpoint_id_of(k) < before_id]
        # Newest first; ties (the same id in two namespaces) in key order, for a stable list.
        keys.sort(key=lambda k: (_checkpoint_id_of(k), k), reverse=True)
        if limit is not None and limit <= 0:
            return
        remaining = limit
        # Without a filter, read no more records than the listing can return.
        size = PAGE_SIZE if filter or remaining is None else min(PAGE_SIZE, remaining)
        for start in range(0, len(keys), size):
            page = keys[start : start + size]
            found = await self.store.get_many(page)
            chosen: list[dict[str, Any]] = []
            for key in page:
                record = found.get(key)
                if record is None:
                    continue  # deleted since it was listed
                if filter:
                    metadata = self._load(record["metadata"])
                    if not all(metadata.get(k) == v for k, v in filter.items()):
                        continue
                chosen.append(record)
                if remaining is not None and len(chosen) == remaining:
                    break
            # Built together: their reads are independent, and stores batch concurrent calls.
            page_writes = self._page_writes(chosen)
            tuples = (self._tuple(record, page_writes=page_writes) for record in chosen)
            try:
                items = await asyncio.gather(*tuples)
            finally:
                if page_writes is not None:
                    page_writes.cancel()  # nothing when it is done
                    if page_writes.done() and not page_writes.cancelled():
                        page_writes.exception()  # its error, if any, was the gather's
            for item in items:
                assert item is not None  # nothing to confirm: always built
                yield item
            if remaining is not None:
                remaining -= len(chosen)
                if remaining <= 0:
                    return

    def _page_writes(
        self, records: list[dict[str, Any]]
    ) -> asyncio.Future[dict[str, dict[str, Any]]] | None:
        """One query for the pending writes of a page of checkpoints of one thread and
        namespace, where the store finds by containment and the page's ids share a long
        prefix (uuid6 ids do when made within about half a minute: only checkpoints of
        that window can come along); ``None``: each checkpoint reads its own."""
        if not self._contains or len(records) < 2:
            return None
        labels = {(r["thread_id"], r["checkpoint_ns"]) for r in records}
        if len(labels) > 1:
            return None
        ids = [encode_segment(r["checkpoint_id"]) for r in records]
        shared = _common_prefix(ids)
        if len(shared) < PAGE_ID_PREFIX:
            return None
        return asyncio.ensure_future(self._under(self._writes(*labels.pop()) + shared))

    # -- deleting, copying, pruning --------------------------------------------------

    async def _delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), PAGE_SIZE):
            await self.store.delete_many(keys[start : start + PAGE_SIZE])

    async def _drop(self, records: dict[str, dict[str, Any]]) -> None:
        """Delete the checkpoints ``{key: record}``, their writes and run markers (not
        their blobs, which later checkpoints may share)."""
        keys = list(records)
        for record in records.values():
            labels = (record["thread_id"], record["checkpoint_ns"])
            keys += await self._list(self._writes(*labels, record["checkpoint_id"]))
            if record.get("run_id"):
                marker = self._runs(record["run_id"], *labels)
                keys.append(marker + encode_segment(record["checkpoint_id"]))
        await self._delete(keys)

    async def adelete_thread(self, thread_id: str) -> None:
        checkpoints = await self._read(await self._list(self._checkpoints(thread_id)))
        markers = [
            self._runs(r["run_id"], thread_id, r["checkpoint_ns"])
            + encode_segment(r["checkpoint_id"])
            for r in checkpoints.values()
            if r.get("run_id")
        ]
        keys = [*checkpoints, *markers]
        for prefix in (self._blobs, self._writes, self._latest):
            keys += await self._list(prefix(thread_id))
        await self._delete(keys)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and their writes) of the runs; channel values they
        alone held stay until their thread is deleted or pruned."""
        for run_id in run_ids:
            markers = await self._list(self._runs(run_id))
            # The marker's tail is the checkpoint key's tail: {thread}/{ns}/{id}.
            keys = [self._checkpoints() + marker[len(self._runs(run_id)) :] for marker in markers]
            await self._drop(await self._read(keys))
            await self._delete(markers)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint, channel value and write of a thread to another."""
        old, new = encode_segment(source_thread_id), encode_segment(target_thread_id)
        copies: dict[str, dict[str, Any]] = {}
        # The latest copies after the checkpoints they copy.
        for prefix in (self._blobs, self._writes, self._checkpoints, self._latest):
            base = prefix()
            found = await self._read(await self._list(prefix(source_thread_id)))
            for key, record in found.items():
                target = base + new + key[len(base) + len(old) :]
                if "thread_id" in record:
                    record = {**record, "thread_id": target_thread_id}
                    if record.get("run_id") and prefix == self._checkpoints:
                        marker = self._runs(record["run_id"], target_thread_id)
                        copies[marker + target[len(base) + len(new) + 1 :]] = {}
                copies[target] = record
        # Checkpoints last (dicts keep order): a reader never sees one without its values.
        items = list(copies.items())
        for start in range(0, len(items), PAGE_SIZE):
            await self.store.set_many(dict(items[start : start + PAGE_SIZE]))

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """``"delete"``: remove the threads. ``"keep_latest"``: keep only the newest
        checkpoint of each namespace of each thread, its writes and the channel values it
        reads."""
        if strategy not in ("keep_latest", "delete"):
            raise ValueError(f"Unknown prune strategy: {strategy!r}")
        for thread_id in thread_ids:
            if strategy == "delete":
                await self.adelete_thread(thread_id)
                continue
            checkpoints = await self._read(await self._list(self._checkpoints(thread_id)))
            newest: dict[str, str] = {}
            for record in checkpoints.values():
                ns = record["checkpoint_ns"]
                if ns not in newest or record["checkpoint_id"] > newest[ns]:
                    newest[ns] = record["checkpoint_id"]
            kept = {
                k: r
                for k, r in checkpoints.items()
                if newest[r["checkpoint_ns"]] == r["checkpoint_id"]
            }
            await self._drop({k: r for k, r in checkpoints.items() if k not in kept})
            needed: set[str] = set()
            for record in kept.values():
                versions = self._load(record["checkpoint"])["channel_versions"]
                needed.update(
                    self._blobs(thread_id, record["checkpoint_ns"], channel)
                    + encode_segment(str(version))
                    for channel, version in versions.items()
                )
            blobs = await self._list(self._blobs(thread_id))
            await self._delete([key for key in blobs if key not in needed])

    # -- versions -----------------------------------------------------------------------

    def get_next_version(self, current: str | None, channel: None) -> str:
        """A counter that sorts as text, and a random tail so two writers never collide."""
        if current is None:
            number = 0
        elif isinstance(current, int):
            number = current
        else:
            number = int(current.split(".")[0])
        return f"{number + 1:032}.{random.random():016}"

    # -- sync forms ---------------------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return run_sync(self.store, self.aget_tuple, config)

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        async def collect() -> list[CheckpointTuple]:
            found = self.alist(config, filter=filter, before=before, limit=limit)
            return [item async for item in found]

        return iter(run_sync(self.store, collect))

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return run_sync(self.store, self.aput, config, checkpoint, metadata, new_versions)

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        run_sync(self.store, self.aput_writes, config, writes, task_id, task_path)

    def delete_thread(self, thread_id: str) -> None:
        run_sync(self.store, self.adelete_thread, thread_id)

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        run_sync(self.store, self.adelete_for_runs, run_ids)

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        run_sync(self.store, self.acopy_thread, source_thread_id, target_thread_id)

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        run_sync(self.store, self.aprune, thread_ids, strategy=strategy)


def _common_prefix(texts: list[str]) -> str:
    first, last = min(texts), max(texts)
    length = 0
    while length < min(len(first), len(last)) and first[length] == last[length]:
        length += 1
    return first[:length]


def _checkpoint_id_of(key: str) -> str:
    return decode_segment(key.rsplit("/", 1)[1])


def _plain(value: Any) -> Any:
    """``value`` if JSON holds it as it is, else ``None`` (shown for browsing only)."""
    return value if value is None or type(value) in (str, int, float, bool) else None
