"""The checkpointer's extended capabilities: ``delete_thread``, ``delete_for_runs``,
``copy_thread`` and ``prune``. Each touches only the thread or run it names, found by
prefix listing, never the whole store."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...segments import encode_segment
from .checkpoint_layout import PAGE_SIZE, CheckpointLayout


class CheckpointMaintenance(CheckpointLayout):
    """Deleting, copying and pruning threads and runs."""

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
