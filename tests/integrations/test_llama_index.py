"""LlamaIndex's key-value store and chat store over the memory, file and orm stores."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
from asgiref.sync import async_to_sync, sync_to_async

pytest.importorskip("llama_index.core")

from llama_index.core.llms import ChatMessage, ImageBlock, MessageRole, TextBlock
from llama_index.core.memory import ChatMemoryBuffer
from llama_index.core.schema import Document
from llama_index.core.storage.docstore.keyval_docstore import KVDocumentStore

from prism_storage import (
    FileStorageBackend,
    MemoryStorageBackend,
    ORMStorageBackend,
    UnsupportedOperationError,
)
from prism_storage.backends.protocol_adapter import ProtocolAdapter
from prism_storage.integrations.llama_index import (
    PrismChatStore,
    PrismKVStore,
    decode_segment,
    encode_segment,
)

orm_db = pytest.mark.django_db(transaction=True, databases=["default"])
STORES = ["memory", "file", pytest.param("orm", marks=orm_db)]


def make_store(kind, request, tmp_path):
    if kind == "memory":
        return MemoryStorageBackend()
    if kind == "file":
        return FileStorageBackend(data_dir=tmp_path / "store")
    request.getfixturevalue("close_db_connections")
    return ORMStorageBackend(namespace="llama", using="default")


@pytest.fixture(params=STORES)
def store(request, tmp_path):
    return make_store(request.param, request, tmp_path)


@pytest.fixture(params=STORES)
def list_store(request, tmp_path):
    """A store with atomic append and pop (the orm store once it has them)."""
    store = make_store(request.param, request, tmp_path)
    if not store.supports_atomic_lists:
        pytest.skip(f"the {store.backend_name} store has no atomic lists on this branch")
    return store


class DictProvider:
    """A store implementing only the protocol: no listing, no atomic lists."""

    def __init__(self):
        self.data = {}

    async def get(self, key):
        return self.data.get(key)

    async def set(self, key, value):
        self.data[key] = value

    async def delete(self, key):
        self.data.pop(key, None)


def msg(text, role=MessageRole.USER):
    return ChatMessage(role=role, content=text)


def texts(messages):
    return [m.content for m in messages]


# ------------------------------------------------------------------ key encoding

TRICKY = ["a", "ab", "a/b", "a%2Fb", "a%", "", "/", "%", "é ü 漢", "tab\there", "a b"]


def test_segments_round_trip_and_never_hold_the_separator():
    for text in TRICKY:
        segment = encode_segment(text)
        assert "/" not in segment
        assert decode_segment(segment) == text
    assert len({encode_segment(t) for t in TRICKY}) == len(TRICKY)


# ------------------------------------------------------------------ key-value store


async def test_kv_put_get_delete(store):
    kv = PrismKVStore(store)
    assert await kv.aget("doc") is None
    await kv.aput("doc", {"text": "hello", "n": 1})
    assert await kv.aget("doc") == {"text": "hello", "n": 1}
    await kv.aput("doc", {"text": "again"})
    assert await kv.aget("doc") == {"text": "again"}
    assert await kv.adelete("doc") is True
    assert await kv.adelete("doc") is False
    assert await kv.aget("doc") is None


async def test_kv_collections_never_see_each_others_keys(store):
    kv = PrismKVStore(store)
    for collection in TRICKY:
        await kv.aput_all(
            [(f"{collection}|k", {"c": collection}), ("a/key", {"c": collection, "x": 1})],
            collection=collection,
        )
    for collection in TRICKY:
        assert await kv.aget_all(collection) == {
            f"{collection}|k": {"c": collection},
            "a/key": {"c": collection, "x": 1},
        }
        assert await kv.aget("a/key", collection=collection) == {"c": collection, "x": 1}
    assert await kv.adelete("a/key", collection="a")
    assert await kv.aget_all("a") == {"a|k": {"c": "a"}}
    assert await kv.aget("a/key", collection="ab") == {"c": "ab", "x": 1}
    assert await kv.aget_all("never-written") == {}


async def test_kv_namespaces_are_apart(store):
    one, two = PrismKVStore(store, namespace="one"), PrismKVStore(store, namespace="one/two")
    await one.aput("k", {"v": 1}, collection="two")
    await two.aput("k", {"v": 2})
    assert await one.aget_all("two") == {"k": {"v": 1}}
    assert await two.aget_all() == {"k": {"v": 2}}


async def test_kv_put_all_in_batches_keeps_the_last_value(store):
    kv = PrismKVStore(store)
    pairs = [(f"k{i}", {"i": i}) for i in range(7)] + [("k0", {"i": "last"})]
    await kv.aput_all(pairs, collection="c", batch_size=3)
    expected = {f"k{i}": {"i": i} for i in range(1, 7)} | {"k0": {"i": "last"}}
    assert await kv.aget_all("c") == expected


def test_kv_sync_methods_from_sync_code(tmp_path):
    kv = PrismKVStore(FileStorageBackend(data_dir=tmp_path / "store"))
    kv.put("a", {"v": 1}, collection="x")
    kv.put_all([("b", {"v": 2}), ("c", {"v": 3})], collection="x")
    assert kv.get("a", collection="x") == {"v": 1}
    assert kv.get_all("x") == {"a": {"v": 1}, "b": {"v": 2}, "c": {"v": 3}}
    assert kv.delete("b", collection="x") is True
    assert kv.get_all("x") == {"a": {"v": 1}, "c": {"v": 3}}


def test_kv_by_alias(settings):
    settings.PRISM_STORAGE = {"kv": {"BACKEND": "memory"}}
    kv = PrismKVStore("kv")
    kv.put("a", {"v": 1})
    from prism_storage import storages

    assert async_to_sync(storages["kv"].get)("llama_index/data/a") == {"v": 1}


async def test_kv_get_all_needs_listing():
    kv = PrismKVStore(ProtocolAdapter(DictProvider()))
    await kv.aput("a", {"v": 1})
    assert await kv.aget("a") == {"v": 1}
    assert await kv.adelete("a") is True
    assert await kv.adelete("a") is False
    with pytest.raises(UnsupportedOperationError, match=r"get_all needs to list keys"):
        await kv.aget_all()


async def test_llama_index_docstore_plugs_in(store):
    docstore = KVDocumentStore(PrismKVStore(store), namespace="docs")
    documents = [Document(text="one", id_="d/1"), Document(text="two", id_="d2")]
    await docstore.async_add_documents(documents)
    assert (await docstore.aget_document("d/1")).text == "one"
    assert await docstore.adocument_exists("d2")
    await docstore.adelete_document("d2")
    assert not await docstore.adocument_exists("d2")
    assert (await docstore.aget_document("d/1")).text == "one"


def test_llama_index_docstore_sync_api(tmp_path):
    docstore = KVDocumentStore(PrismKVStore(FileStorageBackend(data_dir=tmp_path / "store")))
    docstore.add_documents([Document(text="one", id_="d1"), Document(text="two", id_="d2")])
    assert {doc_id: node.text for doc_id, node in docstore.docs.items()} == {
        "d1": "one",
        "d2": "two",
    }


# ------------------------------------------------------------------ chat store


async def test_chat_store_methods(list_store):
    chat = PrismChatStore(list_store)
    assert await chat.aget_messages("s") == []
    assert await chat.adelete_last_message("s") is None
    await chat.aset_messages("s", [msg("a"), msg("b", MessageRole.ASSISTANT)])
    await chat.async_add_message("s", msg("c"))
    got = await chat.aget_messages("s")
    assert texts(got) == ["a", "b", "c"]
    assert got[1].role is MessageRole.ASSISTANT
    assert (await chat.adelete_message("s", 1)).content == "b"
    assert await chat.adelete_message("s", 5) is None
    assert await chat.adelete_message("absent", 0) is None
    assert texts(await chat.aget_messages("s")) == ["a", "c"]
    assert (await chat.adelete_message("s", -1)).content == "c"
    await chat.async_add_message("other/key", msg("x"))
    assert sorted(await chat.aget_keys()) == ["other/key", "s"]
    assert (await chat.adelete_last_message("s")).content == "a"
    assert await chat.adelete_last_message("s") is None
    assert texts(await chat.adelete_messages("other/key")) == ["x"]
    assert await chat.adelete_messages("other/key") is None
    assert await chat.aget_keys() == ["s"]


async def test_chat_messages_round_trip_with_blocks(list_store):
    chat = PrismChatStore(list_store)
    rich = ChatMessage(
        role=MessageRole.USER,
        blocks=[TextBlock(text="look"), ImageBlock(image=b"\x89PNG", image_mimetype="image/png")],
        additional_kwargs={"tool": {"n": 1}},
    )
    await chat.async_add_message("s", rich)
    await chat.async_add_message("s", msg("plain"))
    assert await chat.aget_messages("s") == [rich, msg("plain")]
    assert await chat.adelete_last_message("s") == msg("plain")
    assert await chat.adelete_last_message("s") == rich


async def test_chat_keys_are_apart_from_other_namespaces(list_store):
    one = PrismChatStore(list_store, namespace="one")
    two = PrismChatStore(list_store, namespace="one/two")
    await one.async_add_message("k", msg("1"))
    await two.async_add_message("k", msg("2"))
    assert await one.aget_keys() == ["k"]
    assert texts(await two.aget_messages("k")) == ["2"]


async def test_chat_max_messages_keeps_the_latest(list_store):
    chat = PrismChatStore(list_store, max_messages=3)
    for i in range(5):
        await chat.async_add_message("s", msg(str(i)))
    assert texts(await chat.aget_messages("s")) == ["2", "3", "4"]


async def test_concurrent_adds_lose_nothing(atomic_store):
    chat = PrismChatStore(atomic_store)
    await asyncio.gather(*(chat.async_add_message("s", msg(f"m{i}")) for i in range(32)))
    assert sorted(texts(await chat.aget_messages("s"))) == sorted(f"m{i}" for i in range(32))


async def test_concurrent_delete_last_never_returns_one_message_twice(atomic_store):
    chat = PrismChatStore(atomic_store)
    await chat.aset_messages("s", [msg(f"m{i}") for i in range(20)])
    popped = await asyncio.gather(*(chat.adelete_last_message("s") for _ in range(32)))
    got = [m.content for m in popped if m is not None]
    assert sorted(got) == sorted(f"m{i}" for i in range(20))
    assert await chat.aget_messages("s") == []


async def test_concurrent_delete_message_and_adds_lose_nothing(atomic_store):
    chat = PrismChatStore(atomic_store)
    await chat.aset_messages("s", [msg(f"old{i}") for i in range(8)])
    results = await asyncio.gather(
        *(chat.adelete_message("s", 0) for _ in range(4)),
        *(chat.async_add_message("s", msg(f"new{i}")) for i in range(8)),
    )
    deleted = [m.content for m in results[:4]]
    assert len(set(deleted)) == 4
    left = texts(await chat.aget_messages("s"))
    assert sorted(left + deleted) == sorted(
        [f"old{i}" for i in range(8)] + [f"new{i}" for i in range(8)]
    )


def test_chat_sync_methods_from_sync_code(tmp_path):
    chat = PrismChatStore(FileStorageBackend(data_dir=tmp_path / "store"))
    chat.set_messages("s", [msg("a")])
    chat.add_message("s", msg("b"))
    chat.add_message("s", msg("c"))
    assert texts(chat.get_messages("s")) == ["a", "b", "c"]
    assert chat.delete_message("s", 0).content == "a"
    assert chat.delete_last_message("s").content == "c"
    assert chat.get_keys() == ["s"]
    assert texts(chat.delete_messages("s")) == ["b"]
    assert chat.get_messages("s") == []


def test_chat_store_by_alias(settings):
    settings.PRISM_STORAGE = {"chats": {"BACKEND": "memory"}}
    chat = PrismChatStore("chats", namespace="app")
    chat.add_message("u/1", msg("hi"))
    from prism_storage import storages

    stored = async_to_sync(storages["chats"].get)("app/u%2F1")
    assert stored == {"messages": [msg("hi").model_dump(mode="json")]}
    assert chat.get_keys() == ["u/1"]


async def test_sync_methods_from_a_sync_function_under_a_running_loop(tmp_path):
    # As in a sync view served by an ASGI server: the calls run on the outer loop.
    chat = PrismChatStore(FileStorageBackend(data_dir=tmp_path / "store"))

    def sync_view():
        chat.add_message("s", msg("a"))
        chat.add_message("s", msg("b"))
        return chat.get_messages("s")

    assert texts(await sync_to_async(sync_view)()) == ["a", "b"]


async def test_chat_store_without_atomic_lists_says_so():
    chat = PrismChatStore(ProtocolAdapter(DictProvider()))
    await chat.aset_messages("s", [msg("a")])
    assert texts(await chat.aget_messages("s")) == ["a"]
    with pytest.raises(UnsupportedOperationError, match="append atomically"):
        await chat.async_add_message("s", msg("b"))
    with pytest.raises(UnsupportedOperationError, match="pop atomically"):
        await chat.adelete_last_message("s")
    with pytest.raises(UnsupportedOperationError, match="supports_conditional_writes"):
        await chat.adelete_message("s", 0)
    with pytest.raises(UnsupportedOperationError, match="get_keys needs to list keys"):
        await chat.aget_keys()
    assert texts(await chat.aget_messages("s")) == ["a"]


def test_chat_memory_buffer_plugs_in(tmp_path):
    chat = PrismChatStore(FileStorageBackend(data_dir=tmp_path / "store"))
    memory = ChatMemoryBuffer.from_defaults(
        chat_store=chat, chat_store_key="user-1", token_limit=1000, tokenizer_fn=str.split
    )
    memory.put(msg("hello"))
    memory.put(msg("hi there", MessageRole.ASSISTANT))
    assert texts(memory.get()) == ["hello", "hi there"]
    # A second buffer over the same store sees the same conversation.
    again = ChatMemoryBuffer.from_defaults(
        chat_store=chat, chat_store_key="user-1", token_limit=1000, tokenizer_fn=str.split
    )
    assert texts(again.get_all()) == ["hello", "hi there"]
    assert chat.get_keys() == ["user-1"]
    again.reset()
    assert memory.get_all() == []


async def test_chat_memory_buffer_async_plugs_in(list_store):
    chat = PrismChatStore(list_store)
    memory = ChatMemoryBuffer.from_defaults(
        chat_store=chat, chat_store_key="u", token_limit=1000, tokenizer_fn=str.split
    )
    await asyncio.gather(*(memory.aput(msg(f"m{i}")) for i in range(8)))
    assert sorted(texts(await memory.aget_all())) == sorted(f"m{i}" for i in range(8))


def test_importing_prism_storage_does_not_import_llama_index():
    code = (
        "import sys, prism_storage, prism_storage.integrations; "
        "from prism_storage import storages, SyncStore; "
        "assert not any(m.startswith('llama_index') for m in sys.modules), 'imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
