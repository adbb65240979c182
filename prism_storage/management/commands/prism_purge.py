"""``manage.py prism_purge ALIAS --prefix P [--dry-run] [--noinput] [--all]``: erase the
records under a prefix (a user's or a tenant's data), with ``delete_prefix``."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ...backends.base import BaseStorageBackend
from ..base import error_text, key_prefix, open_store, run, store_alias, using_stores


class Command(BaseCommand):
    help = (
        "Erase every record of a store whose key starts with --prefix (for a tenant scope "
        "use the scope's encoded prefix, e.g. 'acme/'). It asks for confirmation, showing "
        "how many records match, unless --noinput. Erasing the whole store takes --all "
        "instead of a prefix. --dry-run only counts."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("alias", type=store_alias, metavar="ALIAS", help="the store")
        parser.add_argument(
            "--prefix",
            type=key_prefix,
            default="",
            help="erase the records whose key starts with this (a partial key)",
        )
        parser.add_argument(
            "--all",
            action="store_true",
            dest="erase_all",
            help="erase every record of the store (instead of --prefix)",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="count the records that would be erased (by listing them); erase nothing",
        )
        parser.add_argument(
            "--noinput",
            "--no-input",
            action="store_false",
            dest="interactive",
            help="do not ask for confirmation",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        alias, prefix = options["alias"], options["prefix"]
        if options["erase_all"] and prefix:
            raise CommandError("Give either --prefix or --all, not both.")
        if not prefix and not options["erase_all"]:
            raise CommandError(
                "An empty prefix would erase the whole store: give --prefix, or --all to "
                "erase every record."
            )
        store = open_store(alias)
        if not store.supports_listing:
            raise CommandError(
                f"Store {alias!r} ({store.backend_name}) cannot list its keys, so it cannot "
                "erase by prefix."
            )
        what = f"under prefix {prefix!r}" if prefix else "(the whole store)"
        try:
            removed = run(self._purge(store, alias, prefix, what, options))
        except PurgeCancelled:
            raise CommandError("Erasure cancelled; nothing was erased.") from None
        if removed is not None and options["verbosity"] >= 1:
            self.stdout.write(self.style.SUCCESS(f"{alias}: erased {removed} record(s) {what}."))

    async def _purge(
        self,
        store: BaseStorageBackend,
        alias: str,
        prefix: str,
        what: str,
        options: dict[str, Any],
    ) -> int | None:
        """The count erased, or ``None`` on a dry run."""
        async with using_stores([store]):
            try:
                if options["dry_run"] or options["interactive"]:
                    count = await _count(store, prefix)
                    if options["dry_run"]:
                        self.stdout.write(f"{alias}: would erase {count} record(s) {what}.")
                        return None
                    if count == 0:
                        self.stdout.write(f"{alias}: no record {what}; nothing to erase.")
                        return 0
                    self._confirm(f"Erase {count} record(s) of store {alias!r} {what}?")
                return await store.delete_prefix(prefix, all=not prefix)
            except PurgeCancelled:
                raise
            except Exception as exc:
                raise CommandError(f"{alias}: erasure failed: {error_text(exc)}") from exc

    def _confirm(self, question: str) -> None:
        # The loop runs this command's pipeline and nothing else: reading the terminal on
        # it delays nothing (see management/base.py).
        answer = input(f"{question} This cannot be undone. Type 'yes' to continue: ")
        if answer.strip().lower() != "yes":
            raise PurgeCancelled


class PurgeCancelled(Exception):
    """The user did not confirm."""


async def _count(store: BaseStorageBackend, prefix: str) -> int:
    count = 0
    async for _ in store.iter_keys(prefix, page_size=5000):
        count += 1
    return count
