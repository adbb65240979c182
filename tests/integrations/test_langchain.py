"""The LangChain adapter: LangChain's own standard store suites on memory, file, orm
(SQLite) and redis stores, and the chat history's atomic additions."""

from __future__ import annotations

import asyncio
import threading

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, messages_to_dict
from langchain_tests.integration_tests import BaseStoreAsyncTests, BaseStoreSyncTests

from prism_storage import MemoryStorageBackend, UnsupportedOperationError
from prism_storage.integrations.langchain import PrismChatMessageHistory, PrismStore
from tests.support.minimal_backend import MinimalBackend

from .conftest import ORM_DB, close_store, new_store, unique

THREE_VALUES = ({"text": "foo", "n": 1}, {"items": [1, 2, {"x": None}]}, {"nested": {"a": True}})


# ------------------------------------------------------------- LangChain's standard suites


class SyncSuite(BaseStoreSyncTests[dict]):
    kind: str

    @pytest.fixture
    def three_values(self):
        return THREE_VALUES

    @pytest.fixture
    def kv_store(self, request, tmp_path):
        # The sync facade closes the store's clients after each call: nothing to close.
        return PrismStore(new_store(self.kind, request, tmp_path))


class AsyncSuite(BaseStoreAsyncTests[dict]):
    kind: str

    @pytest.fixture
    def three_values(self):
        return THREE_VALUES

    @pytest.fixture
    async def kv_store(self, request, tmp_path):
        store = new_store(self.kind, request, tmp_path)
        yield PrismStore(store)
        await close_store(store)


class TestSyncStoreOnMemory(SyncSuite):
    kind = "memory"


class TestAsyncStoreOnMemory(AsyncSuite):
    kind = "memory"


class TestSyncStoreOnFile(SyncSuite):
    kind = "file"


class TestAsyncStoreOnFile(AsyncSuite):
    kind = "file"


@ORM_DB
class TestSyncStoreOnORM(SyncSuite):
    kind = "orm"


@ORM_DB
class TestAsyncStoreOnORM(AsyncSuite):
    kind = "orm"


class TestSyncStoreOnRedis(SyncSuite):
    kind = "redis"


class TestAsyncStoreOnRedis(AsyncSuite):
    kind = "redis"


# ------------------------------------------------------------------------- the store


async def test_key_prefix_separates_stores_sharing_one_prism_store(prism_store):
    first = PrismStore(prism_store, key_prefix="one:")
    second = PrismStore(prism_store, key_prefix="two:")
    await first.amset([("a", {"v": 1}), ("ab", {"v": 2})])
    await second.amset([("a", {"v": 3})])
    assert await first.amget(["a", "ab", "missing"]) == [{"v": 1}, {"v": 2}, None]
    assert await second.amget(["a", "ab"]) == [{"v": 3}, None]
    assert sorted([k async for k in first.ayield_keys()]) == ["a", "ab"]
    assert [k async for k in first.ayield_keys(prefix="ab")] == ["ab"]
    assert [k async for k in second.ayield_keys()] == ["a"]
    assert await prism_store.get("one:ab") == {"v": 2}


def test_an_alias_names_the_store(settings):
    settings.PRISM_STORAGE = {"chat": {"BACKEND": "memory", "OPTIONS": {"name": unique("a")}}}
    store = PrismStore("chat", key_prefix="lc:")
    store.mset([("k", {"v": 1})])
    assert store.mget(["k"]) == [{"v": 1}]
    history = PrismChatMessageHistory("s1", "chat")
    history.add_user_message("hi")
    assert [m.content for m in history.messages] == ["hi"]


def test_listing_needs_a_store_that_lists():
    store = PrismStore(MinimalBackend(unique("minimal")))
    store.mset([("k", {"v": 1})])
    assert store.mget(["k", "x"]) == [{"v": 1}, None]
    with pytest.raises(UnsupportedOperationError, match="cannot list"):
        list(store.yield_keys())


# ------------------------------------------------------------------ the chat history


def conversation(n: int) -> list:
    return [HumanMessage(f"question {n}"), AIMessage(f"answer {n}", id=f"ai-{n}")]


def atomic(store) -> bool:
    return store.supports_atomic_lists


async def test_history_round_trip_in_langchain_form(prism_store):
    history = PrismChatMessageHistory("s1", prism_store)
    if not atomic(prism_store):
        with pytest.raises(UnsupportedOperationError, match="append atomically"):
            await history.aadd_messages(conversation(1))
        assert await history.aget_messages() == []
    else:
        messages = [SystemMessage("be brief"), *conversation(1)]
        await history.aadd_messages(messages)
        await history.aadd_messages(conversation(2))
        assert await history.aget_messages() == messages + conversation(2)
        # Stored the way LangChain itself serialises messages, under the default prefix.
        stored = await prism_store.get("chat:s1")
        assert stored == {"messages": messages_to_dict(messages + conversation(2))}
        await history.aclear()
        assert await history.aget_messages() == []
        assert await prism_store.get("chat:s1") is None


async def test_concurrent_writers_lose_no_message_and_keep_batches_together(atomic_store):
    writers = [PrismChatMessageHistory("shared", atomic_store) for _ in range(8)]
    await asyncio.gather(*(w.aadd_messages(conversation(n)) for n, w in enumerate(writers)))
    messages = await writers[0].aget_messages()
    assert len(messages) == 16
    pairs = [messages[i : i + 2] for i in range(0, 16, 2)]
    # Each call's messages are adjacent, in their order; every call is there once.
    assert sorted(p[0].content for p in pairs) == [f"question {n}" for n in range(8)]
    for question, answer in pairs:
        n = question.content.split()[-1]
        assert answer == AIMessage(f"answer {n}", id=f"ai-{n}")


async def test_max_messages_keeps_the_latest(prism_store):
    if not atomic(prism_store):
        pytest.skip("the store has no atomic lists (checked in the round-trip test)")
    history = PrismChatMessageHistory("s", prism_store, max_messages=3)
    for n in range(3):
        await history.aadd_messages(conversation(n))
    assert await history.aget_messages() == [*conversation(1)[1:], *conversation(2)]


async def test_ttl_sets_the_conversations_expiry(prism_store):
    if not atomic(prism_store) or not prism_store.supports_ttl:
        pytest.skip("the store has no atomic lists or no expiry")
    history = PrismChatMessageHistory("s", prism_store, ttl=3600)
    await history.aadd_messages(conversation(1))
    record = await prism_store.get_record("chat:s")
    assert record is not None and record.expires_at is not None
    assert abs((record.expires_at - record.updated_at).total_seconds() - 3600) < 60


@pytest.mark.parametrize("kind", ["memory", "file"])
def test_sync_writers_in_threads_lose_nothing(kind, request, tmp_path):
    """The sync methods from plain threads (each call on a loop of its own)."""
    store = new_store(kind, request, tmp_path)
    if not atomic(store):
        pytest.skip("the store has no atomic lists (checked in the round-trip test)")
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            history = PrismChatMessageHistory("threads", store)
            history.add_messages(conversation(n))
            history.add_user_message(f"more {n}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    messages = PrismChatMessageHistory("threads", store).messages
    assert len(messages) == 18
    assert sorted(m.content for m in messages if m.content.startswith("more")) == [
        f"more {n}" for n in range(6)
    ]
    PrismChatMessageHistory("threads", store).clear()
    assert PrismChatMessageHistory("threads", store).messages == []


def test_a_store_without_atomic_lists_says_so():
    history = PrismChatMessageHistory("s", MinimalBackend(unique("minimal")))
    with pytest.raises(UnsupportedOperationError, match="supports_atomic_lists is false"):
        history.add_user_message("hi")
    assert history.messages == []


@ORM_DB
def test_sync_history_on_the_orm_from_sync_code(request, tmp_path):
    store = new_store("orm", request, tmp_path)
    history = PrismChatMessageHistory("s", store)
    if not atomic(store):
        with pytest.raises(UnsupportedOperationError):
            history.add_messages(conversation(1))
    else:
        history.add_messages(conversation(1))
        assert history.messages == conversation(1)


def test_invalid_arguments_are_refused():
    store = MemoryStorageBackend(unique("m"))
    with pytest.raises(Exception, match="max_messages"):
        PrismChatMessageHistory("s", store, max_messages=0)
    with pytest.raises(Exception, match="session_id"):
        PrismChatMessageHistory("", store)
    with pytest.raises(Exception, match="prism store"):
        PrismStore(object())  # type: ignore[arg-type]
