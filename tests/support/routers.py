"""The test settings' database router."""

from __future__ import annotations

from typing import Any

#: The DATABASES aliases of servers nothing answers (the outage tests' mirrors).
UNREACHABLE = frozenset({"unreachable", "mariadb_unreachable"})


class UnreachableAliases:
    """Nothing is migrated to an unreachable alias; every other decision is Django's."""

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        return False if db in UNREACHABLE else None
