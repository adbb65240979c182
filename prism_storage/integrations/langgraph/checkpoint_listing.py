"""``alist``: a thread's checkpoints newest first, filtered by metadata, page by page.

A checkpoint's pending writes are read with one ``find_containing(prefix, {})`` where the
store has it; on such a store the writes of a page of checkpoints of one thread and
namespace are one query when their ids share :data:`PAGE_ID_PREFIX` leading characters.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import Checkpoint, CheckpointTuple, get_checkpoint_id

from ...segments import encode_segment
from .checkpoint_layout import PAGE_SIZE, checkpoint_id_of
from .checkpoint_reading import CheckpointReading

# The id prefix a page of checkpoints must share for their writes to be read at once: 8
# hex digits of a uuid6 fix its time to a window of about 27 s.
PAGE_ID_PREFIX = 8


class CheckpointListing(CheckpointReading):
    """``alist`` over the checkpoint keys of a thread (or of the whole prefix)."""

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
            keys = [k for k in keys if checkpoint_id_of(k) == only]
        if before_id:
            keys = [k for k in keys if checkpoint_id_of(k) < before_id]
        # Newest first; ties (the same id in two namespaces) in key order, for a stable list.
        keys.sort(key=lambda k: (checkpoint_id_of(k), k), reverse=True)
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
            items = await self._tuples(chosen)
            for item in items:
                yield item
            if remaining is not None:
                remaining -= len(chosen)
                if remaining <= 0:
                    return

    async def _tuples(self, records: list[dict[str, Any]]) -> list[CheckpointTuple]:
        """The tuples of a page of checkpoints: the channel values of all in one read,
        beside their pending writes (in one query where :meth:`_page_writes_prefix`
        gives one, else one read per checkpoint)."""
        if not records:
            return []
        checkpoints: list[Checkpoint] = [self._load(r["checkpoint"]) for r in records]
        blob_keys = [self._blob_keys(r, c) for r, c in zip(records, checkpoints, strict=True)]
        prefixes = [
            self._writes(r["thread_id"], r["checkpoint_ns"], r["checkpoint_id"]) for r in records
        ]
        shared = self._page_writes_prefix(records)
        writes_reads = [self._under(p) for p in ([shared] if shared else prefixes)]
        found, *writes = await _each(
            self._read([k for keys in blob_keys for k in keys]), *writes_reads
        )
        if shared:
            pending = [{k: w for k, w in writes[0].items() if k.startswith(p)} for p in prefixes]
        else:
            pending = writes
        return [
            self._assemble(*parts)
            for parts in zip(
                records, checkpoints, blob_keys, [found] * len(records), pending, strict=True
            )
        ]

    def _page_writes_prefix(self, records: list[dict[str, Any]]) -> str | None:
        """The prefix of the pending writes of a page of checkpoints of one thread and
        namespace, read in one query where the store finds by containment and the page's
        ids share a long prefix (uuid6 ids do when made within about half a minute: only
        checkpoints of that window can come along); ``None``: each checkpoint reads its
        own."""
        if not self._contains or len(records) < 2:
            return None
        labels = {(r["thread_id"], r["checkpoint_ns"]) for r in records}
        if len(labels) > 1:
            return None
        ids = [encode_segment(r["checkpoint_id"]) for r in records]
        shared = _common_prefix(ids)
        if len(shared) < PAGE_ID_PREFIX:
            return None
        return self._writes(*labels.pop()) + shared


async def _each(*reads: Awaitable[dict[str, dict[str, Any]]]) -> list[dict[str, dict[str, Any]]]:
    """Every read's result, once all are done (none is left running when one fails)."""
    outcomes = await asyncio.gather(*reads, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return outcomes  # type: ignore[return-value]


def _common_prefix(texts: list[str]) -> str:
    first, last = min(texts), max(texts)
    length = 0
    while length < min(len(first), len(last)) and first[length] == last[length]:
        length += 1
    return first[:length]
