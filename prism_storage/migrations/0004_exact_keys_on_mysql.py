"""On MySQL and MariaDB, keys and namespaces compare byte for byte.

Their columns otherwise take the table's collation, which is the server default:
``utf8mb4_general_ci`` on MariaDB, ``utf8mb4_0900_ai_ci`` on MySQL 8. Those compare case-
and accent-insensitively, so ``"Agent"`` and ``"agent"`` were one row of the unique index,
and a write of one silently replaced the other. ``utf8mb4_bin`` is not enough either: it
pads, so ``"trail "`` and ``"trail"`` were one row too. A binary *no-pad* collation is
exact, and it still hands the column back as ``str`` (a ``VARBINARY`` column would not).

Only the collation changes, so no row is lost: keys that were distinct stay distinct.
Other databases compare text exactly already; there this migration does nothing.

Reversed, the columns take the table's default collation again, as the earlier migrations
made them. That fails (a duplicate entry of the unique index, nothing changed) while the
store holds keys that differ only in case or in trailing spaces.

A later migration that alters these columns must restate the collation: Django's schema
editor rewrites a MySQL column whole, with the table's default collation.
"""

from typing import Any

from django.db import migrations

#: The exact collations, the first the server has wins: MySQL 8 and MariaDB >= 11.4 know
#: ``utf8mb4_0900_bin``; MariaDB >= 10.2 knows ``utf8mb4_nopad_bin``.
EXACT_COLLATIONS = ("utf8mb4_0900_bin", "utf8mb4_nopad_bin")


def exact_collation(cursor: Any) -> str:
    """The first of :data:`EXACT_COLLATIONS` the server has."""
    marks = ", ".join(["%s"] * len(EXACT_COLLATIONS))
    cursor.execute(
        f"SELECT COLLATION_NAME FROM information_schema.COLLATIONS WHERE COLLATION_NAME IN ({marks})",
        list(EXACT_COLLATIONS),
    )
    found = {row[0] for row in cursor.fetchall()}
    for name in EXACT_COLLATIONS:
        if name in found:
            return name
    raise RuntimeError(
        f"This MySQL/MariaDB server has none of the collations {EXACT_COLLATIONS}: "
        "prism_storage needs MySQL 8 or MariaDB 10.2 or later."
    )


def make_keys_exact(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "mysql":
        with schema_editor.connection.cursor() as cursor:
            collation = exact_collation(cursor)
        _modify_key_columns(apps, schema_editor, f"CHARACTER SET utf8mb4 COLLATE {collation}")


def make_keys_table_default(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "mysql":
        _modify_key_columns(apps, schema_editor, "")


def _modify_key_columns(apps: Any, schema_editor: Any, charset: str) -> None:
    connection = schema_editor.connection
    meta = apps.get_model("prism_storage", "Record")._meta
    quote = schema_editor.quote_name
    columns = []
    for name in ("namespace", "key"):
        field = meta.get_field(name)
        definition = " ".join(filter(None, [field.db_type(connection), charset, "NOT NULL"]))
        columns.append(f"MODIFY {quote(field.column)} {definition}")
    # One statement: the table, and the unique index on (namespace, key), are rebuilt once.
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {quote(meta.db_table)} {', '.join(columns)}")


class Migration(migrations.Migration):
    dependencies = [
        ("prism_storage", "0003_store"),
    ]

    operations = [
        migrations.RunPython(make_keys_exact, make_keys_table_default),
    ]
