"""An OpenAI Agents SDK session kept in a prism store.

Install with ``pip install prism-storage[openai-agents]``, then hand a
:class:`PrismSession` to ``Runner.run(agent, input, session=...)``. It implements the
SDK's ``Session`` protocol over any prism store whose ``supports_atomic_lists`` is true
(others raise ``UnsupportedOperationError`` on the first write).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agents.memory import SessionSettings
from agents.memory.session_settings import resolve_session_limit

from ..backends.base import BaseStorageBackend
from ..exceptions import InvalidValueError
from .stores import check_prefix, resolve_store

if TYPE_CHECKING:
    from agents.items import TResponseInputItem

__all__ = ["ITEMS_FIELD", "PrismSession"]

#: The list field of the session's record that holds its items.
ITEMS_FIELD = "items"


class PrismSession:
    """The items of one agent conversation, as one record of a prism store.

    The record ``{key_prefix}{session_id}`` holds ``{"items": [...]}`` in the order the
    SDK added them. ``add_items`` is one atomic ``append`` and ``pop_item`` one atomic
    ``pop`` of the store, so two workers serving one conversation lose no item and never
    take the same one. ``ttl`` (seconds) is the session's expiry, renewed on every
    addition; ``max_items`` keeps only the latest items. ``session_settings.limit`` is the
    default ``limit`` of ``get_items``, as in the SDK's own sessions.
    """

    session_settings: SessionSettings | None = None

    def __init__(
        self,
        session_id: str,
        store: BaseStorageBackend | str,
        *,
        key_prefix: str = "agents:",
        ttl: float | None = None,
        max_items: int | None = None,
        session_settings: SessionSettings | dict[str, Any] | None = None,
    ) -> None:
        if type(session_id) is not str or not session_id:
            raise InvalidValueError("session_id must be a non-empty str.")
        if max_items is not None and (type(max_items) is not int or max_items < 1):
            raise InvalidValueError("max_items must be a positive int.")
        self.session_id = session_id
        self.store = resolve_store(store)
        self.key = check_prefix(key_prefix) + session_id
        self.ttl = ttl
        self.max_items = max_items
        if isinstance(session_settings, dict):
            session_settings = SessionSettings(**session_settings)
        self.session_settings = session_settings or SessionSettings()

    def __repr__(self) -> str:
        return f"<PrismSession {self.key!r} in {self.store!r}>"

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """The session's items in chronological order; with ``limit``, the latest
        ``limit`` of them (``0``: none)."""
        limit = resolve_session_limit(limit, self.session_settings)
        value = await self.store.get(self.key)
        items: list[TResponseInputItem] = [] if value is None else value.get(ITEMS_FIELD) or []
        if limit is None or limit < 0:
            # A negative limit means "all", as in the SDK's SQLiteSession.
            return items
        return items[-limit:] if limit else []

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """Add ``items`` at the end, all of them or none, in one atomic operation."""
        if items:
            await self.store.append(
                self.key, list(items), field=ITEMS_FIELD, max_items=self.max_items, ttl=self.ttl
            )

    async def pop_item(self) -> TResponseInputItem | None:
        """Remove and return the latest item (``None`` when there is none); no item is
        ever returned to two callers."""
        item: TResponseInputItem | None = await self.store.pop(self.key, field=ITEMS_FIELD)
        return item

    async def clear_session(self) -> None:
        await self.store.delete(self.key)
