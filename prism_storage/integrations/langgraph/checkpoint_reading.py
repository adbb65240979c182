"""Reading one checkpoint back as a LangGraph ``CheckpointTuple``, and finding a
thread's latest one through its latest copy.

``{prefix}l/{thread}/{ns}`` holds a copy of the checkpoint record put last in that
namespace of the thread, written in the same ``set_many`` as the checkpoint, so the latest
checkpoint is one read instead of a listing of the thread. LangGraph puts a thread's
checkpoints one at a time, each with an id of its moment, so the one put last is the
newest. The copy is trusted only while its checkpoint exists (``delete_for_runs`` may
remove it); without a copy (a thread written before it existed) or with a stale one, the
thread's checkpoints are listed as before.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    Checkpoint,
    CheckpointTuple,
    get_checkpoint_id,
    writes_sort_key,
)

from ...segments import encode_segment
from .checkpoint_layout import CheckpointLayout, checkpoint_id_of

#: Threads whose latest copy a saver remembers (the least recently used go first).
RECENT_THREADS = 1024


class CheckpointReading(CheckpointLayout):
    """``aget_tuple`` and the tuple of a checkpoint record."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: ``{key of a latest copy: the copy as this saver last wrote or read it}``.
        self._recent: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def _remember(self, latest_key: str, record: dict[str, Any]) -> None:
        # Each step is atomic on its own: the sync forms may call from several threads.
        recent = self._recent
        recent.pop(latest_key, None)
        recent[latest_key] = record  # the most recently used last
        if len(recent) > RECENT_THREADS:
            with contextlib.suppress(KeyError):  # another thread emptied it meanwhile
                recent.popitem(last=False)

    async def _tuple(
        self, record: dict[str, Any], confirm: str | None = None
    ) -> CheckpointTuple | None:
        """The tuple of the checkpoint ``record``; ``None`` when ``confirm`` (the key of
        the checkpoint the record is a copy of) holds nothing any more."""
        checkpoint: Checkpoint = self._load(record["checkpoint"])
        blob_keys = self._blob_keys(record, checkpoint)
        # One round trip for both (stores batch concurrent calls).
        # The checkpoint to confirm is read with the values: one statement, not two.
        reads = [*blob_keys, confirm] if confirm is not None else list(blob_keys)
        writes_prefix = self._writes(
            record["thread_id"], record["checkpoint_ns"], record["checkpoint_id"]
        )
        pending, found = await asyncio.gather(self._under(writes_prefix), self._read(reads))
        if confirm is not None and confirm not in found:
            return None
        return self._assemble(record, checkpoint, blob_keys, found, pending)

    async def _guessed_tuple(
        self, latest_key: str, guess: dict[str, Any], prefix: str
    ) -> tuple[CheckpointTuple | None, dict[str, Any] | None]:
        """The tuple of the checkpoint the remembered copy ``guess`` names, read in one
        round trip with the copy itself, and the copy read. No tuple when the copy read
        is not ``guess`` or its checkpoint is gone."""
        checkpoint: Checkpoint = self._load(guess["checkpoint"])
        blob_keys = self._blob_keys(guess, checkpoint)
        confirm = prefix + encode_segment(guess["checkpoint_id"])
        writes_prefix = self._writes(
            guess["thread_id"], guess["checkpoint_ns"], guess["checkpoint_id"]
        )
        pending, found = await asyncio.gather(
            self._under(writes_prefix), self._read([*blob_keys, confirm, latest_key])
        )
        latest = found.get(latest_key)
        if latest != guess or confirm not in found:
            return None, latest
        return self._assemble(guess, checkpoint, blob_keys, found, pending), latest

    def _blob_keys(self, record: dict[str, Any], checkpoint: Checkpoint) -> dict[str, str]:
        """``{key of a channel value the checkpoint reads: its channel}``."""
        thread_id, checkpoint_ns = record["thread_id"], record["checkpoint_ns"]
        return {
            self._blobs(thread_id, checkpoint_ns, channel) + encode_segment(str(version)): channel
            for channel, version in checkpoint["channel_versions"].items()
        }

    def _assemble(
        self,
        record: dict[str, Any],
        checkpoint: Checkpoint,
        blob_keys: dict[str, str],
        found: dict[str, dict[str, Any]],
        pending: dict[str, dict[str, Any]],
    ) -> CheckpointTuple:
        """The tuple of a checkpoint, from the channel values read (``found``, by key)
        and its pending writes."""
        thread_id = record["thread_id"]
        checkpoint_ns = record["checkpoint_ns"]
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
                    "checkpoint_id": record["checkpoint_id"],
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
            latest_key = self._latest(thread_id) + encode_segment(checkpoint_ns)
            guess = self._recent.get(latest_key)
            if guess is not None:
                found, latest = await self._guessed_tuple(latest_key, guess, prefix)
                if found is not None:
                    self._remember(latest_key, guess)
                    return found
            else:
                latest = await self.store.get(latest_key)
            # A copy read as remembered but without its checkpoint needs no second look.
            if latest is not None and latest != guess:
                confirm = prefix + encode_segment(latest["checkpoint_id"])
                found = await self._tuple(latest, confirm=confirm)
                if found is not None:
                    self._remember(latest_key, latest)
                    return found
            self._recent.pop(latest_key, None)
            keys = await self._list(prefix)
            if not keys:
                return None
            key = max(keys, key=checkpoint_id_of)
        record = await self.store.get(key)
        return None if record is None else await self._tuple(record)
