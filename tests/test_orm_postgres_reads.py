"""Reads of the orm store on PostgreSQL: ``find_containing`` (JSON containment, on the
fast path and through the ORM, with the ties of the last row of a limited page), listings
by key range, and concurrent versioned reads merged into one."""

from __future__ import annotations

import pytest

from prism_storage import ORMStorageBackend
from prism_storage.exceptions import InvalidKeyError, InvalidValueError, UnsupportedOperationError
from prism_storage.testing import FakeClock

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "pg"])


@pytest.fixture(params=[True, False], ids=["fast-path", "through-the-orm"])
async def make_store(request, close_db_connections):
    stores: list[ORMStorageBackend] = []

    def make(**options) -> ORMStorageBackend:
        store = ORMStorageBackend(
            namespace="containment", using="pg", fast_path=request.param, **options
        )
        stores.append(store)
        return store

    yield make
    for store in stores:
        await store.close()


async def test_finds_the_records_of_the_prefix_whose_value_contains_newest_first(make_store):
    clock = FakeClock(1000.0)
    store = make_store(clock=clock)
    await store.set("a/1", {"kind": "note", "meta": {"lang": "fr", "n": 2}, "tags": ["x", "y"]})
    clock.advance(1)
    await store.set("a/2", {"kind": "note", "meta": {"lang": "en"}})
    clock.advance(1)
    await store.set("a/3", {"kind": "chat"})
    await store.set("b/1", {"kind": "note"})
    clock.advance(1)
    await store.set("a/4", {"kind": "note"}, ttl=1)
    clock.advance(2)  # a/4 has expired

    found = await store.find_containing("a/", {"kind": "note"})
    assert [r.key for r in found] == ["a/2", "a/1"]
    assert found[1].value["meta"] == {"lang": "fr", "n": 2} and found[1].version
    assert [r.key for r in await store.find_containing("a/", {"meta": {"lang": "fr"}})] == ["a/1"]
    # An array contains the items it is given (a subset, unlike the LangGraph filter).
    assert [r.key for r in await store.find_containing("a/", {"tags": ["y"]})] == ["a/1"]
    everywhere = await store.find_containing("", {"kind": "note"})
    assert [r.key for r in everywhere] == ["b/1", "a/2", "a/1"]
    assert await store.find_containing("a/", {"kind": "absent"}) == []


async def test_a_limited_page_brings_the_ties_of_its_last_record(make_store):
    clock = FakeClock(1000.0)
    store = make_store(clock=clock)
    await store.set("t/old", {"k": "v"})
    clock.advance(1)
    await store.set_many({f"t/{i}": {"k": "v"} for i in range(4)})  # one moment
    clock.advance(1)
    await store.set("t/new", {"k": "v"})

    assert [r.key for r in await store.find_containing("t/", {"k": "v"}, limit=1)] == ["t/new"]
    page = await store.find_containing("t/", {"k": "v"}, limit=2)
    assert page[0].key == "t/new" and sorted(r.key for r in page[1:]) == [
        f"t/{i}" for i in range(4)
    ]
    assert len(await store.find_containing("t/", {"k": "v"}, limit=10)) == 6


@pytest.mark.parametrize(
    ("prefix", "contained", "limit"),
    [(1, {}, None), ("a/", ["x"], None), ("a/", {}, 0), ("a/", {}, True), ("a\x00", {}, None)],
)
async def test_bad_arguments_are_refused_before_any_io(prefix, contained, limit):
    store = ORMStorageBackend(namespace="containment", using="unreachable")
    with pytest.raises(InvalidKeyError if prefix == "a\x00" else InvalidValueError):
        await store.find_containing(prefix, contained, limit=limit)


async def test_only_postgresql_finds_by_containment(close_db_connections):
    store = ORMStorageBackend(namespace="containment", using="default")
    assert not store.supports_containment
    assert ORMStorageBackend(namespace="containment", using="pg").supports_containment
    with pytest.raises(UnsupportedOperationError):
        await store.find_containing("a/", {"k": "v"})


async def test_the_contained_json_is_a_jsonb_parameter(close_db_connections):
    """The server reads the contained JSON as ``jsonb`` once per statement: sent as
    ``text`` and cast, a prepared statement's generic plan would convert it again for
    every row it tests."""
    import psycopg

    from prism_storage.backends.orm.pg_records import PostgresRecords
    from prism_storage.backends.orm.postgres import connection_settings
    from prism_storage.models import Record

    params, _ = connection_settings("pg")
    params["prepare_threshold"] = 0  # prepared at once, as the fast path's statements are
    records = PostgresRecords(Record, "containment")
    async with await psycopg.AsyncConnection.connect(**params) as connection:
        for limit in (None, 2):  # the statement for all matches, and the one for a page
            await records.containing(connection, 1000.0, "a/", {"k": "v"}, '{"k":"v"}', limit)
        cursor = await connection.execute(
            "SELECT parameter_types::text[] FROM pg_prepared_statements "
            "WHERE statement LIKE '%@>%' AND statement NOT LIKE '%pg_prepared_statements%'"
        )
        prepared = [row[0] for row in await cursor.fetchall()]
    assert len(prepared) == 2
    assert all("jsonb" in types for types in prepared), prepared


@pytest.mark.parametrize(
    ("collation", "code_point_order"),
    [
        (("default", "d", None, "c", "C.UTF-8"), True),
        (("default", "d", None, "c", "C"), True),
        (("default", "d", None, "c", "en_US.UTF-8"), False),
        (("default", "d", None, "i", "C.UTF-8"), False),  # ICU default: its own order
        (("C", "c", "C", "c", "en_US.UTF-8"), True),
        (("ucs_basic", "c", "C", "c", "en_US.UTF-8"), True),
        (("en-x-icu", "i", None, "c", "C.UTF-8"), False),
    ],
)
def test_listings_use_a_key_range_only_where_keys_sort_by_code_point(collation, code_point_order):
    from prism_storage.backends.orm.pg_records import _code_point_collation

    assert _code_point_collation(*collation) is code_point_order


async def test_concurrent_versioned_reads_are_merged_and_each_caller_owns_its_values(
    make_store,
):
    import asyncio

    store = make_store()
    await store.set_many({f"r/{i}": {"i": i, "nested": {"list": [i]}} for i in range(5)})
    wanted = [["r/0", "r/1"], ["r/1", "r/2", "absent"], ["r/1"], ["r/4", "r/4"], ["r/3"]]
    # Watch what reaches the database (the executor runs as it would).
    executor = store._batcher().executor
    sent: list[list[str]] = []
    run = executor.run

    async def watched(requests):
        sent.extend(list(r.keys) for r in requests if r.call is not None)
        return await run(requests)

    executor.run = watched
    results = await asyncio.gather(*(store.get_many_records(keys) for keys in wanted))
    assert len(sent) <= 2, sent  # merged (the first may go alone, while idle)
    for keys, found in zip(wanted, results, strict=True):
        assert sorted(found) == sorted({k for k in keys if k != "absent"})
        for key, record in found.items():
            assert record.value == {"i": int(key[2:]), "nested": {"list": [int(key[2:])]}}
            assert record.version
    # The three callers of r/1 got equal records, but not one shared value.
    shared = [found["r/1"].value for found in results[:3]]
    assert len({id(value) for value in shared}) == 3
    assert len({id(value["nested"]) for value in shared}) == 3
