"""The operations logger: one DEBUG line per observed operation, warnings for outages.

Logs name the operation, the store, how many keys and how long it took; never a key, a
value or a query.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["log_operation", "logger"]

#: DEBUG: one line per operation; WARNING: outages and retries.
logger = logging.getLogger("prism_storage.operations")


def log_operation(
    name: str, store: Any, keys: list[str] | None, elapsed: float, error_type: str | None
) -> None:
    """Log one finished operation at DEBUG (the caller checked that DEBUG is on)."""
    logger.debug(
        "%s on store %r (%s): %s key(s), %.3f ms, %s",
        name,
        store.alias,
        store.backend_name,
        "-" if keys is None else len(keys),
        elapsed * 1000,
        "ok" if error_type is None else f"failed ({error_type})",
    )
