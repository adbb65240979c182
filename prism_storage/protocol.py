"""The storage protocol from the specification."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__all__ = ["MemoryProvider"]


@runtime_checkable
class MemoryProvider(Protocol):
    """The minimal contract of an agent-data store: JSON dicts by string key."""

    async def get(self, key: str) -> dict[str, Any] | None: ...

    async def set(self, key: str, value: dict[str, Any]) -> None: ...

    async def delete(self, key: str) -> None: ...
