"""Batches: get_many, set_many and delete_many agree with the single-key calls."""

from __future__ import annotations

from ...backends.base import BaseStorageBackend

__all__ = ["BatchCases"]


class BatchCases:
    """Batch reads, writes and deletes, empty batches included."""

    async def test_batch_operations(self, store: BaseStorageBackend) -> None:
        records = {
            f"agent:{i:03}": {"i": i, "messages": [{"content": "x" * i}]} for i in range(120)
        }
        await store.set_many(records)
        wanted = [*list(records)[::3], "missing-1", "agent:000", "missing-2"]
        got = await store.get_many(wanted)
        assert got == {k: records[k] for k in wanted if k in records}
        assert await store.get_many([]) == {}
        await store.set_many({})
        await store.delete_many(list(records)[:60])
        remaining = await store.get_many(list(records))
        assert remaining == {k: v for k, v in list(records.items())[60:]}
        await store.delete_many([])

    async def test_set_many_overwrites(self, store: BaseStorageBackend) -> None:
        await store.set_many({"a": {"v": 1}, "b": {"v": 1}})
        await store.set_many({"a": {"v": 2}, "c": {"v": 2}})
        assert await store.get_many(["a", "b", "c"]) == {
            "a": {"v": 2},
            "b": {"v": 1},
            "c": {"v": 2},
        }
