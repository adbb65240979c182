"""A LangGraph checkpointer over any prism store that lists its keys.

The layout of its records is in :mod:`.checkpoint_layout`; reading a checkpoint and the
latest copy in :mod:`.checkpoint_reading`; ``list`` in :mod:`.checkpoint_listing`; the
extended capabilities (``delete_for_runs``, ``copy_thread``, ``prune``) in
:mod:`.checkpoint_maintenance`. This module writes checkpoints and pending writes, and
gives the sync forms.

The step, source and ids of a checkpoint are kept in clear beside its blobs so the
admin's store browser shows what a checkpoint is.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_metadata,
)

from ...segments import encode_segment

# Re-exported: they were defined here before the layout had a module of its own.
from .checkpoint_layout import DEFAULT_PREFIX as DEFAULT_PREFIX
from .checkpoint_layout import PAGE_SIZE as PAGE_SIZE
from .checkpoint_listing import PAGE_ID_PREFIX as PAGE_ID_PREFIX
from .checkpoint_listing import CheckpointListing
from .checkpoint_maintenance import CheckpointMaintenance
from .running import run_sync

__all__ = ["PrismCheckpointSaver"]


class PrismCheckpointSaver(CheckpointListing, CheckpointMaintenance):
    """Checkpoints of LangGraph threads in a prism store (an instance or an alias)."""

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
        latest_key = self._latest(thread_id) + encode_segment(checkpoint_ns)
        records[latest_key] = record
        # One call, the checkpoint (and its copy) last: a store that writes the mapping at
        # once or in order never shows the checkpoint without its channel values.
        await self.store.set_many(records)
        self._remember(latest_key, record)
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


def _plain(value: Any) -> Any:
    """``value`` if JSON holds it as it is, else ``None`` (shown for browsing only)."""
    return value if value is None or type(value) in (str, int, float, bool) else None
