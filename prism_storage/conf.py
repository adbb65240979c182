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


def access_policy() -> Any:
    """The callable named by ``PRISM_STORAGE_ACCESS`` (a dotted path or a callable), or
    ``None``. It is called as ``policy(user, alias, operation) -> bool``, or with the key
    too, ``policy(user, alias, operation, key)``, when it takes a fourth argument (see
    :mod:`prism_storage.access`)."""
    policy = getattr(settings, "PRISM_STORAGE_ACCESS", None)
    if policy is None or callable(policy):
        return policy
    from django.utils.module_loading import import_string

    from .exceptions import ConfigurationError

    try:
        if not isinstance(policy, str):
            raise TypeError(f"got {type(policy).__name__}")
        return import_string(policy)
    except (ImportError, TypeError) as exc:
        raise ConfigurationError(
            f"PRISM_STORAGE_ACCESS must be a callable or the dotted path of one: {exc}"
        ) from exc


def trace_keys() -> Any:
    """Whether spans name the keys an operation touched (``PRISM_STORAGE_TRACE_KEYS``,
    default ``False``: keys may identify people). A store used without Django settings
    (a script) keeps them out."""
    return settings.configured and getattr(settings, "PRISM_STORAGE_TRACE_KEYS", False)
