"""How the LangGraph checkpointer reads: the channel values (and writes) that concurrent
calls read in one loop turn go to the store as one ``get_many``, and a listed page reads
the values of all its checkpoints at once."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from langgraph.checkpoint.base import empty_checkpoint

from prism_storage import MemoryStorageBackend
from prism_storage.integrations.langgraph import PrismCheckpointSaver


class GetMany:
    """Records the keys of each ``get_many`` call of a store (and still makes it)."""

    def __init__(self, store) -> None:
        self.calls: list[list[str]] = []
        original = store.get_many

        async def get_many(keys, *args, **kwargs):
            self.calls.append(list(keys))
            return await original(keys, *args, **kwargs)

        store.get_many = get_many


def _config(thread_id: str, checkpoint_id: str | None = None) -> dict:
    configurable = {"thread_id": thread_id, "checkpoint_ns": ""}
    if checkpoint_id:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


@pytest.fixture
async def saver():
    store = MemoryStorageBackend(f"lg-reads-{uuid.uuid4().hex[:8]}")
    try:
        yield PrismCheckpointSaver(store)
    finally:
        await store.close()


async def _put(saver, thread: str, steps: int, *, writes: bool) -> None:
    parent = _config(thread)
    for step in range(steps):
        checkpoint = {**empty_checkpoint(), "channel_values": {"n": f"{thread}-{step}"}}
        checkpoint["channel_versions"] = {"n": str(step + 1)}
        parent = await saver.aput(parent, checkpoint, {"step": step}, {"n": str(step + 1)})
        if writes:
            await saver.aput_writes(parent, [("n", step)], task_id=f"task-{step}")


async def test_concurrent_gets_read_their_values_and_writes_together(saver):
    threads = [f"t{i}" for i in range(6)]
    for thread in threads:
        await _put(saver, thread, 2, writes=True)
    alone = [await saver.aget_tuple(_config(thread)) for thread in threads]
    reads = GetMany(saver.store)
    together = await asyncio.gather(*(saver.aget_tuple(_config(t)) for t in threads))
    assert together == alone
    assert [t.checkpoint["channel_values"] for t in together] == [
        {"n": f"{thread}-1"} for thread in threads
    ]
    assert [t.pending_writes for t in together] == [[("task-1", "n", 1)]] * 6
    # The values (and the check of its latest copy) and the writes of every call, in at
    # most one get_many each (one in all where listing the writes takes no loop turn),
    # not one of each per call.
    assert len(reads.calls) <= 2
    assert sum(len(keys) for keys in reads.calls) == 18


async def test_a_listed_page_reads_the_values_of_all_its_checkpoints_at_once(saver):
    await _put(saver, "t", 5, writes=False)
    reads = GetMany(saver.store)
    found = [t async for t in saver.alist(_config("t"), limit=3)]
    assert [t.checkpoint["channel_values"] for t in found] == [{"n": f"t-{s}"} for s in (4, 3, 2)]
    # The page's records, then the values of its three checkpoints.
    assert [len(keys) for keys in reads.calls] == [3, 3]


async def test_a_failing_read_fails_only_its_own_call(saver):
    await _put(saver, "t", 1, writes=False)
    original = saver.store.get_many

    async def get_many(keys, *args, **kwargs):
        if any("broken" in key for key in keys):
            raise RuntimeError("unreadable")
        return await original(keys, *args, **kwargs)

    saver.store.get_many = get_many
    good, bad = await asyncio.gather(
        saver.aget_tuple(_config("t")),
        saver._read([saver._blobs("broken")]),
        return_exceptions=True,
    )
    assert good.checkpoint["channel_values"] == {"n": "t-0"}
    assert isinstance(bad, RuntimeError)
