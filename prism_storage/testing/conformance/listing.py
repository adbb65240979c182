"""Listing: pages with a cursor visit every key once, prefixes match literally."""

from __future__ import annotations

import pytest

from ...backends.base import BaseStorageBackend
from ...exceptions import UnsupportedOperationError

__all__ = ["ListingCases"]


class ListingCases:
    """keys() and iter_keys() on stores that list; a typed refusal on those that cannot."""

    async def test_listing_is_refused_without_the_capability(
        self, store: BaseStorageBackend
    ) -> None:
        if store.supports_listing:
            pytest.skip("the store lists keys: the listing cases cover it")
        with pytest.raises(UnsupportedOperationError):
            await store.keys()
        with pytest.raises(UnsupportedOperationError):
            [key async for key in store.iter_keys()]

    async def test_listing_visits_every_key_once(self, store: BaseStorageBackend) -> None:
        if not store.supports_listing:
            pytest.skip("the store cannot list keys (supports_listing is false)")
        groups = {
            "agents/": [f"agents/{i}" for i in range(45)],
            "agents_v2/": [f"agents_v2/{i}" for i in range(30)],
            "Agents/": [f"Agents/{i}" for i in range(5)],
            "agent%": ["agent%1", "agent%2"],
            "agent_": ["agent_x"],
            "agent*": ["agent*1", "agent?1"],
        }
        every = sorted({k for keys in groups.values() for k in keys})
        await store.set_many({k: {"k": k} for k in every})

        async def list_all(prefix: str, page_size: int) -> list[str]:
            seen: list[str] = []
            cursor = None
            for _ in range(10_000):
                page = await store.keys(prefix, limit=page_size, cursor=cursor)
                assert len(page.keys) <= page_size
                seen.extend(page.keys)
                cursor = page.cursor
                if cursor is None:
                    return seen
            raise AssertionError("listing did not terminate")

        for page_size in (1, 7, 1000):
            listed = await list_all("", page_size)
            assert sorted(listed) == every, page_size
            assert len(listed) == len(set(listed))
        assert sorted(await list_all("agents/", 4)) == sorted(groups["agents/"])
        assert sorted(await list_all("agents_", 4)) == sorted(groups["agents_v2/"])
        assert sorted(await list_all("Agents/", 2)) == sorted(groups["Agents/"])
        assert sorted(await list_all("agent%", 10)) == sorted(groups["agent%"])
        assert sorted(await list_all("agent*", 10)) == ["agent*1"]
        assert await list_all("nothing-here", 10) == []

    async def test_listing_arguments_are_validated(self, store: BaseStorageBackend) -> None:
        if not store.supports_listing:
            pytest.skip("the store cannot list keys (supports_listing is false)")
        for bad in (
            {"limit": 0},
            {"limit": -1},
            {"limit": "5"},
            {"prefix": 3},
            {"prefix": "a\x00"},
            {"cursor": ""},
            # No store hands out a cursor with a control character or a lone surrogate.
            {"cursor": "a\x00b"},
            {"cursor": "\ud800"},
        ):
            with pytest.raises(ValueError):
                await store.keys(**bad)

    async def test_iter_keys(self, store: BaseStorageBackend) -> None:
        if not store.supports_listing:
            pytest.skip("the store cannot list keys (supports_listing is false)")
        keys = {f"thread/{i:04}" for i in range(230)}
        await store.set_many({k: {} for k in keys})
        listed = [k async for k in store.iter_keys("thread/", page_size=50)]
        assert sorted(listed) == sorted(keys)
