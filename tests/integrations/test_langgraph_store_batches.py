"""Batches of the LangGraph store: identical reads run once and hand every caller an
equal but independent result; concurrent reads of many tasks run as one batch."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from langgraph.store.base import GetOp, Item, ListNamespacesOp, PutOp, SearchItem, SearchOp

from prism_storage import MemoryStorageBackend
from prism_storage.integrations.langgraph import PrismStore
from prism_storage.integrations.langgraph.batches import Snapshot, repeated_reads

VALUE = {"kind": "note", "n": 2, "nested": {"tags": ["a", "b"]}}


class Counted:
    """Records the arguments of the calls of one method of an object (and still makes
    them: the method may be a coroutine function or an async generator)."""

    def __init__(self, target: object, name: str) -> None:
        self.args: list[tuple] = []
        original = getattr(target, name)

        def counted(*args, **kwargs):
            self.args.append(args)
            return original(*args, **kwargs)

        setattr(target, name, counted)

    @property
    def calls(self) -> int:
        return len(self.args)


@pytest.fixture
async def backend():
    store = MemoryStorageBackend(f"lg-batches-{uuid.uuid4().hex[:8]}")
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def store(backend):
    prism = PrismStore(backend)
    await prism.aput(("a",), "one", VALUE)
    await prism.aput(("a", "b"), "two", {**VALUE, "n": 3})
    return prism


def _same_but_independent(results: list) -> None:
    """Equal results, of which none shares a mutable object with another."""
    first = results[0]
    for other in results[1:]:
        assert other == first
        assert other is not first
        for mine, theirs in zip(first, other, strict=True) if isinstance(first, list) else []:
            if isinstance(mine, Item):
                assert mine.value is not theirs.value
                assert mine.value["nested"] is not theirs.value["nested"]
                assert mine.value["nested"]["tags"] is not theirs.value["nested"]["tags"]


async def test_identical_reads_of_a_batch_run_once_with_independent_results(store, backend):
    listings = Counted(backend, "iter_keys")
    reads = Counted(backend, "get_many_records")
    search = SearchOp(("a",), filter={"kind": "note"})
    namespaces = ListNamespacesOp()
    get = GetOp(("a",), "one")
    results = await store.abatch([search, get, namespaces, search, get, namespaces, search])
    # One listing per distinct search or namespace listing, one read for the gets (and
    # the search's records).
    assert listings.calls == 2
    assert reads.calls == 2
    assert [item.key for item in results[0]] == ["two", "one"]
    assert results[2] == [("a",), ("a", "b")]
    _same_but_independent([results[0], results[3], results[6]])
    _same_but_independent([results[2], results[5]])
    assert results[1] == results[4] and results[1] is not results[4]
    assert results[1].value is not results[4].value
    # Changing what one caller was handed changes no one else's, nor the store.
    results[3][1].value["nested"]["tags"].append("mine")
    results[4].value["kind"] = "changed"
    assert results[0][1].value == results[6][1].value == VALUE
    assert results[1].value == VALUE
    assert (await store.aget(("a",), "one")).value == VALUE


async def test_reads_equal_in_python_but_not_in_json_are_not_merged(store, backend):
    await store.aput(("f",), "flag", {"on": True})
    await store.aput(("f",), "one", {"on": 1})
    listings = Counted(backend, "iter_keys")
    as_bool, as_int = SearchOp(("f",), filter={"on": True}), SearchOp(("f",), filter={"on": 1})
    assert as_bool == as_int  # for Python, True == 1
    assert repeated_reads([as_bool, as_int]) == {}
    results = await store.abatch([as_bool, as_int])
    assert listings.calls == 2
    # InMemoryStore's semantics: True == 1 in a filter, so both find both.
    assert {i.key for i in results[0]} == {i.key for i in results[1]} == {"flag", "one"}


def test_searches_are_merged_exactly_when_they_are_identical_as_json():
    def search(filter=None, **more):
        return SearchOp(("a", "b"), filter=filter, **more)

    # The usual searches (a filter of strings and integers, or none) in any field order.
    assert repeated_reads([search({"x": "1", "n": 2}), search({"n": 2, "x": "1"})]) == {0: [1]}
    assert repeated_reads([search(), search(), search({})]) == {0: [1]}
    # A string is not the integer it spells; limits, offsets, queries and refresh differ.
    assert repeated_reads([search({"x": "1"}), search({"x": 1})]) == {}
    assert repeated_reads([search(limit=10), search(limit=11), search(offset=1)]) == {}
    assert repeated_reads([search(query="q"), search(query="r"), search()]) == {}
    assert repeated_reads([search(refresh_ttl=True), search(refresh_ttl=False)]) == {}
    # Other values go through their JSON: equal JSON merges, a float is not an integer.
    nested = {"tags": ["a"], "at": {"n": 1.5}}
    assert repeated_reads([search(nested), search(dict(reversed(nested.items())))]) == {0: [1]}
    assert repeated_reads([search({"n": 1}), search({"n": 1.0})]) == {}
    # JSON writes the key 1 as "1", but a filter {1: x} finds nothing {"1": x} finds.
    assert repeated_reads([search({1: "x"}), search({"1": "x"})]) == {}
    assert repeated_reads([search({"in": {1: "x"}}), search({"in": {"1": "x"}})]) == {}


def test_reads_holding_what_json_cannot_write_are_never_merged():
    odd = SearchOp(("a",), filter={"when": datetime(2026, 1, 1, tzinfo=UTC)})
    assert repeated_reads([odd, odd]) == {}
    assert repeated_reads([GetOp(("a",), "k"), PutOp(("a",), "k", {}), GetOp(("a",), "k")]) == {
        0: [2]
    }


def test_a_snapshot_copies_a_value_pickle_refuses():
    class Local:  # pickle cannot find a local class by name; deepcopy can copy it
        def __init__(self) -> None:
            self.items = [1]

    now = datetime.now(UTC)
    item = SearchItem(("a",), "k", {"odd": Local()}, now, now, score=0.5)
    snapshot = Snapshot([item, None])
    first, second = snapshot.take(), snapshot.take()
    assert first[1] is None and first[0].score == 0.5
    assert first[0].value["odd"] is not second[0].value["odd"]
    first[0].value["odd"].items.append(2)
    assert item.value["odd"].items == [1] and second[0].value["odd"].items == [1]


async def test_concurrent_reads_of_many_tasks_run_as_one_batch(store, backend):
    listings = Counted(backend, "iter_keys")
    reads = Counted(backend, "get_many_records")
    gets = [store.aget(("a",), "one") for _ in range(20)]
    searches = [store.asearch(("a",), filter={"kind": "note"}) for _ in range(20)]
    found = await asyncio.gather(*gets, *searches, store.alist_namespaces())
    # One batch: the gets in one read, the searches (all alike) in one listing and one
    # read, the namespaces in one listing.
    assert (listings.calls, reads.calls) == (2, 2)
    assert all(item == found[0] for item in found[:20])
    assert len({id(item.value) for item in found[:20]}) == 20
    _same_but_independent(list(found[20:40]))
    assert found[40] == [("a",), ("a", "b")]


async def test_a_caller_changing_its_result_first_changes_no_other(store):
    async def change() -> list[SearchItem]:
        found = await store.asearch(("a",))
        for item in found:
            item.value["nested"]["tags"].clear()
            item.value["kind"] = "changed"
        return found

    changed, *others = await asyncio.gather(change(), *(store.asearch(("a",)) for _ in range(5)))
    assert all(item.value["kind"] == "changed" for item in changed)
    for found in others:
        assert [item.value["nested"] for item in found] == [VALUE["nested"]] * 2


async def test_a_bad_read_in_a_gathered_batch_fails_only_its_caller(store):
    bad = store.abatch([ListNamespacesOp(match_conditions=(_Bogus(),))])
    found = await asyncio.gather(store.aget(("a",), "one"), bad, return_exceptions=True)
    assert found[0].value == VALUE
    assert isinstance(found[1], ValueError)


async def test_a_cancelled_caller_is_left_out_of_its_batch(store, backend):
    reads = Counted(backend, "get_many_records")
    cancelled = asyncio.ensure_future(store.aget(("a",), "two"))
    kept = asyncio.ensure_future(store.aget(("a",), "one"))
    await asyncio.sleep(0)  # both wait for the batch of this turn
    cancelled.cancel()
    assert (await kept).value == VALUE
    assert cancelled.cancelled()
    assert [list(keys) for (keys,) in reads.args] == [[store._key(("a",), "one")]]


async def test_writes_are_not_delayed_into_a_gathered_batch(store, backend):
    writes = Counted(backend, "set_many")
    await asyncio.gather(*(store.aput(("w",), f"k{i}", {"i": i}) for i in range(5)))
    assert writes.calls == 5
    assert len(await store.asearch(("w",))) == 5


class _Bogus:
    """A match condition of a type no store knows."""

    match_type = "bogus"
    path = ("a",)


def test_a_copy_reads_its_value_only_when_asked_and_behaves_as_an_item():
    import copy
    import pickle

    now = datetime.now(UTC)
    item = SearchItem(("a",), "k", {"nested": {"n": [1]}}, now, now, score=0.25)
    snapshot = Snapshot([item])
    (copied,) = snapshot.take()
    assert isinstance(copied, SearchItem) and copied.score == 0.25
    assert copied == item and hash(copied) == hash(item) and repr(copied) == repr(item)
    assert copied.dict() == item.dict()
    for again in (pickle.loads(pickle.dumps(copied)), copy.deepcopy(copied)):
        assert again == item and again.score == 0.25
    (replaced,) = snapshot.take()
    replaced.value = {"other": True}  # set before it was ever read
    assert replaced.value == {"other": True}
    assert snapshot.take()[0].value == item.value
    single = Snapshot(
        Item(value={"x": 1}, key="k", namespace=("a",), created_at=now, updated_at=now)
    )
    assert single.take() == single.take() and single.take() is not single.take()


def test_copies_are_made_whole_where_item_keeps_its_value_without_a_slot(monkeypatch):
    # A LangGraph release whose Item holds its value otherwise gets whole copies.
    from prism_storage.integrations.langgraph import batches

    now = datetime.now(UTC)
    item = Item(namespace=("a",), key="k", value={"x": [1]}, created_at=now, updated_at=now)
    snapshot = Snapshot(item)
    assert type(snapshot.take()).__name__ == "LazyItem"
    monkeypatch.setattr(batches, "_VALUE_SLOT", None)
    copied = Snapshot(item).take()
    assert type(copied) is Item
    assert copied.value == {"x": [1]} and copied.value is not item.value
