"""``manage.py prism_export ALIAS``: write a store's records as JSON Lines."""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ...backends.base import BaseStorageBackend
from ...exceptions import PrismStorageError
from ..base import (
    INTERRUPTED,
    add_batch_size_argument,
    add_prefix_argument,
    error_text,
    key_batches,
    open_store,
    progress_bar,
    require_listing,
    run,
    store_alias,
    using_stores,
)
from ..jsonl import dump_record


class Command(BaseCommand):
    help = (
        "Export the records of a store (or those whose key starts with --prefix) as JSON "
        'Lines, one {"key": ..., "value": {...}} object per line (with "version", '
        '"created_at", "updated_at" and "expires_at" where the store keeps them), to '
        "standard output or to -o FILE. Memory use does not grow with the size of the store."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("alias", type=store_alias, metavar="ALIAS", help="store to export")
        add_prefix_argument(parser, "export only keys starting with this")
        parser.add_argument(
            "-o",
            "--output",
            metavar="FILE",
            default="-",
            help="file to write (replaced only once the export is complete); default stdout",
        )
        add_batch_size_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        alias = options["alias"]
        store = open_store(alias)
        require_listing(store, alias, "The")
        self.exported = 0
        output = options["output"]
        try:
            if output == "-":
                self._export_to_stdout(store, options)
            else:
                self._export_to_file(store, output, options)
        except KeyboardInterrupt:
            raise CommandError(
                f"Interrupted after {self.exported} record(s).", returncode=INTERRUPTED
            ) from None
        if options["verbosity"] >= 1 and output != "-":
            self.stdout.write(
                self.style.SUCCESS(f"Exported {self.exported} record(s) of {alias!r} to {output}.")
            )

    def _export_to_stdout(self, store: BaseStorageBackend, options: dict[str, Any]) -> None:
        def write(chunk: str) -> None:
            self.stdout.write(chunk, ending="")

        # The records are the output, so no progress bar is drawn over them.
        run(self._export(store, write, options, show_progress=False))
        self.stdout.flush()

    def _export_to_file(
        self, store: BaseStorageBackend, path: str, options: dict[str, Any]
    ) -> None:
        """Write to a temp file beside ``path`` and rename it into place at the end, so an
        interrupted export never leaves a truncated file that looks complete."""
        directory = os.path.dirname(os.path.abspath(path))
        try:
            fd, temp = tempfile.mkstemp(dir=directory, prefix=".prism-export-", suffix=".tmp")
        except OSError as exc:
            raise CommandError(f"Cannot write to {path!r}: {exc}") from exc
        try:
            with open(fd, "w", encoding="utf-8", newline="\n") as fh:
                run(self._export(store, fh.write, options, show_progress=True))
            os.replace(temp, path)
            temp = ""
        except OSError as exc:
            raise CommandError(f"Cannot write to {path!r}: {exc}") from exc
        finally:
            if temp:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temp)

    async def _export(
        self,
        store: BaseStorageBackend,
        write: Callable[[str], Any],
        options: dict[str, Any],
        show_progress: bool,
    ) -> None:
        verbosity = options["verbosity"] if show_progress else 0
        bar = progress_bar(self, verbosity, f"export {options['alias']}")
        async with using_stores([store]):
            try:
                batches = key_batches(store, options["prefix"], options["batch_size"])
                async for keys in batches:
                    chunk, count = await _lines(store, keys)
                    if chunk:
                        write(chunk)
                    self.exported += count
                    bar.update(count)
            except PrismStorageError as exc:
                raise CommandError(
                    f"The export stopped after {self.exported} record(s): {error_text(exc)}"
                ) from exc
            finally:
                bar.close()


async def _lines(store: BaseStorageBackend, keys: list[str]) -> tuple[str, int]:
    """The lines of the records ``keys`` (with their metadata where the store keeps
    it), and how many there are. Keys deleted or expired since the listing are left out."""
    if store.supports_versions:
        records = await store.get_many_records(keys)
        lines = [dump_record(k, records[k].value, records[k]) for k in keys if k in records]
    else:
        values = await store.get_many(keys)
        lines = [dump_record(k, values[k]) for k in keys if k in values]
    return "".join(lines), len(lines)
