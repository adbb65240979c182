"""The ``mariadb`` test database: whether its server answers, and skipping its tests when not.

The tests that use MariaDB (``databases`` naming ``mariadb`` in their ``django_db`` mark)
are skipped, with the reason, when the server does not answer or ``mysqlclient`` is not
installed. ``scripts/test.sh`` provides both and sets ``PRISM_TEST_MYSQL_REQUIRED=1``, so a
missing server fails the run there instead of skipping.
"""

from __future__ import annotations

import functools
import os

import pytest
from django.conf import settings

ALIASES = frozenset({"mariadb", "mariadb_unreachable"})


@functools.cache
def unavailable_reason() -> str | None:
    """Why the ``mariadb`` database cannot be used, or ``None`` when it can."""
    try:
        import MySQLdb
    except ImportError:
        return "mysqlclient is not installed (pip install 'prism-storage[mysql]')"
    db = settings.DATABASES["mariadb"]
    try:
        connection = MySQLdb.connect(
            host=db["HOST"],
            port=int(db["PORT"]),
            user=db["USER"],
            password=db["PASSWORD"],
            connect_timeout=3,
        )
    except MySQLdb.Error as exc:
        return f"MariaDB at {db['HOST']}:{db['PORT']} does not answer ({exc.args[-1]})"
    connection.close()
    return None


def skip_unless_available(items: list[pytest.Item]) -> None:
    """Skip the tests that use MariaDB when it is unavailable, and take its aliases off
    every test's databases (pytest-django would otherwise try to create them)."""
    naming = [item for item in items if ALIASES & set(_databases(item))]
    if not naming:
        return
    reason = unavailable_reason()
    if reason is None:
        return
    if os.environ.get("PRISM_TEST_MYSQL_REQUIRED") == "1":
        raise pytest.UsageError(f"PRISM_TEST_MYSQL_REQUIRED=1 but {reason}.")
    for item in naming:
        marker = item.get_closest_marker("django_db")
        assert marker is not None
        others = [alias for alias in _databases(item) if alias not in ALIASES]
        if not others or _runs_on_mariadb(item):
            item.add_marker(pytest.mark.skip(reason=reason))
        # The closest django_db mark wins: this one, the same without the MariaDB aliases.
        item.add_marker(
            pytest.mark.django_db(*marker.args, **{**marker.kwargs, "databases": others}),
            append=False,
        )


def _databases(item: pytest.Item) -> list[str]:
    marker = item.get_closest_marker("django_db")
    databases = marker.kwargs.get("databases") if marker is not None else None
    return [] if not databases or databases == "__all__" else list(databases)


def _runs_on_mariadb(item: pytest.Item) -> bool:
    """A test parametrized by database (or by path) whose case at hand is MariaDB's."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    return any(isinstance(value, str) and value.startswith("mariadb") for value in params.values())
