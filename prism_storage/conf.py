"""Settings access. Read on use, never at import."""

from __future__ import annotations

from typing import Any

from django.conf import settings

#: Used when ``PRISM_STORAGE`` is not set: one ``orm`` store on the default database.
DEFAULT_STORAGE_SETTING: dict[str, dict[str, Any]] = {"default": {"BACKEND": "orm"}}

#: Keys an alias's configuration may have.
ALIAS_KEYS = frozenset({"BACKEND", "OPTIONS"})


def storage_setting() -> Any:
    return getattr(settings, "PRISM_STORAGE", DEFAULT_STORAGE_SETTING)


def api_max_body_size() -> int:
    """Largest request body the JSON API accepts, in bytes (``PRISM_STORAGE_API_MAX_BODY``)."""
    return int(getattr(settings, "PRISM_STORAGE_API_MAX_BODY", 10 * 1024 * 1024))
