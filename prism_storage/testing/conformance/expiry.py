"""Expiry: a TTL hides a record once it passes, a default TTL applies, bad TTLs are refused;
``touch`` slides a live record's expiry (and only its expiry), ``touch_on_read`` slides it
on every read."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

from ...backends.base import BaseStorageBackend
from ...exceptions import (
    InvalidKeyError,
    InvalidOptionError,
    InvalidValueError,
    UnsupportedOperationError,
)
from ..clock import FakeClock
from .fixtures import StoreFactory

__all__ = ["ExpiryCases"]


def _expires_in(store: BaseStorageBackend, expires_at: Any, seconds: float, now: float) -> bool:
    """Whether a record's ``expires_at`` is ``now + seconds`` (to the store's precision)."""
    return expires_at is not None and abs(expires_at.timestamp() - (now + seconds)) < 0.01


class ExpiryCases:
    """TTL on stores that keep it (by an injected clock or by the server's own), else a refusal."""

    async def test_ttl_is_refused_without_the_capability(self, store: BaseStorageBackend) -> None:
        if store.supports_ttl:
            pytest.skip("the store keeps TTL: the expiry cases cover it")
        with pytest.raises(UnsupportedOperationError):
            await store.set("k", {"v": 1}, ttl=10)
        with pytest.raises(UnsupportedOperationError):
            await store.set_many({"k": {"v": 1}}, ttl=10)
        assert await store.get("k") is None

    async def test_ttl(self, stores: StoreFactory) -> None:
        store = stores("ttl")
        if not store.supports_ttl:
            pytest.skip("the store has no TTL (supports_ttl is false)")
        if store.ttl_uses_clock:
            clock = FakeClock()
            store = stores("ttl-clock", clock=clock)
            await store.set("short", {"v": 1}, ttl=10)
            await store.set("long", {"v": 2}, ttl=1000)
            await store.set("forever", {"v": 3})
            await store.set_many({"batch": {"v": 4}}, ttl=10)
            clock.advance(5)
            assert await store.get("short") == {"v": 1}
            clock.advance(6)
            await self._assert_expired(store, ["short", "batch"], ["long", "forever"])
            if store.supports_sweep:
                assert await store.sweep() >= 2
                assert await store.sweep() == 0
                assert await store.get("long") == {"v": 2}
            # A default ttl applies to every write; a per-call ttl overrides it.
            defaulted = stores("ttl-default", clock=clock, ttl=10)
            await defaulted.set("d", {"v": 1})
            await defaulted.set("o", {"v": 1}, ttl=100)
            clock.advance(11)
            await self._assert_expired(defaulted, ["d"], ["o"])
            # Overwriting without ttl makes a record permanent again.
            await store.set("long", {"v": 5})
            clock.advance(2000)
            assert await store.get("long") == {"v": 5}
        else:
            await store.set("short", {"v": 1}, ttl=1)
            await store.set("forever", {"v": 3})
            assert await store.get("short") == {"v": 1}
            await asyncio.sleep(1.3)
            await self._assert_expired(store, ["short"], ["forever"])

    async def _assert_expired(
        self, store: BaseStorageBackend, expired: list[str], alive: list[str]
    ) -> None:
        for key in expired:
            assert await store.get(key) is None, key
            assert await store.exists(key) is False, key
        for key in alive:
            assert await store.get(key) is not None, key
        assert set(await store.get_many(expired + alive)) == set(alive)
        if store.supports_listing:
            assert set(await store.keys(limit=100)) == set(alive)

    @pytest.mark.parametrize("ttl", [0, -1, math.nan, math.inf, "10", True, 1e300, 10**400])
    async def test_invalid_ttl_is_refused(self, store: BaseStorageBackend, ttl: Any) -> None:
        if not store.supports_ttl:
            pytest.skip("the store has no TTL (supports_ttl is false)")
        with pytest.raises(InvalidValueError):
            await store.set("k", {"v": 1}, ttl=ttl)
        assert await store.get("k") is None

    # ------------------------------------------------------------ sliding expiry

    async def test_touch_is_refused_without_the_capability(self, store: BaseStorageBackend) -> None:
        if store.supports_ttl:
            pytest.skip("the store keeps TTL: the touch cases cover it")
        await store.set("k", {"v": 1})
        with pytest.raises(UnsupportedOperationError):
            await store.touch("k", 10)
        with pytest.raises(UnsupportedOperationError):
            await store.touch("k")
        assert await store.get("k") == {"v": 1}

    async def test_touch_checks_its_arguments_first(self, store: BaseStorageBackend) -> None:
        if not store.supports_ttl:
            pytest.skip("the store has no TTL (supports_ttl is false)")
        await store.set("k", {"v": 1}, ttl=100)
        for bad_ttl in (0, -1, math.nan, "10", True):
            with pytest.raises(InvalidValueError):
                await store.touch("k", bad_ttl)  # type: ignore[arg-type]
        with pytest.raises(InvalidKeyError):
            await store.touch("", 10)
        assert await store.get("k") == {"v": 1}

    async def test_touch_slides_the_expiry(self, stores: StoreFactory) -> None:
        probe = stores("touch-probe")
        if not probe.supports_ttl:
            pytest.skip("the store has no TTL (supports_ttl is false)")
        if probe.ttl_uses_clock:
            await self._touch_with_the_clock(stores)
        else:
            await self._touch_in_server_time(probe)

    async def _touch_with_the_clock(self, stores: StoreFactory) -> None:
        clock = FakeClock()
        store = stores("touch", clock=clock)
        await store.set("a", {"v": 1}, ttl=10)
        await store.set("permanent", {"v": 2})
        await store.set("gone", {"v": 3}, ttl=1)
        before = await store.get_record("a") if store.supports_versions else None
        clock.advance(5)
        assert await store.touch("a", 10) is True
        assert await store.touch("permanent", 10) is True
        assert await store.touch("missing", 10) is False
        # An expired record is absent: touching it neither reports it nor revives it.
        assert await store.touch("gone", 100) is False
        assert await store.get("gone") is None
        if before is not None:
            after = await store.get_record("a")
            assert after is not None
            # Only the expiry moved: same value, version and times.
            assert (after.value, after.version) == (before.value, before.version)
            assert (after.created_at, after.updated_at) == (before.created_at, before.updated_at)
            assert _expires_in(store, after.expires_at, 10, clock.now)
        clock.advance(8)  # past the first expiry (t=10), before the new one (t=15)
        assert await store.get("a") == {"v": 1}
        assert await store.get("permanent") == {"v": 2}
        clock.advance(3)
        await self._assert_expired(store, ["a", "permanent", "gone"], [])
        # touch(key) without ttl on a store without a default: permanent, as a fresh set.
        await store.set("b", {"v": 4}, ttl=5)
        assert await store.touch("b") is True
        clock.advance(1000)
        assert await store.get("b") == {"v": 4}
        if store.supports_versions:
            record = await store.get_record("b")
            assert record is not None and record.expires_at is None
        # With a default ttl, touch(key) slides to now + the default.
        defaulted = stores("touch-default", clock=clock, ttl=10)
        await defaulted.set("d", {"v": 5})
        clock.advance(8)
        assert await defaulted.touch("d") is True
        clock.advance(8)
        assert await defaulted.get("d") == {"v": 5}
        clock.advance(3)
        assert await defaulted.get("d") is None

    async def _touch_in_server_time(self, store: BaseStorageBackend) -> None:
        """The server keeps time (Redis): short real TTLs, one wait."""
        await store.set("extended", {"v": 1}, ttl=1)
        await store.set("shortened", {"v": 2}, ttl=100)
        await store.set("permanent", {"v": 3}, ttl=1)
        before = await store.get_record("extended") if store.supports_versions else None
        assert await store.touch("extended", 100) is True
        assert await store.touch("shortened", 1) is True
        assert await store.touch("permanent") is True  # no default ttl: no expiry
        assert await store.touch("missing", 10) is False
        if before is not None:
            after = await store.get_record("extended")
            assert after is not None and after.version == before.version
            assert after.updated_at == before.updated_at
            assert after.expires_at is not None and before.expires_at is not None
            assert after.expires_at > before.expires_at
            permanent = await store.get_record("permanent")
            assert permanent is not None and permanent.expires_at is None
        await asyncio.sleep(1.3)
        await self._assert_expired(store, ["shortened"], ["extended", "permanent"])
        assert await store.touch("shortened", 100) is False
        assert await store.get("shortened") is None

    async def test_touch_never_undoes_a_delete_or_loses_a_write(
        self, store: BaseStorageBackend
    ) -> None:
        if not store.supports_ttl:
            pytest.skip("the store has no TTL (supports_ttl is false)")
        for round_ in range(20):
            await store.set("k", {"round": round_}, ttl=100)
            await asyncio.gather(store.touch("k", 1000), store.delete("k"))
            assert await store.get("k") is None, round_
            await store.set("k", {"round": round_}, ttl=100)
            await asyncio.gather(store.touch("k", 1000), store.set("k", {"new": round_}))
            assert await store.get("k") == {"new": round_}, round_

    async def test_touch_on_read_needs_a_default_ttl(self, stores: StoreFactory) -> None:
        if not stores("touch-on-read-probe").supports_ttl:
            pytest.skip("the store has no TTL (supports_ttl is false)")
        with pytest.raises(InvalidOptionError):
            stores("touch-on-read-bad", touch_on_read=True)
        with pytest.raises(InvalidOptionError):
            stores("touch-on-read-bad", ttl=10, touch_on_read="yes")

    async def test_touch_on_read_slides_what_reads_return(self, stores: StoreFactory) -> None:
        probe = stores("touch-on-read-probe")
        if not probe.supports_ttl:
            pytest.skip("the store has no TTL (supports_ttl is false)")
        reads = ["get", "get_many"]
        if probe.supports_versions:
            reads += ["get_record", "get_many_records"]
        if probe.ttl_uses_clock:
            await self._slide_on_read_with_the_clock(stores, reads)
        else:  # server time: a 2 s default, read at 1.2 s, seen at 2.4 s
            store = stores("touch-on-read", ttl=2, touch_on_read=True)
            for key in [*reads, "unread"]:
                await store.set(key, {"k": key})
            await asyncio.sleep(1.2)
            await self._read_each_way(store, reads)
            await asyncio.sleep(1.2)
            await self._assert_expired(store, ["unread"], reads)

    async def _slide_on_read_with_the_clock(self, stores: StoreFactory, reads: list[str]) -> None:
        clock = FakeClock()
        store = stores("touch-on-read", clock=clock, ttl=10, touch_on_read=True)
        for key in [*reads, "unread", "checked"]:
            await store.set(key, {"k": key})
        clock.advance(8)
        await self._read_each_way(store, reads)
        # exists() and listings do not slide; they are how this case looks without reading.
        assert await store.exists("checked") is True
        if store.supports_versions:
            record = await store.get_record("get_record")
            assert record is not None and _expires_in(store, record.expires_at, 10, clock.now)
        clock.advance(8)  # t=16: past the writes' expiry (t=10), before the reads' (t=18)
        for key in reads:
            assert await store.exists(key) is True, key
        assert await store.exists("unread") is False
        assert await store.exists("checked") is False
        clock.advance(11)
        for key in reads:
            assert await store.exists(key) is False, key

    @staticmethod
    async def _read_each_way(store: BaseStorageBackend, reads: list[str]) -> None:
        """Read the record named after each read method, with that method."""
        assert await store.get("get") == {"k": "get"}
        assert await store.get_many(["get_many", "missing"]) == {"get_many": {"k": "get_many"}}
        if "get_record" in reads:
            found = await store.get_record("get_record")
            assert found is not None and found.value == {"k": "get_record"}
            many = await store.get_many_records(["get_many_records"])
            assert list(many) == ["get_many_records"]
