"""LangChain on a prism store: a key-value ``BaseStore`` and a chat message history.

Install with ``pip install prism-storage[langchain]``. Both classes take a store instance
or the alias of one in ``PRISM_STORAGE``; their sync methods block through
:class:`~prism_storage.sync.SyncStore` (asgiref's ``async_to_sync``), their async ones
await the store directly.

:class:`PrismChatMessageHistory` adds messages with the store's atomic ``append``, so
several workers adding to one conversation lose nothing; it needs a store whose
``supports_atomic_lists`` is true (others raise ``UnsupportedOperationError``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import BaseMessage, messages_from_dict, messages_to_dict
from langchain_core.stores import BaseStore

from ..backends.base import BaseStorageBackend
from ..backends.versions import DEFAULT_LIST_FIELD
from ..exceptions import InvalidValueError
from ..sync import SyncStore
from .stores import check_prefix, resolve_store

__all__ = ["PrismChatMessageHistory", "PrismStore"]


class PrismStore(BaseStore[str, dict[str, Any]]):
    """A LangChain ``BaseStore`` of JSON objects kept in a prism store.

    ``key_prefix`` is put before every key, so several LangChain stores can share one
    prism store; ``yield_keys`` hands keys back without it. ``ttl`` (seconds) applies to
    every value written, on stores with ``supports_ttl``. ``yield_keys`` needs a store
    with ``supports_listing``.
    """

    def __init__(
        self,
        store: BaseStorageBackend | str,
        *,
        key_prefix: str = "",
        ttl: float | None = None,
    ) -> None:
        self.store = resolve_store(store)
        self.key_prefix = check_prefix(key_prefix)
        self.ttl = ttl
        self._sync = SyncStore(self.store)

    def __repr__(self) -> str:
        return f"<PrismStore {self.store!r} prefix={self.key_prefix!r}>"

    def _key(self, key: str) -> str:
        return self.key_prefix + key

    def _ordered(self, keys: Sequence[str], found: dict[str, dict[str, Any]]) -> list[Any]:
        return [found.get(self._key(key)) for key in keys]

    # ----------------------------------------------------------------------- sync

    def mget(self, keys: Sequence[str]) -> list[dict[str, Any] | None]:
        return self._ordered(keys, self._sync.get_many([self._key(k) for k in keys]))

    def mset(self, key_value_pairs: Sequence[tuple[str, dict[str, Any]]]) -> None:
        # One batch; a key given twice keeps its last value, as in LangChain's own stores.
        self._sync.set_many({self._key(k): v for k, v in key_value_pairs}, ttl=self.ttl)

    def mdelete(self, keys: Sequence[str]) -> None:
        self._sync.delete_many([self._key(k) for k in keys])

    def yield_keys(self, *, prefix: str | None = None) -> Iterator[str]:
        start = len(self.key_prefix)
        for key in self._sync.iter_keys(self._key(prefix or "")):
            yield key[start:]

    # ---------------------------------------------------------------------- async

    async def amget(self, keys: Sequence[str]) -> list[dict[str, Any] | None]:
        return self._ordered(keys, await self.store.get_many([self._key(k) for k in keys]))

    async def amset(self, key_value_pairs: Sequence[tuple[str, dict[str, Any]]]) -> None:
        await self.store.set_many({self._key(k): v for k, v in key_value_pairs}, ttl=self.ttl)

    async def amdelete(self, keys: Sequence[str]) -> None:
        await self.store.delete_many([self._key(k) for k in keys])

    async def ayield_keys(self, *, prefix: str | None = None) -> AsyncIterator[str]:
        start = len(self.key_prefix)
        async for key in self.store.iter_keys(self._key(prefix or "")):
            yield key[start:]


class PrismChatMessageHistory(BaseChatMessageHistory):
    """The messages of one conversation, as one record of a prism store.

    The record ``{key_prefix}{session_id}`` holds ``{"messages": [...]}``, each message
    in LangChain's own dict form (``messages_to_dict``). Adding messages is one atomic
    ``append`` of the store: concurrent writers in any number of processes lose none, and
    the messages of one call stay together. ``max_messages`` keeps only the latest ones;
    ``ttl`` (seconds) is the conversation's expiry, renewed on every addition.
    """

    def __init__(
        self,
        session_id: str,
        store: BaseStorageBackend | str,
        *,
        key_prefix: str = "chat:",
        max_messages: int | None = None,
        ttl: float | None = None,
    ) -> None:
        if type(session_id) is not str or not session_id:
            raise InvalidValueError("session_id must be a non-empty str.")
        if max_messages is not None and (type(max_messages) is not int or max_messages < 1):
            raise InvalidValueError("max_messages must be a positive int.")
        self.session_id = session_id
        self.store = resolve_store(store)
        self.key = check_prefix(key_prefix) + session_id
        self.max_messages = max_messages
        self.ttl = ttl
        self._sync = SyncStore(self.store)

    def __repr__(self) -> str:
        return f"<PrismChatMessageHistory {self.key!r} in {self.store!r}>"

    @staticmethod
    def _decode(value: dict[str, Any] | None) -> list[BaseMessage]:
        if value is None:
            return []
        return messages_from_dict(value.get(DEFAULT_LIST_FIELD) or [])

    # ----------------------------------------------------------------------- sync

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        return self._decode(self._sync.get(self.key))

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        if messages:
            self._sync.append(
                self.key, messages_to_dict(messages), max_items=self.max_messages, ttl=self.ttl
            )

    def clear(self) -> None:
        self._sync.delete(self.key)

    # ---------------------------------------------------------------------- async

    async def aget_messages(self) -> list[BaseMessage]:
        return self._decode(await self.store.get(self.key))

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        if messages:
            await self.store.append(
                self.key, messages_to_dict(messages), max_items=self.max_messages, ttl=self.ttl
            )

    async def aclear(self) -> None:
        await self.store.delete(self.key)
