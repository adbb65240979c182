"""Tables made by an earlier version's SQL: no ``version`` column, no functions.

Such a table still serves ``get``/``set``/``delete`` and listings. ``set`` finds the set
function missing, checks that the column is missing too, and then upserts rows the old way
for :data:`RECHECK_SECONDS` before it looks for the functions again (so an upgrade is
picked up without a restart). The versioned operations raise SchemaMismatchError naming
the SQL that upgrades the table.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from ...exceptions import SchemaMismatchError
from .errors import MISSING_FUNCTION
from .functions import Items
from .queries import timestamp

__all__ = ["RECHECK_SECONDS", "EarlierTable", "Run"]

#: A store that found a table of the earlier SQL writes the old way this long before it
#: looks for the functions again.
RECHECK_SECONDS = 60.0

#: Executes the request that the callable builds on the table, to ``action`` (for error
#: messages); returns the APIResponse.
Run = Callable[[str, Callable[[Any], Any]], Awaitable[Any]]


class EarlierTable:
    """Whether one store's table is of the earlier SQL, and writing it the old way."""

    def __init__(self, run: Run, prefix: str) -> None:
        self._run = run
        self._prefix = prefix
        #: Until when (time.monotonic()) ``set`` writes without versions.
        self._until = 0.0

    @property
    def in_use(self) -> bool:
        """Whether ``set`` writes the old way now."""
        return time.monotonic() < self._until

    async def found(self, error: SchemaMismatchError) -> bool:
        """Whether ``error``, raised by the set function, means the table is of the
        earlier SQL; if so, ``set`` writes the old way for :data:`RECHECK_SECONDS`."""
        missing_function = getattr(error.__cause__, "code", "") == MISSING_FUNCTION
        if not missing_function or not await self._lacks_versions():
            return False
        self._until = time.monotonic() + RECHECK_SECONDS
        return True

    async def _lacks_versions(self) -> bool:
        """Whether the table has no ``version`` column. (A table with the column but
        without the functions must not be written the old way: the versions would not
        change and conditional writes would miss those writes.)"""
        try:
            await self._run("read", lambda table: table.select("version").limit(0))
        except SchemaMismatchError:
            await self._run("read", lambda table: table.select("key,data").limit(0))
            return True
        return False

    async def upsert(self, items: Items, now: float, expires_at: str | None) -> None:
        """The earlier plain upsert of ``items``."""
        from postgrest.types import ReturnMethod

        rows = [
            {
                "key": self._prefix + key,
                "data": value,
                "updated_at": timestamp(now),
                "expires_at": expires_at,
            }
            for key, value, _ in items
        ]
        body: Any = rows[0] if len(rows) == 1 else rows
        await self._run(
            "write",
            lambda table: table.upsert(body, on_conflict="key", returning=ReturnMethod.minimal),
        )
