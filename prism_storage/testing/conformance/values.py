"""Values: what is refused (with the offending item's path), and that a refusal loses nothing."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ...backends.base import BaseStorageBackend
from ...exceptions import InvalidKeyError, InvalidValueError
from .samples import INVALID_VALUES, nested_value
from .strategies import any_keys, any_text, expected_refusal, json_like_values

__all__ = ["ValueCases"]


class ValueCases:
    """Invalid values, cycles, depth, and a property over any key and value."""

    @pytest.mark.parametrize(
        ("label", "value", "path"), INVALID_VALUES, ids=[v[0] for v in INVALID_VALUES]
    )
    async def test_invalid_value_is_refused_and_nothing_is_lost(
        self, store: BaseStorageBackend, label: str, value: Any, path: str
    ) -> None:
        await store.set("k", {"previous": True})
        with pytest.raises(InvalidValueError) as caught:
            await store.set("k", value)
        assert caught.value.path == path
        assert path in str(caught.value)
        with pytest.raises(InvalidValueError):
            await store.set_many({"other": {"ok": 1}, "k": value})
        assert await store.get("k") == {"previous": True}
        assert await store.get("other") is None

    async def test_cyclic_value_is_refused(self, store: BaseStorageBackend) -> None:
        cyclic: dict[str, Any] = {"a": []}
        cyclic["a"].append(cyclic)
        with pytest.raises(InvalidValueError, match="cycle"):
            await store.set("k", cyclic)

    async def test_too_deep_value_is_refused(self, store: BaseStorageBackend) -> None:
        with pytest.raises(InvalidValueError, match="deeper"):
            await store.set("k", nested_value(400))

    async def test_deep_values_round_trip_up_to_the_stores_depth(
        self, store: BaseStorageBackend
    ) -> None:
        """Dicts nest 100 levels deep, or as deep as the store's database takes (MariaDB's
        JSON check: 31); one level more is refused, typed, before any I/O."""
        limit = store._max_depth()
        levels = min(100, limit)
        deep = {"root": nested_value(levels - 2)}  # ``levels`` dicts in all
        await store.set("k", deep)
        assert await store.get("k") == deep
        assert await store.get_many(["k"]) == {"k": deep}
        deepest = nested_value(limit - 1)
        await store.set("deepest", deepest)
        assert await store.get("deepest") == deepest
        with pytest.raises(InvalidValueError, match=f"deeper than {limit} levels"):
            await store.set("k", nested_value(limit))
        with pytest.raises(InvalidValueError, match=f"deeper than {limit} levels"):
            await store.set_many({"other": {"ok": 1}, "k": {"list": [nested_value(limit)]}})
        assert await store.get("k") == deep
        assert await store.get("other") is None

    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            # One method runs for several backend subclasses; each gets its own store.
            HealthCheck.differing_executors,
        ],
    )
    @given(
        key=any_keys,
        value=st.one_of(json_like_values, st.dictionaries(any_text, json_like_values, max_size=5)),
    )
    async def test_any_key_and_value_round_trips_or_is_refused(
        self, store: BaseStorageBackend, key: Any, value: Any
    ) -> None:
        """Property: a write either round-trips exactly or is refused, typed, losing nothing."""
        refusal = expected_refusal(store, key, value)
        if refusal is InvalidKeyError:
            with pytest.raises(InvalidKeyError):
                await store.set(key, value)
        elif refusal is None:
            await store.set(key, {"sentinel": True})
            await store.set(key, value)
            assert await store.get(key) == value
        else:
            await store.set(key, {"sentinel": True})
            with pytest.raises(refusal):
                await store.set(key, value)
            assert await store.get(key) == {"sentinel": True}
