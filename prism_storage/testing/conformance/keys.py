"""Keys: the hostile ones round-trip exactly, the invalid ones are refused before any I/O."""

from __future__ import annotations

from typing import Any

import pytest

from ...backends.base import BaseStorageBackend
from ...exceptions import InvalidKeyError, InvalidValueError
from .samples import HOSTILE_KEYS, INVALID_KEYS

__all__ = ["KeyCases"]


class KeyCases:
    """What a key may be, and that a batch with one bad key writes nothing."""

    async def test_hostile_keys_round_trip(self, store: BaseStorageBackend) -> None:
        for index, key in enumerate(HOSTILE_KEYS):
            await store.set(key, {"key": key, "index": index})
        for index, key in enumerate(HOSTILE_KEYS):
            assert await store.get(key) == {"key": key, "index": index}, key
        assert await store.get_many(HOSTILE_KEYS) == {
            key: {"key": key, "index": i} for i, key in enumerate(HOSTILE_KEYS)
        }
        if store.supports_listing:
            listed = [k async for k in store.iter_keys(page_size=7)]
            assert sorted(listed) == sorted(HOSTILE_KEYS)
        for key in HOSTILE_KEYS:
            await store.delete(key)
            assert await store.get(key) is None

    async def test_keys_differing_only_in_case_are_distinct(
        self, store: BaseStorageBackend
    ) -> None:
        for key in ("Agent", "agent", "AGENT", "ÅNGSTRÖM", "ångström"):
            await store.set(key, {"key": key})
        for key in ("Agent", "agent", "AGENT", "ÅNGSTRÖM", "ångström"):
            assert await store.get(key) == {"key": key}

    @pytest.mark.parametrize(("label", "key"), INVALID_KEYS, ids=[k[0] for k in INVALID_KEYS])
    async def test_invalid_key_is_refused(
        self, store: BaseStorageBackend, label: str, key: Any
    ) -> None:
        with pytest.raises(InvalidKeyError):
            await store.get(key)
        with pytest.raises(InvalidKeyError):
            await store.set(key, {"v": 1})
        with pytest.raises(InvalidKeyError):
            await store.delete(key)
        with pytest.raises(InvalidKeyError):
            await store.exists(key)
        with pytest.raises(InvalidKeyError):
            await store.get_many(["fine", key])
        if isinstance(key, str | int | bytes | None):  # hashable: can be a mapping key
            with pytest.raises(InvalidKeyError):
                await store.set_many({"fine": {"v": 1}, key: {"v": 2}})  # type: ignore[dict-item]
        with pytest.raises(InvalidKeyError):
            await store.delete_many(["fine", key])
        assert issubclass(InvalidKeyError, ValueError)
        # The valid half of the refused batch was not written either.
        assert await store.get("fine") is None

    async def test_batch_arguments_must_be_collections_of_keys(
        self, store: BaseStorageBackend
    ) -> None:
        with pytest.raises(InvalidKeyError):
            await store.get_many("agent")  # a str is not a list of keys
        with pytest.raises(InvalidValueError):
            await store.set_many([("k", {"v": 1})])  # type: ignore[arg-type]
