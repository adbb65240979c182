"""Calling the ``supabase`` table's SQL functions through RPC: ``<table>_prism_set``,
``_put``, ``_remove``, ``_append``, ``_pop`` and ``_touch`` (see
``prism_storage/sql/supabase.sql``), each one atomic statement or row lock in the
database. :class:`TableFunctions` builds their arguments and reads their answers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ...exceptions import InvalidValueError
from ..versions import ABSENT, Condition, WriteResult, check_condition, new_version
from .queries import chunks, expiry, timestamp

__all__ = ["Call", "Items", "TableFunctions"]

#: Calls the table's function named by its suffix (``"put"``) with the arguments given,
#: to ``action`` (for error messages); returns the function's rows.
Call = Callable[[str, str, dict[str, Any]], Awaitable[Any]]
#: What ``set`` writes: (key, value, JSON text) triples.
Items = list[tuple[str, dict[str, Any], str]]


def _not_a_list(field: str, json_type: object) -> InvalidValueError:
    return InvalidValueError(
        f"The record's {field!r} field is a JSON {json_type}, not a list.", f"$.{field}"
    )


class TableFunctions:
    """The functions of one store's table. Keys are the store's: the namespace ``prefix``
    is added here; ``now`` is the store's clock, read by the caller."""

    def __init__(self, call: Call, prefix: str) -> None:
        self._call = call
        self._prefix = prefix

    async def set(self, items: Items, now: float, expires_at: str | None) -> None:
        """Upsert ``items``, each with a new version (a replaced row keeps created_at)."""
        rows = [
            {
                "key": self._prefix + key,
                "data": value,
                "version": new_version(),
                "expires_at": expires_at,
            }
            for key, value, _ in items
        ]
        await self._call("write", "set", {"p_rows": rows, "p_now": timestamp(now)})

    async def touch(
        self, keys: list[str], now: float, ttl: float | None, *, with_data: bool
    ) -> list[dict[str, Any]]:
        """The live rows among ``keys`` get the expiry ``now`` + ``ttl`` (``None``:
        never); returns those rows (with ``data`` when asked)."""
        rows: list[dict[str, Any]] = []
        for chunk in chunks([self._prefix + k for k in keys]):
            params = {
                "p_keys": chunk,
                "p_now": timestamp(now),
                "p_expires_at": expiry(now, ttl),
                "p_with_data": with_data,
            }
            rows.extend(await self._call("write", "touch", params))
        return rows

    async def put(
        self,
        key: str,
        value: dict[str, Any],
        now: float,
        expires_at: str | None,
        condition: Condition,
    ) -> WriteResult:
        """Write ``value`` if ``condition`` holds, else VersionConflictError."""
        version = new_version()
        params: dict[str, Any] = {
            "p_key": self._prefix + key,
            "p_data": value,
            "p_version": version,
            "p_now": timestamp(now),
            "p_expires_at": expires_at,
        }
        if condition is ABSENT:
            params["p_if_absent"] = True
        elif isinstance(condition, str):
            params["p_if_version"] = condition
        [result] = await self._call("write", "put", params)
        if not result["written"]:
            check_condition(condition, result["row_version"])
            raise AssertionError("the put function refused a write whose condition holds")
        return WriteResult(version, bool(result["created"]))

    async def remove(self, key: str, now: float, if_version: str | None) -> bool:
        """Delete the record (at ``if_version``, else VersionConflictError); whether a
        live record was removed."""
        params: dict[str, Any] = {"p_key": self._prefix + key, "p_now": timestamp(now)}
        if if_version is not None:
            params["p_if_version"] = if_version
        [result] = await self._call("delete", "remove", params)
        if if_version is not None and not result["removed"]:
            check_condition(if_version, result["row_version"])
        return bool(result["removed"])

    async def append(
        self,
        key: str,
        field: str,
        items: list[Any],
        max_items: int | None,
        now: float,
        expires_at: str | None,
        *,
        keep_expiry: bool,
    ) -> int:
        """Append ``items`` to the list ``field`` (keeping its last ``max_items``);
        returns the list's new length."""
        [result] = await self._call(
            "append",
            "append",
            {
                "p_key": self._prefix + key,
                "p_field": field,
                "p_items": items,
                "p_version": new_version(),
                "p_now": timestamp(now),
                "p_expires_at": expires_at,
                "p_keep_expiry": keep_expiry,
                "p_max_items": max_items,
            },
        )
        if result["list_length"] is None:
            raise _not_a_list(field, result["field_type"])
        return int(result["list_length"])

    async def pop(self, key: str, field: str, now: float) -> Any:
        """Remove and return the last item of the list ``field`` (``None``: none)."""
        [result] = await self._call(
            "pop",
            "pop",
            {
                "p_key": self._prefix + key,
                "p_field": field,
                "p_version": new_version(),
                "p_now": timestamp(now),
            },
        )
        if result["field_type"] not in (None, "array"):
            raise _not_a_list(field, result["field_type"])
        return result["item"] if result["popped"] else None
