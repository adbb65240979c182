"""``manage.py prism_sweep [ALIAS ...]``: remove expired records."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ...backends.base import BaseStorageBackend
from ..base import (
    configured_aliases,
    error_text,
    open_store,
    run,
    store_alias,
    using_stores,
)


class Command(BaseCommand):
    help = (
        "Remove expired records from the stores that keep them until swept (file, orm, "
        "supabase). Without ALIAS every configured store is visited and stores that expire "
        "records themselves (redis) are reported as skipped; naming such a store is an "
        "error. Run it from cron or a task scheduler."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "aliases",
            nargs="*",
            type=store_alias,
            metavar="ALIAS",
            help="stores to sweep (default: every configured store)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        named = list(dict.fromkeys(options["aliases"]))
        stores = {alias: open_store(alias) for alias in named or configured_aliases()}
        if named:
            unsweepable = [a for a, s in stores.items() if not s.supports_sweep]
            if unsweepable:
                raise CommandError(
                    "Nothing to sweep in "
                    + "; ".join(f"{a!r} ({_why_no_sweep(stores[a])})" for a in unsweepable)
                    + "."
                )
        results = run(self._sweep_all(stores))
        verbose = options["verbosity"] >= 1
        removed = 0
        failed: list[str] = []
        for alias, outcome in results.items():
            store = stores[alias]
            if isinstance(outcome, int):
                removed += outcome
                if verbose:
                    self.stdout.write(f"{alias}: removed {outcome} expired record(s)")
            elif outcome is None:
                if verbose:
                    self.stdout.write(f"{alias}: skipped ({_why_no_sweep(store)})")
            else:
                failed.append(alias)
                self.stderr.write(f"{alias}: failed: {outcome}")
        if failed:
            raise CommandError(
                f"{len(failed)} store(s) could not be swept: {', '.join(failed)} "
                f"(removed {removed} record(s) elsewhere)."
            )
        if verbose:
            swept = sum(1 for outcome in results.values() if isinstance(outcome, int))
            self.stdout.write(
                self.style.SUCCESS(f"Removed {removed} expired record(s) from {swept} store(s).")
            )

    async def _sweep_all(
        self, stores: dict[str, BaseStorageBackend]
    ) -> dict[str, int | str | None]:
        """``alias -> removed count``, ``None`` if skipped, or the error text if it failed."""
        results: dict[str, int | str | None] = {}
        async with using_stores(stores.values()):
            for alias, store in stores.items():
                if not store.supports_sweep:
                    results[alias] = None
                    continue
                try:
                    results[alias] = await store.sweep()
                except Exception as exc:  # one failing store must not stop the others
                    results[alias] = error_text(exc)
        return results


def _why_no_sweep(store: BaseStorageBackend) -> str:
    if store.supports_ttl:
        return f"the {store.backend_name} store drops expired records itself"
    return f"the {store.backend_name} store has no expiry"
