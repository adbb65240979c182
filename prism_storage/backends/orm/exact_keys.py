"""Whether the ``Record`` table's key columns compare exactly on a MySQL/MariaDB database.

Migration ``0004_exact_keys_on_mysql`` gives them a binary no-pad collation. A later
migration that alters one of these columns without restating it (Django's MySQL schema
editor rewrites a column whole) would bring back the table's default collation, under which
keys differing in case or trailing spaces are one row: the database check
``prism_storage.W012`` reports it.
"""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Warning
from django.db import DatabaseError, connections, router

__all__ = ["EXACT_COLLATIONS", "check_exact_keys", "inexact_key_columns"]

#: Binary collations without trailing-space padding (``utf8mb4_bin`` pads).
EXACT_COLLATIONS = frozenset({"utf8mb4_0900_bin", "utf8mb4_nopad_bin"})


def inexact_key_columns(connection: Any, table: str) -> dict[str, str]:
    """``{column: collation}`` of the key columns of ``table`` that do not compare exactly
    (empty when the table does not exist yet)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COLUMN_NAME, COLLATION_NAME FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s "
            "AND COLUMN_NAME IN ('namespace', 'key')",
            [table],
        )
        rows = cursor.fetchall()
    return {column: collation for column, collation in rows if collation not in EXACT_COLLATIONS}


def check_exact_keys(databases: Any) -> list[CheckMessage]:
    """A warning per MySQL/MariaDB database whose key columns are not exact. A warning, not
    an error: ``migrate`` runs database checks first, and an error would stop the very
    migration that fixes it."""
    from ...models import Record

    messages: list[CheckMessage] = []
    for alias in databases or ():
        connection = connections[alias]
        if connection.vendor != "mysql" or not router.allow_migrate_model(alias, Record):
            continue
        try:
            found = inexact_key_columns(connection, Record._meta.db_table)
        except DatabaseError:  # unreachable: other checks and commands report it
            continue
        if found:
            columns = ", ".join(f"{column} ({found[column]})" for column in sorted(found))
            messages.append(
                Warning(
                    f"Database {alias!r}: the orm store's columns {columns} ignore case or "
                    "trailing spaces, so keys that differ only by them overwrite each other.",
                    hint="Run `manage.py migrate prism_storage` (0003 makes them exact); a "
                    "migration that alters these columns must restate "
                    "CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin (MariaDB) or "
                    "utf8mb4_0900_bin (MySQL).",
                    id="prism_storage.W012",
                )
            )
    return messages
