"""The SQL of the ``supabase`` backend's table and its functions (``<table>_prism_set``,
``_put``, ``_remove``, ``_append``, ``_pop``, ``_touch``), and the check of a table name."""

from __future__ import annotations

import importlib.resources
import re

from ...exceptions import InvalidOptionError

__all__ = ["check_table_name", "table_sql"]

_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,47}")


def table_sql(table: str = "agents") -> str:
    """The SQL that creates the backend's ``table`` and its functions, or upgrades a table
    made by an earlier version (paste-ready for the Supabase editor; safe to run again)."""
    check_table_name(table)
    template = importlib.resources.files("prism_storage").joinpath("sql/supabase.sql")
    return re.sub(r'"agents(?=["_])', f'"{table}', template.read_text(encoding="utf-8"))


def check_table_name(table: object) -> str:
    """``table`` if it is a usable table name, else InvalidOptionError."""
    if not isinstance(table, str) or not _TABLE_NAME.fullmatch(table):
        raise InvalidOptionError(
            f"table must be a table name of letters, digits and _ (at most 48 characters, "
            f"not starting with a digit), not {table!r}."
        )
    return table
