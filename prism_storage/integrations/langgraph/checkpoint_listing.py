"""``alist``: a thread's checkpoints newest first, filtered by metadata, page by page.

A checkpoint's pending writes are read with one ``find_containing(prefix, {})`` where the
store has it; on such a store the writes of a page of checkpoints of one thread and
namespace are one query when their ids share :data:`PAGE_ID_PREFIX` leading characters.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import CheckpointTuple, get_checkpoint_id

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


def _common_prefix(texts: list[str]) -> str:
    first, last = min(texts), max(texts)
    length = 0
    while length < min(len(first), len(last)) and first[length] == last[length]:
        length += 1
    return first[:length]
