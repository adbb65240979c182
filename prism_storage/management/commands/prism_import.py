"""``manage.py prism_import ALIAS``: load JSON Lines written by ``prism_export``."""

from __future__ import annotations

import argparse
import contextlib
import itertools
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from django.core.management.base import BaseCommand, CommandError

from ...backends.base import BaseStorageBackend
from ...exceptions import PrismStorageError
from ..base import (
    INTERRUPTED,
    OnExisting,
    add_batch_size_argument,
    add_existing_arguments,
    error_text,
    on_existing,
    open_store,
    progress_bar,
    run,
    store_alias,
    using_stores,
)
from ..expiry import write_batch
from ..jsonl import BadLine, Line, parse_record

MAX_REPORTED_LINES = 10

RawLine = str | bytes


@dataclass
class ImportStats:
    lines: int = 0
    bad: int = 0
    bad_lines: list[BadLine] = field(default_factory=list)
    #: Lines whose key already exists in the store (counted when checked: see _validate).
    existing: int = 0
    existing_sample: list[str] = field(default_factory=list)
    written: int = 0
    skipped: int = 0
    #: Lines whose expires_at had passed by the time they were written (not written).
    expired: int = 0
    #: Lines written without their expires_at, the store being unable to expire records.
    expiry_dropped: int = 0


class Command(BaseCommand):
    help = (
        "Import JSON Lines (as written by prism_export) into a store, from -i FILE or "
        "standard input. Each record is a new write (a new version); one that carries an "
        "expires_at keeps the time it has left. Every line is validated before anything "
        "is written: one bad "
        "line (reported with its number) and nothing is imported. Lines are applied in "
        "order, so for a key repeated in the file the last line wins (the first with "
        "--skip-existing)."
    )
    stealth_options = ("stdin",)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("alias", type=store_alias, metavar="ALIAS", help="store to fill")
        parser.add_argument(
            "-i", "--input", metavar="FILE", default="-", help="file to read; default stdin"
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="validate every line and report what would be written; write nothing",
        )
        add_existing_arguments(parser)
        add_batch_size_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        alias = options["alias"]
        policy = on_existing(options)
        store = open_store(alias)
        self.stats = ImportStats()
        with contextlib.ExitStack() as stack:
            source, name = self._open_input(options, stack)
            if _seekable(source):
                start = source.tell()
                spool = None
            else:
                # A pipe can be read once: keep a copy on disk for the writing pass.
                start = 0
                spool = stack.enter_context(tempfile.TemporaryFile("w+b"))
            try:
                run(self._import(store, source, spool, start, name, policy, options))
            except KeyboardInterrupt:
                raise CommandError(
                    f"Interrupted after writing {self.stats.written} record(s); each of them "
                    "is complete. Run the same command with --skip-existing to resume.",
                    returncode=INTERRUPTED,
                ) from None
        self._report(alias, name, policy, options)

    def _open_input(
        self, options: dict[str, Any], stack: contextlib.ExitStack
    ) -> tuple[IO[Any], str]:
        path = options["input"]
        if path == "-":
            stdin = options.get("stdin") or sys.stdin
            return getattr(stdin, "buffer", stdin), "standard input"
        try:
            return stack.enter_context(open(path, "rb")), path
        except OSError as exc:
            raise CommandError(f"Cannot read {path!r}: {exc}") from exc

    async def _import(
        self,
        store: BaseStorageBackend,
        source: IO[Any],
        spool: IO[bytes] | None,
        start: int,
        name: str,
        policy: OnExisting,
        options: dict[str, Any],
    ) -> None:
        async with using_stores([store]):
            try:
                await self._validate(store, source, spool, policy, options)
                self._refuse_if_invalid(store, name, policy, options)
                if options["dry_run"]:
                    return
                replay = spool if spool is not None else source
                replay.seek(start)
                await self._write(store, replay, policy, options)
            except PrismStorageError as exc:
                raise CommandError(
                    f"The import stopped after {self.stats.written} record(s), each of them "
                    f"complete: {error_text(exc)}. Fix the cause and run the same command "
                    "with --skip-existing to resume."
                ) from exc

    async def _validate(
        self,
        store: BaseStorageBackend,
        source: IO[Any],
        spool: IO[bytes] | None,
        policy: OnExisting,
        options: dict[str, Any],
    ) -> None:
        """First pass: parse every line, and look up which keys the store already holds
        when that decides anything (a refusal, or a dry run's report)."""
        stats = self.stats
        check_existing = options["dry_run"] or policy is OnExisting.REFUSE
        for lines in _batches(source, options["batch_size"]):
            if spool is not None:
                for line in lines:
                    spool.write(
                        line if isinstance(line, bytes) else line.encode("utf-8", "surrogatepass")
                    )
            keys: dict[str, int] = {}
            for line in lines:
                stats.lines += 1
                try:
                    key = parse_record(line, stats.lines, store.max_value_bytes).key
                except BadLine as bad:
                    stats.bad += 1
                    if len(stats.bad_lines) < MAX_REPORTED_LINES:
                        stats.bad_lines.append(bad)
                    continue
                keys.setdefault(key, stats.lines)
            if check_existing and keys and not stats.bad:
                existing = await store.get_many(list(keys))
                stats.existing += len(existing)
                for key in list(existing)[: max(0, 3 - len(stats.existing_sample))]:
                    stats.existing_sample.append(f"line {keys[key]}: {key!r}")

    def _refuse_if_invalid(
        self, store: BaseStorageBackend, name: str, policy: OnExisting, options: dict[str, Any]
    ) -> None:
        stats = self.stats
        if stats.bad:
            listed = "\n".join(f"  {bad}" for bad in stats.bad_lines)
            more = stats.bad - len(stats.bad_lines)
            raise CommandError(
                f"{name} has {stats.bad} bad line(s); nothing was written.\n{listed}"
                + (f"\n  ... and {more} more" if more else "")
            )
        if policy is OnExisting.REFUSE and stats.existing and not options["dry_run"]:
            raise CommandError(
                f"{stats.existing} key(s) in {name} already exist in {options['alias']!r} "
                f"({', '.join(stats.existing_sample)}); nothing was written. Pass "
                "--skip-existing to keep them or --overwrite to replace them."
            )

    async def _write(
        self,
        store: BaseStorageBackend,
        source: IO[Any],
        policy: OnExisting,
        options: dict[str, Any],
    ) -> None:
        """Second pass: write the validated lines, batch by batch, in file order."""
        stats = self.stats
        bar = progress_bar(self, options["verbosity"], f"import {options['alias']}")
        lineno = 0
        try:
            for lines in _batches(source, options["batch_size"]):
                batch: dict[str, Line] = {}
                for line in lines:
                    lineno += 1
                    try:
                        parsed = parse_record(line, lineno, store.max_value_bytes)
                    except BadLine as bad:
                        raise CommandError(
                            f"The input changed while it was being imported ({bad}); "
                            f"{stats.written} record(s) were written."
                        ) from None
                    if policy is OnExisting.SKIP:
                        batch.setdefault(parsed.key, parsed)
                    else:
                        batch[parsed.key] = parsed
                if policy is OnExisting.SKIP:
                    for key in await store.get_many(list(batch)):
                        del batch[key]
                done = await write_batch(
                    store,
                    {key: line.value for key, line in batch.items()},
                    {key: line.expires_at for key, line in batch.items()},
                )
                stats.written += done.written
                stats.expired += len(done.expired)
                stats.expiry_dropped += done.expiry_dropped
                stats.skipped += len(lines) - len(batch)
                bar.update(len(lines))
        finally:
            bar.close()

    def _report(self, alias: str, name: str, policy: OnExisting, options: dict[str, Any]) -> None:
        stats = self.stats
        if options["verbosity"] < 1:
            return
        if options["dry_run"]:
            fate = {
                OnExisting.REFUSE: "a real run would refuse them (pass --skip-existing or "
                "--overwrite)",
                OnExisting.SKIP: "they would be kept",
                OnExisting.OVERWRITE: "they would be replaced",
            }[policy]
            self.stdout.write(
                f"Dry run: {stats.lines} valid record(s) in {name}; {stats.existing} of "
                f"their keys already exist in {alias!r}"
                + (f": {fate}" if stats.existing else "")
                + ". Nothing was written."
            )
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"Imported {stats.written} record(s) into {alias!r} from {name}"
                + (f", skipped {stats.skipped}" if stats.skipped else "")
                + (f", {stats.expired} already expired" if stats.expired else "")
                + "."
            )
        )
        if stats.expiry_dropped:
            self.stderr.write(
                f"{stats.expiry_dropped} record(s) had an expiry that {alias!r} cannot keep "
                "(it does not support ttl); they were written without one."
            )


def _seekable(stream: IO[Any]) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, ValueError, OSError):
        return False


def _batches(source: IO[Any], size: int) -> Iterator[list[RawLine]]:
    """Yield lists of at most ``size`` lines read from ``source``."""
    lines = iter(source)
    while batch := list(itertools.islice(lines, size)):
        yield batch
