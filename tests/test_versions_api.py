"""The base class's part of versioned records: what it hands the backend hooks."""

from __future__ import annotations

import json
from typing import Any

import pytest

from prism_storage import MemoryStorageBackend


class _Recording(MemoryStorageBackend):
    """A memory store that keeps the ``items_data`` its append hook receives."""

    seen: list[str]

    async def _append_items(
        self,
        key: str,
        field: str,
        items: list[Any],
        items_data: str,
        max_items: int | None,
        ttl: float | None,
    ) -> int:
        self.seen.append(items_data)
        return await super()._append_items(key, field, items, items_data, max_items, ttl)


@pytest.mark.parametrize("field", ["messages", "é", 'a"b', "🤖", "back\\slash", "x" * 300])
async def test_append_hands_the_items_as_a_json_array(field):
    store = _Recording()
    store.seen = []
    items = [{"a": 1, "b": [None, True]}, "é\n", 1.5, -(2**70), [], {}]
    assert await store.append("k", items, field=field) == len(items)
    (data,) = store.seen
    assert data.startswith("[") and data.endswith("]")
    assert json.loads(data) == items
    assert await store.get("k") == {field: items}
