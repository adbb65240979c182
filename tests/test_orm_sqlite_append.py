"""The orm store's one-statement ``append`` on SQLite (``backends/orm/sqlite_append.py``):
it is taken when it can be, and every case it hands to the general path ends as that path
would end it (the conformance suite's list cases run on both)."""

from __future__ import annotations

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext

from prism_storage import ORMStorageBackend
from prism_storage.backends.orm.sqlite_append import MAX_ITEMS, InPlaceAppend
from prism_storage.exceptions import InvalidValueError
from prism_storage.sync import SyncStore
from prism_storage.testing import FakeClock

pytestmark = pytest.mark.django_db(transaction=True, databases=["default"])


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_800_000_000.0)


@pytest.fixture
def store(clock, close_db_connections):
    return ORMStorageBackend(namespace="in-place", using="default", clock=clock)


def test_an_append_to_an_existing_list_is_one_statement(store):
    if not InPlaceAppend.available():
        pytest.skip("this SQLite has no -> operator (3.38): the general path appends")
    sync = SyncStore(store)
    sync.append("chat", [1])
    with CaptureQueriesContext(connections["default"]) as queries:
        assert sync.append("chat", [{"role": "user"}, "two"]) == 3
    statements = [query["sql"] for query in queries.captured_queries]
    assert len(statements) == 1, statements
    assert statements[0].startswith("UPDATE") and "RETURNING" in statements[0]
    assert sync.get("chat") == {"messages": [1, {"role": "user"}, "two"]}


async def test_items_arrive_as_the_codec_wrote_them(store):
    """Booleans stay booleans (not SQLite's 1/0), large integers, floats, escapes and
    non-ASCII text are kept exactly, nested values stay JSON (not strings)."""
    items = [
        True,
        False,
        None,
        12345678901234567890123,
        -0.5,
        1.0e-7,
        'quote " backslash \\ newline \n tab \t é 🤖',
        {"nested": [True, {"deep": None}], "": 0},
        [],
        {},
    ]
    await store.set("k", {"messages": ["first"], "other": {"kept": True}})
    assert await store.append("k", items) == 1 + len(items)
    assert await store.get("k") == {"messages": ["first", *items], "other": {"kept": True}}


@pytest.mark.parametrize("field", ['say "hi"', "back\\slash", "new\nline", "a.b[0]", "é 🤖", "$"])
async def test_any_field_name_appends_to_that_field(store, field):
    await store.set("k", {field: [0], "messages": ["untouched"]})
    assert await store.append("k", [1, 2], field=field) == 3
    assert await store.get("k") == {field: [0, 1, 2], "messages": ["untouched"]}


async def test_more_items_than_one_statement_takes(store):
    await store.append("k", ["start"])
    many = list(range(MAX_ITEMS * 2 + 1))
    assert await store.append("k", many) == 1 + len(many)
    assert await store.get("k") == {"messages": ["start", *many]}


async def test_the_record_keeps_its_creation_and_expiry_and_gets_a_new_version(store, clock):
    await store.append("k", [1], ttl=100)
    before = await store.get_record("k")
    clock.advance(10)
    assert await store.append("k", [2]) == 2
    after = await store.get_record("k")
    assert before is not None and after is not None
    assert after.version != before.version
    assert after.created_at == before.created_at
    assert (after.updated_at - before.updated_at).total_seconds() == pytest.approx(10, abs=0.01)
    assert after.expires_at == before.expires_at
    clock.advance(10)
    assert await store.append("k", [3], ttl=500) == 3  # a ttl renews the expiry
    renewed = await store.get_record("k")
    assert renewed is not None and renewed.expires_at is not None
    assert renewed.expires_at.timestamp() == pytest.approx(clock() + 500, abs=0.01)


async def test_an_expired_record_is_created_anew(store, clock):
    await store.append("k", ["old"], ttl=5)
    old = await store.get_record("k")
    clock.advance(6)
    assert await store.append("k", ["new"]) == 1
    new = await store.get_record("k")
    assert old is not None and new is not None
    assert new.value == {"messages": ["new"]}
    assert new.created_at > old.created_at
    assert new.expires_at is None  # the store has no default ttl


async def test_a_field_that_is_not_a_list_is_left_as_it_was(store):
    await store.set("k", {"messages": {"not": "a list"}})
    before = await store.get_record("k")
    with pytest.raises(InvalidValueError):
        await store.append("k", [1])
    after = await store.get_record("k")
    assert before is not None and after is not None
    assert after.value == {"messages": {"not": "a list"}}
    assert after.version == before.version


async def test_a_trimmed_append_keeps_the_latest_items(store):
    await store.append("k", [1, 2, 3])
    assert await store.append("k", [4, 5], max_items=3) == 3
    assert await store.get("k") == {"messages": [3, 4, 5]}
