"""LlamaIndex's key-value store and chat store over any prism store.

:class:`PrismKVStore` is a ``BaseKVStore`` (what LlamaIndex's document, index and graph
stores persist through) and :class:`PrismChatStore` a ``BaseChatStore`` (what its chat
memories persist through). Either takes a store instance or an alias of ``PRISM_STORAGE``.

Several workers may serve one conversation: ``add_message`` is one atomic ``append`` of
the store and ``delete_last_message`` one atomic ``pop``, so no message is lost and none
is handed out twice. A store without atomic lists raises ``UnsupportedOperationError``
there instead of falling back to a read and a write.

Needs the ``llama-index`` extra (``llama-index-core``); importing ``prism_storage`` does
not import LlamaIndex, only importing this module does.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any, TypeVar

from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.llms import ChatMessage
from llama_index.core.storage.chat_store.base import BaseChatStore
from llama_index.core.storage.kvstore.types import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_COLLECTION,
    BaseKVStore,
)

from ..backends.base import BaseStorageBackend
from ..backends.versions import DEFAULT_UPDATE_ATTEMPTS
from ..exceptions import UnsupportedOperationError, VersionConflictError
from ..sync import SyncStore

__all__ = ["PrismChatStore", "PrismKVStore", "decode_segment", "encode_segment"]

T = TypeVar("T")

#: The list field of a conversation's record that holds its messages.
MESSAGES_FIELD = "messages"
#: How many pairs ``put_all`` writes per ``set_many`` when LlamaIndex passes its default
#: batch size of 1 (one write per pair would be one round trip per pair).
PUT_ALL_CHUNK = 500
#: How many keys ``get_all`` lists and reads per round trip.
READ_CHUNK = 500

# What a key segment must not hold as is: the separator, the escape character itself, and
# the control characters no store key may contain.
_SPECIAL = re.compile("[%/\x00-\x1f\x7f-\x9f]")
_ESCAPED = re.compile("%([0-9A-F]{2})")


def encode_segment(text: str) -> str:
    """``text`` with ``%``, ``/`` and control characters written as ``%XX``: a segment
    of a store key that never contains the separator, so the keys of collection ``"a"``
    never start with the prefix of collection ``"ab"`` or ``"a/b"``."""
    return _SPECIAL.sub(lambda match: f"%{ord(match.group()):02X}", text)


def decode_segment(segment: str) -> str:
    """The text :func:`encode_segment` encoded (every ``%`` in a segment is an escape)."""
    return _ESCAPED.sub(lambda match: chr(int(match.group(1), 16)), segment)


def _plain(value: Any) -> Any:
    """``value`` with enum members replaced by their values and tuples by lists.

    LlamaIndex's document store puts ``ObjectType`` members (a ``str`` enum) in the dicts
    it writes; its own stores serialize with ``json.dumps``, which writes them as their
    values, and the store's codec accepts only plain JSON types. Anything else is left
    for the codec to refuse with the path of the offending value.
    """
    if isinstance(value, Enum):
        return _plain(value.value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


class _StoreRef:
    """A store given as an instance, or an alias looked up in ``storages`` on every use
    (so a reset of the setting, as in tests, is seen)."""

    def __init__(self, store: BaseStorageBackend | str) -> None:
        if not isinstance(store, BaseStorageBackend | str):
            raise TypeError("store must be a prism store or an alias of PRISM_STORAGE.")
        self._store = store

    @property
    def store(self) -> BaseStorageBackend:
        if isinstance(self._store, str):
            from ..handler import storages

            return storages[self._store]
        return self._store

    def run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run the coroutine function ``fn`` from sync code, as :class:`SyncStore` runs a
        store method (one short-lived loop per call, the store's clients closed with it)."""
        return SyncStore(self.store)._call(fn, *args)

    def __repr__(self) -> str:
        return repr(self._store)


async def _list_keys(store: BaseStorageBackend, prefix: str, what: str) -> list[str]:
    if not store.supports_listing:
        raise UnsupportedOperationError(
            f"{what} needs to list keys, and the {store.backend_name!r} backend cannot "
            "(supports_listing is false)."
        )
    return [key async for key in store.iter_keys(prefix, page_size=READ_CHUNK)]


def _require_conditional_writes(store: BaseStorageBackend, what: str) -> None:
    # A plain read and write could drop a message another worker adds in between.
    if not store.supports_conditional_writes:
        raise UnsupportedOperationError(
            f"{what} writes only at the version it read, and the {store.backend_name!r} "
            "backend cannot (supports_conditional_writes is false)."
        )


class PrismKVStore(BaseKVStore):
    """LlamaIndex's key-value store over a prism store.

    A pair ``(collection, key)`` is stored under ``"{namespace}/{collection}/{key}"``,
    each segment encoded by :func:`encode_segment`. ``get_all`` lists the collection's
    keys, so it needs a store with ``supports_listing``.

    :param store: a prism store, or the alias of one in ``PRISM_STORAGE``.
    :param namespace: the first segment of every key (several indexes can share a store).
    :param ttl: expiry in seconds of every write; ``None``: the store's default.
    """

    def __init__(
        self,
        store: BaseStorageBackend | str,
        *,
        namespace: str = "llama_index",
        ttl: float | None = None,
    ) -> None:
        if not isinstance(namespace, str) or not namespace:
            raise ValueError("namespace must be a non-empty str.")
        self._ref = _StoreRef(store)
        self.namespace = namespace
        self.ttl = ttl

    def __repr__(self) -> str:
        return f"<PrismKVStore {self._ref!r} namespace={self.namespace!r}>"

    @property
    def store(self) -> BaseStorageBackend:
        return self._ref.store

    def _prefix(self, collection: str) -> str:
        return f"{encode_segment(self.namespace)}/{encode_segment(collection)}/"

    def _key(self, key: str, collection: str) -> str:
        return self._prefix(collection) + encode_segment(key)

    # ------------------------------------------------------------------ async

    async def aput(
        self, key: str, val: dict[str, Any], collection: str = DEFAULT_COLLECTION
    ) -> None:
        await self.store.set(self._key(key, collection), _plain(val), ttl=self.ttl)

    async def aput_all(
        self,
        kv_pairs: list[tuple[str, dict[str, Any]]],
        collection: str = DEFAULT_COLLECTION,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        """Write the pairs with ``set_many``, ``batch_size`` pairs a call (LlamaIndex's
        default of 1 means :data:`PUT_ALL_CHUNK`). A key given twice keeps its last value."""
        chunk = batch_size if batch_size > 1 else PUT_ALL_CHUNK
        pairs = list(kv_pairs)
        store = self.store
        for start in range(0, len(pairs), chunk):
            mapping = {self._key(k, collection): _plain(v) for k, v in pairs[start : start + chunk]}
            await store.set_many(mapping, ttl=self.ttl)

    async def aget(self, key: str, collection: str = DEFAULT_COLLECTION) -> dict[str, Any] | None:
        return await self.store.get(self._key(key, collection))

    async def aget_all(self, collection: str = DEFAULT_COLLECTION) -> dict[str, dict[str, Any]]:
        """Every pair of ``collection``: lists its keys, then reads them in batches."""
        store = self.store
        prefix = self._prefix(collection)
        keys = await _list_keys(store, prefix, "PrismKVStore.get_all")
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(keys), READ_CHUNK):
            values = await store.get_many(keys[start : start + READ_CHUNK])
            for stored_key, value in values.items():
                found[decode_segment(stored_key[len(prefix) :])] = value
        return found

    async def adelete(self, key: str, collection: str = DEFAULT_COLLECTION) -> bool:
        """Delete the pair; whether it was there (one atomic call where the store keeps
        versions, else a check and a delete)."""
        store = self.store
        stored_key = self._key(key, collection)
        if store.supports_versions:
            return await store.remove(stored_key)
        existed = await store.exists(stored_key)
        await store.delete(stored_key)
        return existed

    # ------------------------------------------------------------------- sync

    def put(self, key: str, val: dict[str, Any], collection: str = DEFAULT_COLLECTION) -> None:
        self._ref.run(self.aput, key, val, collection)

    def put_all(
        self,
        kv_pairs: list[tuple[str, dict[str, Any]]],
        collection: str = DEFAULT_COLLECTION,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        self._ref.run(self.aput_all, kv_pairs, collection, batch_size)

    def get(self, key: str, collection: str = DEFAULT_COLLECTION) -> dict[str, Any] | None:
        return self._ref.run(self.aget, key, collection)

    def get_all(self, collection: str = DEFAULT_COLLECTION) -> dict[str, dict[str, Any]]:
        return self._ref.run(self.aget_all, collection)

    def delete(self, key: str, collection: str = DEFAULT_COLLECTION) -> bool:
        return self._ref.run(self.adelete, key, collection)


def _dump(message: ChatMessage) -> dict[str, Any]:
    # JSON mode: the role as its string, image bytes as base64; model_validate reads both.
    return message.model_dump(mode="json")


def _load(data: Any) -> ChatMessage:
    return ChatMessage.model_validate(data)


def _messages_of(value: dict[str, Any] | None) -> list[Any]:
    if value is None:
        return []
    items = value.get(MESSAGES_FIELD)
    return items if isinstance(items, list) else []


class PrismChatStore(BaseChatStore):
    """LlamaIndex's chat store over a prism store: one record per conversation,
    ``{"messages": [ChatMessage.model_dump(mode="json"), ...]}``, under
    ``"{namespace}/{key}"`` (segments encoded by :func:`encode_segment`).

    ``add_message`` is one atomic ``append`` and ``delete_last_message`` one atomic
    ``pop`` (``supports_atomic_lists``); ``delete_message`` and ``delete_messages`` write
    only if the conversation is still at the version they read, and start again when it
    is not (``supports_conditional_writes``); ``get_keys`` lists keys
    (``supports_listing``). A store without the capability raises
    ``UnsupportedOperationError``.

    :param store: a prism store, or the alias of one in ``PRISM_STORAGE``.
    :param namespace: the first segment of every key.
    :param ttl: expiry in seconds of a conversation, reset by every write; ``None``: the
        store's default for a new conversation, an existing one keeps its own.
    :param max_messages: keep only the latest ``max_messages`` on ``add_message``.
    """

    namespace: str = "llama_index_chat"
    ttl: float | None = None
    max_messages: int | None = None

    _ref: _StoreRef = PrivateAttr()

    def __init__(self, store: BaseStorageBackend | str, **data: Any) -> None:
        super().__init__(**data)
        if not self.namespace:
            raise ValueError("namespace must be a non-empty str.")
        self._ref = _StoreRef(store)

    @classmethod
    def class_name(cls) -> str:
        return "PrismChatStore"

    @property
    def store(self) -> BaseStorageBackend:
        return self._ref.store

    def _prefix(self) -> str:
        return f"{encode_segment(self.namespace)}/"

    def _key(self, key: str) -> str:
        return self._prefix() + encode_segment(key)

    # ------------------------------------------------------------------ async

    async def aset_messages(self, key: str, messages: list[ChatMessage]) -> None:
        value = {MESSAGES_FIELD: [_dump(m) for m in messages]}
        await self.store.set(self._key(key), value, ttl=self.ttl)

    async def aget_messages(self, key: str) -> list[ChatMessage]:
        value = await self.store.get(self._key(key))
        return [_load(item) for item in _messages_of(value)]

    async def async_add_message(self, key: str, message: ChatMessage) -> None:
        await self.store.append(
            self._key(key),
            [_dump(message)],
            field=MESSAGES_FIELD,
            max_items=self.max_messages,
            ttl=self.ttl,
        )

    async def adelete_messages(self, key: str) -> list[ChatMessage] | None:
        """Delete the conversation and return its messages (``None`` if there was none).
        The record is removed only at the version read, so a message added meanwhile is
        either returned or kept, never dropped unseen."""
        store = self.store
        stored_key = self._key(key)
        _require_conditional_writes(store, "PrismChatStore.delete_messages")
        conflict: VersionConflictError | None = None
        for _ in range(DEFAULT_UPDATE_ATTEMPTS):
            record = await store.get_record(stored_key)
            if record is None:
                return None
            try:
                await store.remove(stored_key, if_version=record.version)
            except VersionConflictError as exc:
                conflict = exc
                continue
            return [_load(item) for item in _messages_of(record.value)]
        assert conflict is not None
        raise conflict

    async def adelete_message(self, key: str, idx: int) -> ChatMessage | None:
        """Delete the message at ``idx`` (negative counts from the end) and return it;
        ``None`` (and nothing written) when there is no such message. The list is
        written back only at the version read, retrying on conflict."""
        store = self.store
        stored_key = self._key(key)
        _require_conditional_writes(store, "PrismChatStore.delete_message")
        conflict: VersionConflictError | None = None
        for _ in range(DEFAULT_UPDATE_ATTEMPTS):
            record = await store.get_record(stored_key)
            items = _messages_of(None if record is None else record.value)
            if record is None or not -len(items) <= idx < len(items):
                return None
            removed = items.pop(idx)
            try:
                await store.put(
                    stored_key,
                    {**record.value, MESSAGES_FIELD: items},
                    ttl=self.ttl,
                    if_version=record.version,
                )
            except VersionConflictError as exc:
                conflict = exc
                continue
            return _load(removed)
        assert conflict is not None
        raise conflict

    async def adelete_last_message(self, key: str) -> ChatMessage | None:
        item = await self.store.pop(self._key(key), field=MESSAGES_FIELD)
        return None if item is None else _load(item)

    async def aget_keys(self) -> list[str]:
        prefix = self._prefix()
        keys = await _list_keys(self.store, prefix, "PrismChatStore.get_keys")
        return [decode_segment(key[len(prefix) :]) for key in keys]

    # ------------------------------------------------------------------- sync

    def set_messages(self, key: str, messages: list[ChatMessage]) -> None:
        self._ref.run(self.aset_messages, key, messages)

    def get_messages(self, key: str) -> list[ChatMessage]:
        return self._ref.run(self.aget_messages, key)

    def add_message(self, key: str, message: ChatMessage) -> None:
        self._ref.run(self.async_add_message, key, message)

    def delete_messages(self, key: str) -> list[ChatMessage] | None:
        return self._ref.run(self.adelete_messages, key)

    def delete_message(self, key: str, idx: int) -> ChatMessage | None:
        return self._ref.run(self.adelete_message, key, idx)

    def delete_last_message(self, key: str) -> ChatMessage | None:
        return self._ref.run(self.adelete_last_message, key)

    def get_keys(self) -> list[str]:
        return self._ref.run(self.aget_keys)
