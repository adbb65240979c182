"""Records gain a ``version``: every existing row gets one of its own, at random."""

from typing import Any

from django.db import migrations, models

#: One random version per row, in one statement, where the database has the functions.
_RANDOM_VERSION = {
    "sqlite": "lower(hex(randomblob(8)))",
    "postgresql": "substr(md5(random()::text || {pk}::text), 1, 16)",
    "mysql": "lower(substr(md5(concat(rand(), {pk})), 1, 16))",
}


def give_rows_versions(apps: Any, schema_editor: Any) -> None:
    Record = apps.get_model("prism_storage", "Record")
    connection = schema_editor.connection
    expression = _RANDOM_VERSION.get(connection.vendor)
    if expression is None:  # elsewhere the rows keep the column's default, "0"
        return
    quote = connection.ops.quote_name
    meta = Record._meta
    random_version = expression.format(pk=quote(meta.pk.column))
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {quote(meta.db_table)} SET {quote('version')} = {random_version}")


class Migration(migrations.Migration):
    dependencies = [
        ("prism_storage", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="record",
            name="version",
            field=models.CharField(db_default="0", max_length=32),
        ),
        migrations.RunPython(give_rows_versions, migrations.RunPython.noop, elidable=True),
    ]
