"""The protocol itself: get, set and delete, what round-trips, and what ``get`` hands back."""

from __future__ import annotations

from typing import Any

import pytest

from ...backends.base import BaseStorageBackend
from ...exceptions import InvalidValueError
from ...protocol import MemoryProvider
from .samples import AGENT_RECORD, ROUND_TRIP_VALUES

__all__ = ["BasicOperationCases"]


class BasicOperationCases:
    """get/set/delete semantics and value round-trips."""

    async def test_satisfies_the_protocol(self, store: BaseStorageBackend) -> None:
        assert isinstance(store, MemoryProvider)
        assert set(store.capabilities) >= {"ttl", "listing", "search", "sweep"}
        assert type(store).__name__ in repr(store)

    async def test_get_of_missing_key_is_none(self, store: BaseStorageBackend) -> None:
        assert await store.get("never-written") is None
        assert await store.exists("never-written") is False

    async def test_delete_of_missing_key_is_a_no_op(self, store: BaseStorageBackend) -> None:
        await store.delete("never-written")
        await store.delete_many(["never-written", "nor-this"])
        assert await store.get("never-written") is None

    async def test_set_then_get_then_delete(self, store: BaseStorageBackend) -> None:
        await store.set("agent_1", {"messages": [{"role": "user", "content": "Hello"}]})
        assert await store.get("agent_1") == {"messages": [{"role": "user", "content": "Hello"}]}
        assert await store.exists("agent_1") is True
        await store.delete("agent_1")
        assert await store.get("agent_1") is None
        assert await store.exists("agent_1") is False

    async def test_set_overwrites(self, store: BaseStorageBackend) -> None:
        await store.set("k", {"v": 1, "old": True})
        await store.set("k", {"v": 2})
        assert await store.get("k") == {"v": 2}

    @pytest.mark.parametrize(
        ("label", "value"), ROUND_TRIP_VALUES, ids=[v[0] for v in ROUND_TRIP_VALUES]
    )
    async def test_round_trip(
        self, store: BaseStorageBackend, label: str, value: dict[str, Any]
    ) -> None:
        await store.set("record", value)
        assert await store.get("record") == value
        assert await store.get_many(["record"]) == {"record": value}

    async def test_large_floats_round_trip_or_are_refused(self, store: BaseStorageBackend) -> None:
        """Stores that keep numbers as decimals may refuse huge floats, never alter them."""
        for value in (
            {"avogadro": 6.02214076e23},
            {"huge": -1e300},
            {"big": 1e16},
            {"max": 1.7976931348623157e308},
        ):
            await store.set("k", {"sentinel": True})
            try:
                await store.set("k", value)
            except InvalidValueError as exc:
                assert exc.path is not None and exc.path.startswith("$[")
                assert await store.get("k") == {"sentinel": True}
            else:
                got = await store.get("k")
                assert got == value
                assert all(type(v) is float for v in got.values())

    async def test_large_value(self, store: BaseStorageBackend) -> None:
        value = {"blob": "x" * (5 * 1024 * 1024), "messages": [AGENT_RECORD] * 10}
        limit = store.max_value_bytes
        if limit is not None and limit < 5 * 1024 * 1024:
            with pytest.raises(InvalidValueError, match=str(limit)):
                await store.set("large", value)
            assert await store.get("large") is None
            fitting = {"blob": "y" * (limit - 1024)}
            await store.set("large", fitting)
            assert await store.get("large") == fitting
        else:
            await store.set("large", value)
            assert await store.get("large") == value

    async def test_get_returns_a_new_object(self, store: BaseStorageBackend) -> None:
        original = {"messages": [{"role": "user", "content": "Hello"}]}
        await store.set("k", original)
        original["messages"].append({"role": "user", "content": "mutated after set"})
        first = await store.get("k")
        assert first == {"messages": [{"role": "user", "content": "Hello"}]}
        assert first is not original
        first["messages"].clear()
        assert await store.get("k") == {"messages": [{"role": "user", "content": "Hello"}]}
