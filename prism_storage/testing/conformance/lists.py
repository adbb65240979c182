"""Atomic list operations: ``append`` and ``pop`` on a list field of a record."""

from __future__ import annotations

import asyncio

import pytest

from ...backends.base import BaseStorageBackend
from ...exceptions import InvalidKeyError, InvalidValueError, UnsupportedOperationError

__all__ = ["AtomicListCases"]


def _lists(store: BaseStorageBackend) -> None:
    if not store.supports_atomic_lists:
        pytest.skip("the store has no atomic list operations (supports_atomic_lists is false)")


class AtomicListCases:
    """Appends and pops from any number of callers lose and duplicate nothing."""

    async def test_without_the_capability_the_calls_raise(self, store: BaseStorageBackend) -> None:
        if store.supports_atomic_lists:
            pytest.skip("the store has atomic list operations: the cases cover them")
        await store.set("k", {"messages": [1]})
        with pytest.raises(UnsupportedOperationError):
            await store.append("k", [2])
        with pytest.raises(UnsupportedOperationError):
            await store.pop("k")
        assert await store.get("k") == {"messages": [1]}

    async def test_append_creates_and_extends(self, store: BaseStorageBackend) -> None:
        _lists(store)
        message = {"role": "user", "content": "héllo 🤖", "n": 1.5, "tags": [], "meta": {}}
        assert await store.append("chat", [message]) == 1
        assert await store.get("chat") == {"messages": [message]}
        assert await store.append("chat", [{"role": "assistant"}, None, 7, "x", []]) == 6
        assert await store.get("chat") == {
            "messages": [message, {"role": "assistant"}, None, 7, "x", []]
        }
        await store.set("other", {"title": "kept", "events": ["a"]})
        assert await store.append("other", ["b", "c"], field="events") == 3
        assert await store.append("other", [{"k": 1}]) == 1  # a new field
        assert await store.get("other") == {
            "title": "kept",
            "events": ["a", "b", "c"],
            "messages": [{"k": 1}],
        }
        assert await store.append("other", [], field="events") == 3
        assert await store.append("nothing", []) == 0
        assert await store.get("nothing") is None

    async def test_append_keeps_the_latest_items(self, store: BaseStorageBackend) -> None:
        _lists(store)
        assert await store.append("k", [1, 2, 3], max_items=2) == 2
        assert await store.get("k") == {"messages": [2, 3]}
        assert await store.append("k", [4], max_items=2) == 2
        assert await store.get("k") == {"messages": [3, 4]}
        assert await store.append("k", [5, 6, 7, 8, 9], max_items=3) == 3
        assert await store.get("k") == {"messages": [7, 8, 9]}
        assert await store.append("k", [10], max_items=10) == 4
        assert await store.get("k") == {"messages": [7, 8, 9, 10]}

    async def test_pop_takes_the_last_item(self, store: BaseStorageBackend) -> None:
        _lists(store)
        assert await store.pop("absent") is None
        await store.set("k", {"messages": [{"a": 1}, [1, 2], None], "keep": True})
        assert await store.pop("k") is None  # the last item is a JSON null
        assert await store.pop("k") == [1, 2]
        assert await store.get("k") == {"messages": [{"a": 1}], "keep": True}
        assert await store.pop("k") == {"a": 1}
        assert await store.pop("k") is None
        assert await store.get("k") == {"messages": [], "keep": True}
        await store.set("no-field", {"other": 1})
        assert await store.pop("no-field") is None
        with pytest.raises(InvalidValueError):
            await store.pop("no-field", field="other")
        assert await store.get("no-field") == {"other": 1}

    async def test_a_field_that_is_not_a_list_is_refused(self, store: BaseStorageBackend) -> None:
        _lists(store)
        await store.set("k", {"messages": "not a list", "n": 1})
        with pytest.raises(InvalidValueError):
            await store.append("k", [1])
        with pytest.raises(InvalidValueError):
            await store.pop("k")
        assert await store.get("k") == {"messages": "not a list", "n": 1}

    async def test_bad_arguments_are_refused_before_any_write(
        self, store: BaseStorageBackend
    ) -> None:
        _lists(store)
        with pytest.raises(InvalidKeyError):
            await store.append("", [1])
        with pytest.raises(InvalidValueError):
            await store.append("k", {"not": "a list"})  # type: ignore[arg-type]
        with pytest.raises(InvalidValueError):
            await store.append("k", [{1, 2}])
        with pytest.raises(InvalidValueError):
            await store.append("k", [float("nan")])
        with pytest.raises(InvalidValueError):
            await store.append("k", [1], max_items=0)
        with pytest.raises(InvalidValueError):
            await store.append("k", [1], field="")
        with pytest.raises(InvalidValueError):
            await store.pop("k", field=3)  # type: ignore[arg-type]
        assert await store.get("k") is None

    async def test_appends_make_new_versions(self, store: BaseStorageBackend) -> None:
        _lists(store)
        if not store.supports_versions:
            pytest.skip("the store keeps no record versions (supports_versions is false)")
        await store.append("k", [1])
        first = await store.get_record("k")
        await store.append("k", [2])
        second = await store.get_record("k")
        assert await store.pop("k") == 2
        third = await store.get_record("k")
        assert first is not None and second is not None and third is not None
        assert len({first.version, second.version, third.version}) == 3
        assert first.created_at == second.created_at == third.created_at

    async def test_append_sets_expiry(self, store: BaseStorageBackend) -> None:
        _lists(store)
        if not store.supports_ttl or not store.supports_versions:
            pytest.skip("the store has no TTL or no record metadata to read it from")
        await store.append("k", [1], ttl=1000)
        record = await store.get_record("k")
        assert record is not None and record.expires_at is not None
        await store.append("k", [2])  # keeps the expiry
        kept = await store.get_record("k")
        assert kept is not None and kept.expires_at is not None
        assert abs((kept.expires_at - record.expires_at).total_seconds()) < 1
        assert kept.value == {"messages": [1, 2]}

    async def test_concurrent_appends_lose_and_duplicate_nothing(
        self, store: BaseStorageBackend
    ) -> None:
        _lists(store)

        # Twenty steps of 64 contending writers show any lost or repeated append; stores
        # that rewrite the whole record per append pay for its length, so more steps would
        # add time, not coverage.
        async def writer(w: int) -> None:
            for n in range(20):
                await store.append("chat", [{"w": w, "n": n}])

        await asyncio.gather(*(writer(w) for w in range(64)))
        value = await store.get("chat")
        assert value is not None
        items = value["messages"]
        assert len(items) == 64 * 20
        for w in range(64):  # each writer's items, once each, in its own order
            assert [item["n"] for item in items if item["w"] == w] == list(range(20))

    async def test_concurrent_pops_never_hand_out_an_item_twice(
        self, store: BaseStorageBackend
    ) -> None:
        _lists(store)
        await store.set("queue", {"messages": list(range(200))})

        async def popper() -> list[int]:
            taken = []
            while (item := await store.pop("queue")) is not None:
                taken.append(item)
            return taken

        results = await asyncio.gather(*(popper() for _ in range(8)))
        every = [item for taken in results for item in taken]
        assert sorted(every) == list(range(200))
        for taken in results:  # each popper sees the list shrink from its end
            assert taken == sorted(taken, reverse=True)
        assert await store.get("queue") == {"messages": []}
