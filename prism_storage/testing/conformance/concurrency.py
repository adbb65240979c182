"""Concurrency: racing writers leave one whole value, cancelled callers disturb no one."""

from __future__ import annotations

import asyncio

from ...backends.base import BaseStorageBackend

__all__ = ["ConcurrencyCases"]


class ConcurrencyCases:
    """Many tasks on one store at once, some of them cancelled."""

    async def test_concurrent_writers_to_one_key(self, store: BaseStorageBackend) -> None:
        values = [
            {"writer": i, "messages": [{"role": "user", "content": f"w{i} " * 200}]}
            for i in range(64)
        ]
        await asyncio.gather(*(store.set("contended", v) for v in values))
        final = await store.get("contended")
        assert final in values

    async def test_concurrent_mixed_operations(self, store: BaseStorageBackend) -> None:
        async def worker(i: int) -> None:
            key = f"worker/{i}"
            await store.set(key, {"i": i})
            assert await store.get(key) == {"i": i}
            await store.set(key, {"i": i, "second": True})
            if i % 2:
                await store.delete(key)

        await asyncio.gather(*(worker(i) for i in range(64)))
        got = await store.get_many([f"worker/{i}" for i in range(64)])
        assert got == {f"worker/{i}": {"i": i, "second": True} for i in range(0, 64, 2)}

    async def test_cancelled_callers_leave_the_others_intact(
        self, store: BaseStorageBackend
    ) -> None:
        keys = [f"cancel/{i}" for i in range(48)]
        still = [f"cancel/still/{j}" for j in range(12)]  # read, never written meanwhile
        await store.set_many(
            {key: {"i": -1} for key in keys} | {key: {"j": j} for j, key in enumerate(still)}
        )
        writers = [asyncio.create_task(store.set(key, {"i": i})) for i, key in enumerate(keys)]
        readers = [asyncio.create_task(store.get(key)) for key in still]
        cancelled = set(range(0, 48, 3))
        for step in range(3):  # callers cancelled before, while and after their call starts
            await asyncio.sleep(0)
            for i in sorted(cancelled)[step::3]:
                writers[i].cancel()
        for reader in readers[::2]:
            reader.cancel()
        results = await asyncio.gather(*writers, return_exceptions=True)
        read = await asyncio.gather(*readers, return_exceptions=True)
        for i, result in enumerate(results):
            if i not in cancelled:
                assert result is None, (i, result)
        for j in range(1, 12, 2):  # the readers not cancelled get their value
            assert read[j] == {"j": j}, (j, read[j])
        stored = await store.get_many(keys)
        for i, key in enumerate(keys):
            # A cancelled write either happened whole or not at all; the others all did.
            expected = [{"i": -1}, {"i": i}] if i in cancelled else [{"i": i}]
            assert stored.get(key) in expected, (key, stored.get(key))
        # The store still serves calls afterwards.
        await store.set("cancel/after", {"ok": True})
        assert await store.get("cancel/after") == {"ok": True}
