"""Isolation: stores with different namespaces never see each other's keys."""

from __future__ import annotations

from .fixtures import StoreFactory

__all__ = ["IsolationCases"]


class IsolationCases:
    """Namespaces that are string-prefixes of each other stay apart."""

    async def test_stores_are_isolated(self, stores: StoreFactory) -> None:
        one, two = stores("agents"), stores("agents_v2")
        three = stores("agents%")
        await one.set("shared_key%*", {"store": 1})
        await two.set("shared_key%*", {"store": 2})
        await one.set("only-one", {"store": 1})
        assert await one.get("shared_key%*") == {"store": 1}
        assert await two.get("shared_key%*") == {"store": 2}
        assert await three.get("shared_key%*") is None
        assert await two.get("only-one") is None
        assert await two.get_many(["only-one", "shared_key%*"]) == {"shared_key%*": {"store": 2}}
        if one.supports_listing:
            assert sorted(await one.keys()) == ["only-one", "shared_key%*"]
            assert list(await two.keys()) == ["shared_key%*"]
            assert list(await three.keys()) == []
        await two.delete_many(["only-one", "shared_key%*"])
        assert await one.get("only-one") == {"store": 1}
        assert await one.get("shared_key%*") == {"store": 1}
