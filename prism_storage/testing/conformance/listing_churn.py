"""Listing while the store grows and shrinks: every key present throughout, exactly once.

A store may reorganise itself while a listing walks it: Redis resizes (rehashes) its hash
table when the number of keys crosses a power of two, a database splits pages, an engine
compacts segments. None of that may make a key present for the whole listing appear
twice or not at all. The case lists a set of fixed keys in small pages while another task
adds many keys and deletes them again, page after page.

The sizes are class attributes: the defaults keep the case quick on slow stores; a
backend whose reorganisations only happen at scale raises them in its test class (the
Redis tests grow the store past several powers of two).
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter

import pytest

from ...backends.base import BaseStorageBackend
from .fixtures import StoreFactory

__all__ = ["ListingUnderWritesCases"]

_CYCLES_PER_LISTING = 3
_REST_PAGES = 5


class ListingUnderWritesCases:
    """keys() pages interleaved with a task that grows the store and shrinks it again."""

    #: Keys present for the whole listing (each must be listed exactly once).
    churn_fixed_keys = 200
    #: How many keys the concurrent task adds and then deletes again, per cycle.
    churn_keys = 1_000
    #: Listings, each against fresh cycles of growing and shrinking.
    churn_passes = 1
    #: The listing's page size: small, so that many pages see the store change.
    churn_page_size = 13
    #: Seconds the churn rests after each shrink while the listing goes on (a few pages):
    #: a store that reorganises on a timer (Redis shrinks its table in its periodic task)
    #: does it then, between two pages.
    churn_rest = 0.0

    async def test_listing_under_growth_and_shrinking_returns_each_key_once(
        self, store: BaseStorageBackend, stores: StoreFactory
    ) -> None:
        if not store.supports_listing:
            pytest.skip("the store cannot list keys (supports_listing is false)")
        fixed_count, churn_count = self.churn_fixed_keys, self.churn_keys
        fixed = [f"{i:06d}-fixed" for i in range(fixed_count)]
        # Churn keys sort among the fixed ones, so sorted listings see them too.
        churn = [f"{j % fixed_count:06d}-churn-{j // fixed_count}" for j in range(churn_count)]
        for start in range(0, fixed_count, 500):
            await store.set_many({k: {"k": k} for k in fixed[start : start + 500]})
        neighbour = stores("churn-neighbour")
        await neighbour.set("000000-fixed-neighbour", {"k": "outside"})
        allowed = set(fixed) | set(churn)
        # About three grow-and-shrink cycles of the churn over the pages of one listing
        # (which also meets, on average, half of the store's churn keys).
        pages = math.ceil((fixed_count + churn_count / 4) / self.churn_page_size)
        batch = max(1, math.ceil(2 * churn_count * _CYCLES_PER_LISTING / pages))

        for run in range(self.churn_passes):
            listed = await self._list_while_churning(store, neighbour, churn, batch)
            counts = Counter(listed)
            repeated = sorted(k for k in fixed if counts[k] > 1)
            assert not repeated, f"pass {run}: fixed keys listed more than once: {repeated[:5]}"
            missing = sorted(set(fixed) - set(listed))
            assert not missing, f"pass {run}: fixed keys never listed: {missing[:5]}"
            outside = sorted(set(listed) - allowed)
            assert not outside, f"pass {run}: keys that are not the store's: {outside[:5]}"
        assert sorted(await _list_all(store)) == fixed

    async def _list_while_churning(
        self,
        store: BaseStorageBackend,
        neighbour: BaseStorageBackend,
        churn: list[str],
        batch: int,
    ) -> list[str]:
        """One listing in pages, each page after a step of the churn: ``batch`` keys
        added, or deleted, or (after each shrink, ``churn_rest``) a pause. Half of the
        churn goes to the store, half to a neighbour: stores that share a structure (a
        Redis database's hash table, a table of rows) reorganise for either, and a listing
        that meets only few churn keys takes more steps across each reorganisation."""
        listed: list[str] = []
        stepped, done = asyncio.Event(), asyncio.Event()
        rest = self.churn_rest

        async def lister() -> None:
            cursor = None
            try:
                for _ in range(100_000):
                    await stepped.wait()
                    stepped.clear()
                    page = await store.keys(limit=self.churn_page_size, cursor=cursor)
                    listed.extend(page.keys)
                    cursor = page.cursor
                    if cursor is None:
                        return
                raise AssertionError("the listing did not terminate")
            finally:
                done.set()

        async def step() -> None:
            stepped.set()
            await asyncio.sleep(0)

        async def churner() -> None:
            # Whole cycles: the store holds only the fixed keys again at the end.
            while not done.is_set():
                for start in range(0, len(churn), batch):
                    keys = churn[start : start + batch]
                    await store.set_many({k: {"c": 1} for k in keys[::2]})
                    await neighbour.set_many({k: {"c": 1} for k in keys[1::2]})
                    await step()
                for start in range(0, len(churn), batch):
                    keys = churn[start : start + batch]
                    await store.delete_many(keys[::2])
                    await neighbour.delete_many(keys[1::2])
                    await step()
                for _ in range(_REST_PAGES if rest else 0):
                    await asyncio.sleep(rest / _REST_PAGES)
                    await step()

        stepped.set()
        async with asyncio.TaskGroup() as group:  # one failing cancels the other
            group.create_task(lister())
            group.create_task(churner())
        return listed


async def _list_all(store: BaseStorageBackend) -> list[str]:
    return [key async for key in store.iter_keys(page_size=1_000)]
