"""How the LangGraph checkpointer reads: the channel values (and writes) that concurrent
calls read in one loop turn go to the store as one ``get_many``, a listed page reads
the values of all its checkpoints at once, and a thread this saver wrote or read last is
read in one round trip, checked against the store."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from langgraph.checkpoint.base import empty_checkpoint

from prism_storage import MemoryStorageBackend
from prism_storage.integrations.langgraph import PrismCheckpointSaver
from prism_storage.segments import encode_segment


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
    # The values, the checkpoint and its latest copy, and the writes of every call, in at
    # most one get_many each (one in all where listing the writes takes no loop turn),
    # not one of each per call.
    assert len(reads.calls) <= 2
    assert sum(len(keys) for keys in reads.calls) == 24


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


class Gets:
    """Counts a store's single-key ``get`` calls (and still makes them)."""

    def __init__(self, store) -> None:
        self.keys: list[str] = []
        original = store.get

        async def get(key, *args, **kwargs):
            self.keys.append(key)
            return await original(key, *args, **kwargs)

        store.get = get


async def test_a_thread_this_saver_wrote_is_read_in_one_round_trip(saver):
    await _put(saver, "t", 2, writes=True)
    gets, reads = Gets(saver.store), GetMany(saver.store)
    found = await saver.aget_tuple(_config("t"))
    assert found.checkpoint["channel_values"] == {"n": "t-1"}
    assert found.pending_writes == [("task-1", "n", 1)]
    # The latest copy is read with the values and the checkpoint, not before them.
    assert gets.keys == []
    assert len(reads.calls) == 1
    assert reads.calls[0][-1] == saver._latest("t") + encode_segment("")
    # A saver that did not write the thread reads its copy first, then remembers it.
    other = PrismCheckpointSaver(saver.store)
    assert await other.aget_tuple(_config("t")) == found
    assert len(gets.keys) == 1
    assert await other.aget_tuple(_config("t")) == found
    assert len(gets.keys) == 1


async def test_a_thread_another_saver_moved_on_is_read_as_it_is_now(saver):
    other = PrismCheckpointSaver(saver.store)
    await _put(saver, "t", 1, writes=False)
    first = await saver.aget_tuple(_config("t"))
    # Another process puts the next checkpoint: this saver's copy of the thread is stale.
    checkpoint = {**empty_checkpoint(), "channel_values": {"n": "elsewhere"}}
    checkpoint["channel_versions"] = {"n": "9"}
    await other.aput(first.config, checkpoint, {"step": 1}, {"n": "9"})
    moved = await saver.aget_tuple(_config("t"))
    assert moved.checkpoint["channel_values"] == {"n": "elsewhere"}
    assert moved.parent_config == first.config
    assert await saver.aget_tuple(_config("t")) == moved
    # Its latest checkpoint removed elsewhere, the thread's newest remaining one is read.
    latest_id = moved.config["configurable"]["checkpoint_id"]
    await saver.store.delete(saver._checkpoints("t", "") + encode_segment(latest_id))
    assert (await saver.aget_tuple(_config("t"))).config == first.config
    # The thread deleted elsewhere reads as absent.
    await other.adelete_thread("t")
    assert await saver.aget_tuple(_config("t")) is None
