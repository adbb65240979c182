"""The LangGraph checkpointer, proved by LangGraph's own conformance suite."""

from __future__ import annotations

import uuid

import pytest
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import (
    BASE_CAPABILITIES,
    EXTENDED_CAPABILITIES,
)

from prism_storage import FileStorageBackend, MemoryStorageBackend
from prism_storage.integrations.langgraph import PrismCheckpointSaver


def _failures(report) -> dict[str, list]:
    return {
        name: result.failures for name, result in report.results.items() if result.passed is False
    }


async def _conformance(make_store) -> None:
    @checkpointer_test(name=f"prism-{uuid.uuid4().hex[:8]}")
    async def saver():
        store = make_store()
        try:
            yield PrismCheckpointSaver(store)
        finally:
            await store.close()

    report = await validate(saver)
    assert report.passed_all_base(), _failures(report)
    # The extended capabilities are implemented on every listing store: they must pass too.
    extended = {c.value: report.results[c.value].passed for c in EXTENDED_CAPABILITIES}
    assert extended == dict.fromkeys(extended, True), _failures(report)
    assert {c.value for c in BASE_CAPABILITIES} <= set(report.results)
    assert report.passed_all()


async def test_conformance_on_memory():
    run = uuid.uuid4().hex[:8]
    await _conformance(lambda: MemoryStorageBackend(f"langgraph-{run}-{uuid.uuid4().hex[:8]}"))


async def test_conformance_on_files(tmp_path):
    await _conformance(lambda: FileStorageBackend(data_dir=tmp_path / uuid.uuid4().hex[:8]))


@pytest.mark.django_db(transaction=True, databases=["default"])
async def test_conformance_on_orm_sqlite(close_db_connections):
    from prism_storage import ORMStorageBackend

    await _conformance(lambda: ORMStorageBackend(namespace=uuid.uuid4().hex[:8]))


@pytest.mark.django_db(transaction=True, databases=["pg"])
async def test_conformance_on_orm_postgresql(close_db_connections):
    from prism_storage import ORMStorageBackend

    await _conformance(lambda: ORMStorageBackend(namespace=uuid.uuid4().hex[:8], using="pg"))


async def test_conformance_on_redis(redis_server):
    from prism_storage import RedisStorageBackend

    await _conformance(
        lambda: RedisStorageBackend(url=redis_server.url, prefix=f"lg-{uuid.uuid4().hex[:8]}:")
    )


def _config(thread_id: str, checkpoint_ns: str = "", checkpoint_id: str | None = None) -> dict:
    configurable = {"thread_id": thread_id, "checkpoint_ns": checkpoint_ns}
    if checkpoint_id:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


def test_sync_forms_from_sync_code(tmp_path):
    saver = PrismCheckpointSaver(FileStorageBackend(data_dir=tmp_path))
    first = empty_checkpoint()
    stored = saver.put(_config("t"), {**first, "channel_values": {"n": 1}}, {"step": 0}, {"n": "1"})
    second = {**empty_checkpoint(), "channel_versions": {"n": "2"}, "channel_values": {"n": 2}}
    stored2 = saver.put(_config("t", checkpoint_id=first["id"]), second, {"step": 1}, {"n": "2"})
    saver.put_writes(stored2, [("n", 3)], task_id="task")

    latest = saver.get_tuple(_config("t"))
    assert latest.config == stored2 and latest.parent_config == stored
    assert latest.checkpoint["channel_values"] == {"n": 2}
    assert latest.pending_writes == [("task", "n", 3)]
    assert [t.metadata["step"] for t in saver.list(_config("t"))] == [1, 0]
    assert [t.config for t in saver.list(_config("t"), before=stored2)] == [stored]
    assert [t.config for t in saver.list(None, filter={"step": 0})] == [stored]
    saver.delete_thread("t")
    assert saver.get_tuple(_config("t")) is None


@pytest.mark.parametrize(
    ("one", "other"),
    [("a", "ab"), ("a/b", "a"), ("a", "a/b"), ("", "~"), ("%41", "A"), ("é", "%C3%A9")],
)
async def test_threads_and_namespaces_never_see_each_other(one, other):
    saver = PrismCheckpointSaver(MemoryStorageBackend(f"langgraph-{uuid.uuid4().hex[:8]}"))
    for thread, ns in [(one, one), (other, other), (one, other)]:
        checkpoint = {**empty_checkpoint(), "channel_values": {"who": f"{thread}|{ns}"}}
        checkpoint["channel_versions"] = {"who": "1"}
        await saver.aput(_config(thread, ns), checkpoint, {"step": 0}, {"who": "1"})

    for thread, ns in [(one, one), (other, other), (one, other)]:
        found = [t async for t in saver.alist(_config(thread, ns))]
        assert [t.checkpoint["channel_values"]["who"] for t in found] == [f"{thread}|{ns}"]
        assert found[0].config["configurable"]["checkpoint_ns"] == ns
    await saver.adelete_thread(one)
    assert [t.config["configurable"]["thread_id"] async for t in saver.alist(None)] == [other]


def test_a_store_that_cannot_list_is_refused():
    from prism_storage.exceptions import UnsupportedOperationError

    class Unlisted(MemoryStorageBackend):
        supports_listing = False

    with pytest.raises(UnsupportedOperationError):
        PrismCheckpointSaver(Unlisted(f"langgraph-{uuid.uuid4().hex[:8]}"))


def test_importing_prism_storage_imports_no_langgraph():
    import subprocess
    import sys

    code = (
        "import sys, prism_storage, prism_storage.integrations; "
        "print(sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('langgraph', 'langchain_core')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_pruning_keeps_the_values_the_latest_checkpoint_shares_and_copies_in_sync_code(
    tmp_path,
):
    saver = PrismCheckpointSaver(FileStorageBackend(data_dir=tmp_path))
    first = {**empty_checkpoint(), "channel_versions": {"a": "1", "b": "1"}}
    first["channel_values"] = {"a": "kept", "b": "old"}
    stored = saver.put(_config("t"), first, {"step": 0, "run_id": "r1"}, {"a": "1", "b": "1"})
    # The second checkpoint writes only b: its a is the first one's blob.
    second = {**empty_checkpoint(), "channel_versions": {"a": "1", "b": "2"}}
    second["channel_values"] = {"a": "kept", "b": "new"}
    saver.put(
        _config("t", checkpoint_id=stored["configurable"]["checkpoint_id"]),
        second,
        {"step": 1, "run_id": "r2"},
        {"b": "2"},
    )
    saver.copy_thread("t", "copy")

    saver.prune(["t"])
    assert [t.checkpoint["channel_values"] for t in saver.list(_config("t"))] == [
        {"a": "kept", "b": "new"}
    ]
    old_blob = saver._blobs("t", "", "b") + "1"
    keys = [k for k in _sync_keys(saver) if k.startswith(saver._blobs("t"))]
    assert old_blob not in keys and len(keys) == 2

    # The copy is whole and independent of the pruned source.
    copied = list(saver.list(_config("copy")))
    assert [t.metadata["step"] for t in copied] == [1, 0]
    assert copied[1].checkpoint["channel_values"] == {"a": "kept", "b": "old"}
    saver.delete_for_runs(["r2"])
    assert [t.metadata["run_id"] for t in saver.list(_config("copy"))] == ["r1"]
    assert saver.get_tuple(_config("t")) is None  # r2 was the source's only checkpoint left


async def test_the_latest_checkpoint_is_one_read_and_threads_without_its_copy_still_work():
    store = MemoryStorageBackend(f"langgraph-{uuid.uuid4().hex[:8]}")
    saver = PrismCheckpointSaver(store)
    parent: dict = _config("t")
    stored = []
    for step, run in enumerate(["r1", "r2"]):
        checkpoint = {**empty_checkpoint(), "channel_values": {"n": step}}
        checkpoint["channel_versions"] = {"n": str(step + 1)}
        parent = await saver.aput(parent, checkpoint, {"step": step, "run_id": run}, {"n": "x"})
        stored.append(parent)
    latest_key = saver._latest("t") + "~"
    assert (await store.get(latest_key))["checkpoint_id"] == stored[1]["configurable"][
        "checkpoint_id"
    ]
    assert (await saver.aget_tuple(_config("t"))).config == stored[1]

    # A thread written before the copy existed: found by listing, as before.
    await store.delete(latest_key)
    assert (await saver.aget_tuple(_config("t"))).config == stored[1]

    # A stale copy (its checkpoint deleted with its run) is not trusted.
    await saver.aput(
        _config("t", checkpoint_id=stored[0]["configurable"]["checkpoint_id"]),
        {**empty_checkpoint(), "channel_versions": {}},
        {"step": 9, "run_id": "r3"},
        {},
    )
    await saver.adelete_for_runs(["r3"])
    assert await store.exists(latest_key)
    assert (await saver.aget_tuple(_config("t"))).config == stored[1]

    # Copied with its thread, deleted with it.
    await saver.acopy_thread("t", "u")
    assert (await store.get(saver._latest("u") + "~"))["thread_id"] == "u"
    # (its copy of the stale latest is as stale there, and as ignored)
    assert (await saver.aget_tuple(_config("u"))).config == _config(
        "u", checkpoint_id=stored[1]["configurable"]["checkpoint_id"]
    )
    await saver.adelete_thread("t")
    assert not await store.exists(latest_key)
    assert await saver.aget_tuple(_config("t")) is None


@pytest.mark.django_db(transaction=True, databases=["pg"])
async def test_a_listed_page_reads_its_writes_at_once_and_each_checkpoint_gets_its_own(
    close_db_connections,
):
    from prism_storage import ORMStorageBackend

    backend = ORMStorageBackend(namespace=uuid.uuid4().hex[:8], using="pg")
    try:
        saver = PrismCheckpointSaver(backend)
        parent: dict = _config("t")
        stored = []
        for step in range(4):
            checkpoint = {**empty_checkpoint(), "channel_values": {"n": step}}
            checkpoint["channel_versions"] = {"n": str(step + 1)}
            parent = await saver.aput(parent, checkpoint, {"step": step}, {"n": "x"})
            await saver.aput_writes(parent, [("n", step * 10), ("m", step)], task_id=f"t{step}")
            stored.append(parent)
        assert (
            saver._page_writes_prefix(
                [
                    {
                        "thread_id": "t",
                        "checkpoint_ns": "",
                        "checkpoint_id": c["configurable"]["checkpoint_id"],
                    }
                    for c in stored
                ]
            )
            is not None
        )
        found = [t async for t in saver.alist(_config("t"), limit=2)]
        assert [t.metadata["step"] for t in found] == [3, 2]
        assert [t.pending_writes for t in found] == [
            [("t3", "n", 30), ("t3", "m", 3)],
            [("t2", "n", 20), ("t2", "m", 2)],
        ]
        everything = [t async for t in saver.alist(_config("t"))]
        assert [len(t.pending_writes) for t in everything] == [2, 2, 2, 2]
        assert everything[3].pending_writes[0] == ("t0", "n", 0)
    finally:
        await backend.close()


def _sync_keys(saver):
    from prism_storage.sync import SyncStore

    return list(SyncStore(saver.store).iter_keys(""))


async def test_conformance_on_supabase(supabase_store_config):
    from prism_storage.handler import build_store

    def make():
        config = supabase_store_config(uuid.uuid4().hex[:8])
        return build_store("langgraph", config["BACKEND"], config["OPTIONS"])

    await _conformance(make)
