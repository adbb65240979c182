"""``manage.py prism_copy SRC DST``: copy every record of one store into another."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ...backends.base import BaseStorageBackend
from ...exceptions import PrismStorageError
from ..base import (
    INTERRUPTED,
    OnExisting,
    Progress,
    add_batch_size_argument,
    add_existing_arguments,
    add_prefix_argument,
    error_text,
    key_batches,
    on_existing,
    open_store,
    progress_bar,
    require_listing,
    run,
    store_alias,
    using_stores,
)
from ..expiry import read_batch, write_batch

SAMPLE = 5  # keys quoted in an error message


@dataclass
class CopyStats:
    read: int = 0
    copied: int = 0
    skipped: int = 0
    #: Listed in SRC but gone (deleted or expired) before they could be read or written.
    vanished: int = 0
    #: Keys that already existed in DST (what a dry run would overwrite, skip or refuse).
    existing: int = 0
    verified: int = 0
    mismatched: list[str] = field(default_factory=list)
    mismatched_count: int = 0
    #: With --skip-existing and --verify: kept DST records that differ from SRC.
    stale_skipped: int = 0
    #: Written without their expiry, DST being unable to expire records.
    expiry_dropped: int = 0
    batches: int = 0


class Command(BaseCommand):
    help = (
        "Copy every record (or those whose key starts with --prefix) from store SRC to "
        "store DST, in batches: each is a new write in DST (a new version), keeping the "
        "time it had left to live where SRC keeps record metadata. Without --overwrite or "
        "--skip-existing the copy refuses to touch a key that already exists in DST. An "
        "interrupted copy is resumed by running it again with --skip-existing."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("src", type=store_alias, metavar="SRC", help="alias to read")
        parser.add_argument("dst", type=store_alias, metavar="DST", help="alias to write")
        add_prefix_argument(parser, "copy only keys starting with this")
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="read SRC and DST and report what would happen; write nothing",
        )
        add_existing_arguments(parser)
        parser.add_argument(
            "--verify",
            action="store_true",
            help="read every written record back from DST and compare it with SRC",
        )
        add_batch_size_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        src_alias, dst_alias = options["src"], options["dst"]
        if src_alias == dst_alias:
            raise CommandError("SRC and DST are the same store; nothing to copy.")
        policy = on_existing(options)
        src, dst = open_store(src_alias), open_store(dst_alias)
        require_listing(src, src_alias, "Source")
        self.verbosity: int = options["verbosity"]
        self.stats = CopyStats()
        started = time.monotonic()
        try:
            run(self._copy(src, dst, options["prefix"], policy, options))
        except KeyboardInterrupt:
            raise CommandError(
                f"Interrupted after copying {self.stats.copied} record(s). Run the same "
                "command with --skip-existing to resume.",
                returncode=INTERRUPTED,
            ) from None
        self._report(src_alias, dst_alias, options, time.monotonic() - started)

    def batch_done(self, stats: CopyStats) -> None:
        """Called after each batch is written (a hook for subclasses and tests)."""

    async def _copy(
        self,
        src: BaseStorageBackend,
        dst: BaseStorageBackend,
        prefix: str,
        policy: OnExisting,
        options: dict[str, Any],
    ) -> None:
        bar = progress_bar(self, self.verbosity, f"{options['src']} → {options['dst']}")
        async with using_stores([src, dst]):
            try:
                await self._refuse_if_dst_has_keys(dst, prefix, policy, options)
                async for keys in key_batches(src, prefix, options["batch_size"]):
                    await self._copy_batch(src, dst, keys, policy, options, bar)
            except PrismStorageError as exc:
                raise CommandError(
                    f"The copy stopped after {self.stats.copied} record(s): {error_text(exc)}. "
                    "Fix the cause and run the same command with --skip-existing to resume."
                ) from exc
            finally:
                bar.close()

    async def _refuse_if_dst_has_keys(
        self, dst: BaseStorageBackend, prefix: str, policy: OnExisting, options: dict[str, Any]
    ) -> None:
        """Fail before writing anything when DST already holds records under ``prefix``.

        Stores that cannot list are checked batch by batch instead (see _copy_batch).
        """
        if policy is not OnExisting.REFUSE or options["dry_run"] or not dst.supports_listing:
            return
        async for keys in key_batches(dst, prefix, 1):
            raise CommandError(
                f"Store {options['dst']!r} already holds records"
                f"{f' under prefix {prefix!r}' if prefix else ''} (e.g. {keys[0]!r}). "
                "Pass --skip-existing to keep them (this resumes an interrupted copy) or "
                "--overwrite to replace them with SRC's."
            )

    async def _copy_batch(
        self,
        src: BaseStorageBackend,
        dst: BaseStorageBackend,
        keys: list[str],
        policy: OnExisting,
        options: dict[str, Any],
        bar: Progress,
    ) -> None:
        stats = self.stats
        values, expiries = await read_batch(src, keys)
        stats.read += len(values)
        stats.vanished += len(keys) - len(values)
        need_existing = policy is not OnExisting.OVERWRITE or options["dry_run"]
        existing = await dst.get_many(list(values)) if need_existing else {}
        stats.existing += len(existing)
        if policy is OnExisting.REFUSE and existing and not options["dry_run"]:
            sample = ", ".join(map(repr, list(existing)[:SAMPLE]))
            raise CommandError(
                f"{len(existing)} key(s) of this batch already exist in {options['dst']!r} "
                f"({sample}); {stats.copied} record(s) were copied before it. Pass "
                "--skip-existing or --overwrite."
            )
        if policy is OnExisting.SKIP:
            batch = {k: v for k, v in values.items() if k not in existing}
        else:
            batch = values
        stats.skipped += len(values) - len(batch)
        stats.batches += 1
        if not options["dry_run"]:
            done = await write_batch(dst, batch, expiries)
            stats.copied += done.written
            stats.vanished += len(done.expired)
            stats.expiry_dropped += done.expiry_dropped
            for key in done.expired:
                del batch[key]
            if options["verify"]:
                await self._verify(dst, batch, existing, values)
        bar.update(len(keys))
        if self.verbosity >= 2:
            self.stdout.write(
                f"batch {stats.batches}: read {stats.read}, copied {stats.copied}, "
                f"skipped {stats.skipped}"
            )
        self.batch_done(stats)

    async def _verify(
        self,
        dst: BaseStorageBackend,
        written: dict[str, dict[str, Any]],
        existing: dict[str, dict[str, Any]],
        source: dict[str, dict[str, Any]],
    ) -> None:
        stats = self.stats
        stored = await dst.get_many(written)
        bad = [key for key, value in written.items() if stored.get(key) != value]
        stats.verified += len(written) - len(bad)
        stats.mismatched_count += len(bad)
        stats.mismatched.extend(bad[: max(0, SAMPLE - len(stats.mismatched))])
        stats.stale_skipped += sum(
            1 for key, value in existing.items() if key not in written and source[key] != value
        )

    def _report(
        self, src_alias: str, dst_alias: str, options: dict[str, Any], seconds: float
    ) -> None:
        stats = self.stats
        if stats.mismatched_count:
            raise CommandError(
                f"--verify: {stats.mismatched_count} record(s) read back from {dst_alias!r} "
                f"differ from {src_alias!r} (e.g. {', '.join(map(repr, stats.mismatched))})."
            )
        if self.verbosity < 1:
            return
        extra = f", {stats.vanished} vanished from SRC while copying" if stats.vanished else ""
        if options["dry_run"]:
            self.stdout.write(
                f"Dry run: {stats.read} record(s) in {src_alias!r}, {stats.existing} of "
                f"them already in {dst_alias!r}{extra}. Nothing was written."
            )
            if stats.existing and on_existing(options) is OnExisting.REFUSE:
                self.stdout.write(
                    "A real run would refuse to touch them: pass --skip-existing or --overwrite."
                )
            return
        rate = stats.read / seconds if seconds > 0 else 0.0
        self.stdout.write(
            self.style.SUCCESS(
                f"Copied {stats.copied} record(s) from {src_alias!r} to {dst_alias!r}, "
                f"skipped {stats.skipped}{extra}, in {seconds:.1f} s ({rate:,.0f} records/s)."
            )
        )
        if stats.expiry_dropped:
            self.stderr.write(
                f"{stats.expiry_dropped} record(s) had an expiry that {dst_alias!r} cannot "
                "keep (it does not support ttl); they were written without one."
            )
        if options["verify"]:
            self.stdout.write(f"Verified {stats.verified} record(s): all equal.")
            if stats.stale_skipped:
                self.stderr.write(
                    f"{stats.stale_skipped} record(s) kept in {dst_alias!r} by --skip-existing "
                    f"differ from {src_alias!r}; use --overwrite to replace them."
                )
