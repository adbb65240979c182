"""System checks for ``PRISM_STORAGE`` (``manage.py check``).

Ids are stable: prism_storage.E001-E007, E010, E011 and E020 here; each backend adds its own
messages through ``BaseStorageBackend.check()`` (E008/W001 file, E009 orm, E101/W101
redis, W030/W031 supabase). The database check W012 (``check --database``, ``migrate``)
reports key columns that are not exact on MySQL/MariaDB.
"""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, Tags, register

from .conf import access_policy, storage_setting, trace_keys
from .exceptions import ConfigurationError, InvalidOptionError, MissingDependencyError
from .handler import alias_config, build_store
from .registry import Registry, check_options

SETTING_HINT = (
    "PRISM_STORAGE = {'default': {'BACKEND': 'orm'}, "
    "'files': {'BACKEND': 'file', 'OPTIONS': {'data_dir': BASE_DIR / 'agent-data'}}}"
)


@register(Tags.compatibility, "prism_storage")
def check_storage_setting(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    setting = storage_setting()
    if not isinstance(setting, dict):
        return [
            Error(
                f"PRISM_STORAGE must be a dict of aliases, not {type(setting).__name__}.",
                hint=f"For example: {SETTING_HINT}",
                id="prism_storage.E001",
            )
        ]
    messages: list[CheckMessage] = []
    if "default" not in setting:
        messages.append(
            Error(
                "PRISM_STORAGE has no 'default' store.",
                hint="Add a 'default' alias, e.g. {'default': {'BACKEND': 'orm'}}.",
                id="prism_storage.E002",
            )
        )
    for alias in setting:
        messages.extend(_check_alias(setting, alias))
    return messages


@register(Tags.security, "prism_storage")
def check_access_policy(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    try:
        access_policy()
    except ConfigurationError as exc:
        return [
            Error(
                str(exc),
                hint="PRISM_STORAGE_ACCESS = 'myproject.access.policy', a callable "
                "policy(user, alias, operation[, key]) -> bool.",
                id="prism_storage.E010",
            )
        ]
    return []


# Only under Django's "database" tag: it connects, so it runs with `check --database` and
# before `migrate`, never with a plain `check` (or `check --tag prism_storage`).
@register(Tags.database)
def check_exact_keys(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[CheckMessage]:
    from .backends.orm.exact_keys import check_exact_keys

    return check_exact_keys(databases)


@register(Tags.security, "prism_storage")
def check_trace_keys(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if type(trace_keys()) is not bool:
        return [
            Error(
                "PRISM_STORAGE_TRACE_KEYS must be True or False.",
                hint="Leave it unset (False) unless traces may show record keys.",
                id="prism_storage.E020",
            )
        ]
    return []


def _check_alias(setting: dict[str, Any], alias: Any) -> list[CheckMessage]:
    where = f"PRISM_STORAGE[{alias!r}]"
    try:
        backend, options = alias_config(setting, alias)
    except ConfigurationError as exc:
        return [
            Error(
                str(exc),
                hint="Each alias is {'BACKEND': <name or dotted path>, 'OPTIONS': {...}}.",
                id="prism_storage.E003",
            )
        ]
    if "alias" in options:
        return [
            Error(
                f"{where}['OPTIONS'] sets 'alias'.",
                hint="Remove it: every store is given the alias it is configured under.",
                id="prism_storage.E011",
            )
        ]
    try:
        provider_class = Registry.get_provider(backend)
    except ConfigurationError as exc:
        return [
            Error(
                f"{where}: {exc}",
                hint=f"Use one of: {', '.join(Registry.names())}.",
                id="prism_storage.E004",
            )
        ]
    try:
        check_options(provider_class, options)
    except InvalidOptionError as exc:
        return [Error(f"{where}: {exc}", id="prism_storage.E006")]
    check_dependencies = getattr(provider_class, "check_dependencies", None)
    try:
        if check_dependencies is not None:
            check_dependencies(**options)
    except MissingDependencyError as exc:
        return [
            Error(
                f"{where}: {exc}",
                hint=f"pip install 'prism-storage[{exc.extra}]'",
                id="prism_storage.E005",
            )
        ]
    try:
        store = build_store(alias, backend, options)
    except MissingDependencyError as exc:
        return [
            Error(
                f"{where}: {exc}",
                hint=f"pip install 'prism-storage[{exc.extra}]'",
                id="prism_storage.E005",
            )
        ]
    except (ConfigurationError, ValueError, TypeError) as exc:
        return [
            Error(
                f"{where}: invalid option value: {exc}",
                hint="See the backend's options in the prism_storage README.",
                id="prism_storage.E007",
            )
        ]
    messages: list[CheckMessage] = list(store.check())
    for message in messages:
        message.msg = f"{where}: {message.msg}"
    return messages
