"""``manage.py prism_supabase_sql [--table NAME]``: print the SQL that creates (or upgrades)
the table of the ``supabase`` backend and its functions, for the Supabase SQL editor or a
Supabase migration."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand

from ...backends.supabase import table_sql
from ...exceptions import InvalidOptionError


def table_name(value: str) -> str:
    """argparse ``type=``: a table name the backend accepts."""
    try:
        table_sql(value)
    except InvalidOptionError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return value


class Command(BaseCommand):
    help = (
        "Print the SQL that creates the supabase backend's table and functions (row-level "
        "security on, access for the service role only), or upgrades a table made by an "
        "earlier version (safe to run again). Paste it into the Supabase SQL editor or save "
        "it as a migration."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--table",
            type=table_name,
            default="agents",
            help="The table name, as in the backend's `table` option (default: agents).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(table_sql(options["table"]), ending="")
