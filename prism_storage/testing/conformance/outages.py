"""Outages: an unreachable store raises BackendUnavailableError in time, and bad input is
refused before any I/O is tried.

The cases use the ``unavailable_store`` fixture, which skips them (never passes them) when
the backend's tests provide no ``make_unavailable_store``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from ...backends.base import BaseStorageBackend
from ...exceptions import BackendUnavailableError, InvalidKeyError, InvalidValueError

__all__ = ["OutageCases"]


class OutageCases:
    """Typed, timely failures when the server cannot be reached."""

    unavailable_within: float

    async def test_unreachable_store_raises_typed_error(
        self, unavailable_store: BaseStorageBackend
    ) -> None:
        store = unavailable_store
        started = time.monotonic()
        try:
            operations: list[Callable[[], Awaitable[Any]]] = [
                lambda: store.get("k"),
                lambda: store.set("k", {"v": 1}),
                lambda: store.delete("k"),
                lambda: store.get_many(["a", "b"]),
                lambda: store.set_many({"a": {"v": 1}}),
                lambda: store.ping(),
            ]
            if store.supports_listing:
                operations.append(lambda: store.keys())
            for operation in operations:
                with pytest.raises(BackendUnavailableError) as caught:
                    await operation()
                assert caught.value.__cause__ is not None
        finally:
            await store.close()
        assert time.monotonic() - started < self.unavailable_within * len(operations)

    async def test_bad_input_is_refused_before_io(
        self, unavailable_store: BaseStorageBackend
    ) -> None:
        store = unavailable_store
        try:
            with pytest.raises(InvalidKeyError):
                await store.get("")
            with pytest.raises(InvalidValueError):
                await store.set("k", {"bad": math.nan})
            with pytest.raises(InvalidKeyError):
                await store.set_many({"ok": {}, "bad\n": {}})
        finally:
            await store.close()
