"""The fixtures every conformance case uses: stores made by the backend's ``make_store``,
closed when the case ends, and an unreachable store where the backend's tests provide one."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio

from ...backends.base import BaseStorageBackend

__all__ = ["StoreFactory", "StoreFixtures"]

StoreFactory = Callable[..., BaseStorageBackend]


class StoreFixtures:
    """Fixtures shared by every group of conformance cases."""

    #: Seconds within which an unreachable store must raise BackendUnavailableError.
    unavailable_within: float = 15.0

    @pytest_asyncio.fixture
    async def stores(self, make_store: StoreFactory) -> AsyncIterator[StoreFactory]:
        """A factory that closes every store it made when the test ends."""
        made: list[BaseStorageBackend] = []

        def factory(namespace: str = "main", **options: Any) -> BaseStorageBackend:
            store = make_store(namespace, **options)
            made.append(store)
            return store

        yield factory
        for store in made:
            await store.close()

    @pytest_asyncio.fixture
    async def store(self, stores: StoreFactory) -> BaseStorageBackend:
        return stores("main")

    @pytest.fixture
    def unavailable_store(self, request: pytest.FixtureRequest) -> BaseStorageBackend:
        try:
            factory = request.getfixturevalue("make_unavailable_store")
        except pytest.FixtureLookupError:
            pytest.skip("this backend's tests provide no unreachable store")
        store: BaseStorageBackend = factory()
        return store
