"""Versioned records: metadata, conditional writes and deletes, ``update``."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from ...backends.base import BaseStorageBackend
from ...backends.versions import Record
from ...exceptions import (
    InvalidKeyError,
    InvalidValueError,
    UnsupportedOperationError,
    VersionConflictError,
)

__all__ = ["VersionCases"]

#: Clocks of a client and a server may disagree a little.
_SKEW = timedelta(seconds=5)


def _versioned(store: BaseStorageBackend) -> None:
    if not store.supports_versions:
        pytest.skip("the store keeps no record versions (supports_versions is false)")


def _conditional(store: BaseStorageBackend) -> None:
    if not store.supports_conditional_writes:
        pytest.skip("the store has no conditional writes (supports_conditional_writes is false)")


class VersionCases:
    """Every write makes a new version; conditions hold or nothing is written."""

    async def test_without_the_capability_the_calls_raise(self, store: BaseStorageBackend) -> None:
        if store.supports_versions and store.supports_conditional_writes:
            pytest.skip("the store keeps versions and writes conditionally: the cases cover it")
        await store.set("k", {"v": 1})
        if not store.supports_versions:
            with pytest.raises(UnsupportedOperationError):
                await store.get_record("k")
            with pytest.raises(UnsupportedOperationError):
                await store.put("k", {"v": 2})
        with pytest.raises(UnsupportedOperationError):
            await store.put("k", {"v": 2}, if_absent=True)
        with pytest.raises(UnsupportedOperationError):
            await store.remove("k", if_version="0")
        with pytest.raises(UnsupportedOperationError):
            await store.update("k", lambda value: {"v": 3})
        assert await store.get("k") == {"v": 1}

    async def test_a_record_carries_its_metadata(self, store: BaseStorageBackend) -> None:
        _versioned(store)
        assert await store.get_record("absent") is None
        before = datetime.now(UTC)
        await store.set("k", {"v": 1, "messages": ["hi"]})
        record = await store.get_record("k")
        assert isinstance(record, Record)
        assert record.key == "k"
        assert record.value == {"v": 1, "messages": ["hi"]}
        assert isinstance(record.version, str) and record.version
        assert record.created_at.tzinfo is not None and record.updated_at.tzinfo is not None
        assert before - _SKEW <= record.created_at <= record.updated_at
        assert record.updated_at <= datetime.now(UTC) + _SKEW
        assert record.expires_at is None

    async def test_every_write_makes_a_new_version_and_keeps_created_at(
        self, store: BaseStorageBackend
    ) -> None:
        _versioned(store)
        await store.set("k", {"v": 0})
        first = await store.get_record("k")
        assert first is not None
        versions = {first.version}
        for n in range(1, 4):
            await asyncio.sleep(0.01)
            await store.set("k", {"v": n})
            record = await store.get_record("k")
            assert record is not None and record.value == {"v": n}
            assert record.version not in versions
            versions.add(record.version)
            assert record.created_at == first.created_at
            assert record.updated_at >= first.updated_at
        await store.set_many({"k": {"v": 9}})
        after_batch = await store.get_record("k")
        assert after_batch is not None and after_batch.version not in versions
        assert after_batch.created_at == first.created_at
        result = await store.put("k", {"v": 10})
        assert result.created is False and result.version not in versions
        after_put = await store.get_record("k")
        assert after_put is not None and after_put.version == result.version
        assert after_put.created_at == first.created_at

    async def test_a_recreated_record_never_repeats_an_old_version(
        self, store: BaseStorageBackend
    ) -> None:
        _versioned(store)
        seen = set()
        for _ in range(3):
            result = await store.put("k", {"v": 1})
            assert result.created is True
            assert result.version not in seen
            seen.add(result.version)
            await store.delete("k")

    async def test_get_many_records(self, store: BaseStorageBackend) -> None:
        _versioned(store)
        await store.set_many({"a": {"v": "a"}, "b": {"v": "b"}})
        records = await store.get_many_records(["a", "missing", "b", "a"])
        assert set(records) == {"a", "b"}
        for key in ("a", "b"):
            single = await store.get_record(key)
            assert single is not None
            assert records[key].value == {"v": key}
            assert records[key].version == single.version
            assert records[key].created_at == single.created_at
        assert await store.get_many_records([]) == {}

    async def test_put_at_the_version_read(self, store: BaseStorageBackend) -> None:
        _conditional(store)
        created = await store.put("k", {"v": 1}, if_absent=True)
        assert created.created is True
        record = await store.get_record("k")
        assert record is not None and record.version == created.version
        replaced = await store.put("k", {"v": 2}, if_version=created.version)
        assert replaced.created is False and replaced.version != created.version
        with pytest.raises(VersionConflictError) as stale:
            await store.put("k", {"v": 3}, if_version=created.version)
        assert stale.value.current_version == replaced.version
        with pytest.raises(VersionConflictError) as exists:
            await store.put("k", {"v": 4}, if_absent=True)
        assert exists.value.current_version == replaced.version
        now = await store.get_record("k")
        assert now is not None and now.value == {"v": 2} and now.version == replaced.version

    async def test_put_at_a_version_of_a_missing_record_conflicts(
        self, store: BaseStorageBackend
    ) -> None:
        _conditional(store)
        with pytest.raises(VersionConflictError) as missing:
            await store.put("k", {"v": 1}, if_version="0123456789abcdef")
        assert missing.value.current_version is None
        assert await store.get("k") is None

    async def test_remove_at_a_version(self, store: BaseStorageBackend) -> None:
        _conditional(store)
        assert await store.remove("absent") is False
        first = await store.put("k", {"v": 1})
        second = await store.put("k", {"v": 2})
        with pytest.raises(VersionConflictError) as stale:
            await store.remove("k", if_version=first.version)
        assert stale.value.current_version == second.version
        assert await store.get("k") == {"v": 2}
        assert await store.remove("k", if_version=second.version) is True
        assert await store.get("k") is None
        with pytest.raises(VersionConflictError) as gone:
            await store.remove("k", if_version=second.version)
        assert gone.value.current_version is None
        await store.set("plain", {"v": 1})
        assert await store.remove("plain") is True
        assert await store.get("plain") is None

    async def test_bad_arguments_are_refused_before_any_write(
        self, store: BaseStorageBackend
    ) -> None:
        _conditional(store)
        with pytest.raises(InvalidKeyError):
            await store.put("", {"v": 1})
        with pytest.raises(InvalidValueError):
            await store.put("k", {"v": {1, 2}})
        with pytest.raises(InvalidValueError):
            await store.put("k", {"v": 1}, if_absent=True, if_version="abc")
        with pytest.raises(InvalidValueError):
            await store.put("k", {"v": 1}, if_version="")
        with pytest.raises(InvalidValueError):
            await store.remove("k", if_version=3)  # type: ignore[arg-type]
        with pytest.raises(InvalidValueError):
            await store.update("k", "not callable")  # type: ignore[arg-type]
        assert await store.get("k") is None

    async def test_concurrent_creates_make_exactly_one_record(
        self, store: BaseStorageBackend
    ) -> None:
        _conditional(store)

        async def create(n: int) -> bool:
            try:
                await store.put("contended", {"writer": n}, if_absent=True)
            except VersionConflictError:
                return False
            return True

        won = await asyncio.gather(*(create(n) for n in range(20)))
        assert sum(won) == 1
        assert await store.get("contended") == {"writer": won.index(True)}

    async def test_concurrent_updates_lose_nothing(self, store: BaseStorageBackend) -> None:
        _conditional(store)

        def increment(value: dict[str, int] | None) -> dict[str, int]:
            return {"n": (value or {"n": 0})["n"] + 1}

        await asyncio.gather(*(store.update("counter", increment, attempts=100) for _ in range(24)))
        assert await store.get("counter") == {"n": 24}
        assert await store.update("counter", increment) == {"n": 25}

    async def test_expiry_is_part_of_the_metadata(self, store: BaseStorageBackend) -> None:
        _versioned(store)
        if not store.supports_ttl:
            pytest.skip("the store has no TTL (supports_ttl is false)")
        start = datetime.now(UTC)
        if store.ttl_uses_clock:
            start = datetime.fromtimestamp(store.clock(), UTC)  # type: ignore[attr-defined]
        await store.put("k", {"v": 1}, ttl=1000)
        record = await store.get_record("k")
        assert record is not None and record.expires_at is not None
        expected = start + timedelta(seconds=1000)
        assert expected - _SKEW <= record.expires_at <= expected + _SKEW
        # Every read of the unchanged record reports the same metadata, expiry included
        # (a store that works an expiry out from a time-to-live may not drift).
        for _ in range(20):
            assert await store.get_record("k") == record
        assert await store.get_many_records(["k"]) == {"k": record}
