"""A third-party-style backend implementing only the specification's three methods.

It keeps records in a process-wide dict (per ``name``) and declares no capabilities, so
the API and the admin can be tested against a store that cannot list, search or expire.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from prism_storage.backends.base import BaseStorageBackend


class MinimalBackend(BaseStorageBackend):
    backend_name = "minimal"
    _data: ClassVar[dict[str, dict[str, str]]] = {}

    def __init__(self, name: str = "main") -> None:
        self.name = name

    def _records(self) -> dict[str, str]:
        return self._data.setdefault(self.name, {})

    async def _get(self, key: str) -> dict[str, Any] | None:
        data = self._records().get(key)
        return None if data is None else json.loads(data)

    async def _set(self, key: str, value: dict[str, Any], data: str, ttl: float | None) -> None:
        self._records()[key] = data

    async def _delete(self, key: str) -> None:
        self._records().pop(key, None)
