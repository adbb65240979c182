"""``manage.py prism_check [ALIAS ...]``: is every store reachable, and how fast?"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from ...backends.base import BaseStorageBackend
from ...exceptions import BackendUnavailableError
from ..base import configured_aliases, error_text, run, store_alias

PROBE_PREFIX = "prism-storage:check:"
DEFAULT_TIMEOUT = 10.0


@dataclass
class Health:
    alias: str
    backend: str = ""
    status: str = "ok"  # "ok", "down" (unreachable, timed out) or "error" (anything else)
    ping_ms: float | None = None
    write_ms: float | None = None
    capabilities: dict[str, bool] = field(default_factory=dict)
    description: str = ""
    error: str = ""

    @property
    def healthy(self) -> bool:
        return self.status == "ok"


def positive_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not 0 < seconds < float("inf"):
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return seconds


class Command(BaseCommand):
    help = (
        "Connect to each store (default: every configured store) and report its backend, "
        "capabilities and round-trip latency. --write also stores, reads back and deletes "
        "a probe record. Exits with status 1 if any store is unhealthy, so it can serve as "
        "a container health check."
    )
    # Checks each store itself, reporting a misconfigured one instead of refusing to run.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "aliases",
            nargs="*",
            type=store_alias,
            metavar="ALIAS",
            help="stores to check (default: every configured store)",
        )
        parser.add_argument(
            "--write",
            action="store_true",
            help="also set, get and delete a probe record (needs write access)",
        )
        parser.add_argument("--json", action="store_true", help="print the report as JSON")
        parser.add_argument(
            "--timeout",
            type=positive_seconds,
            default=DEFAULT_TIMEOUT,
            metavar="SECONDS",
            help=f"time allowed per store (default {DEFAULT_TIMEOUT:g})",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        aliases = list(dict.fromkeys(options["aliases"])) or configured_aliases()
        report = run(self._check_all(aliases, options["write"], options["timeout"]))
        if options["json"]:
            self.stdout.write(
                json.dumps([{**asdict(h), "healthy": h.healthy} for h in report], indent=2)
            )
        elif options["verbosity"] >= 1:
            self._print_table(report)
        unhealthy = [h.alias for h in report if not h.healthy]
        if unhealthy:
            raise CommandError(
                f"{len(unhealthy)} of {len(report)} store(s) unhealthy: {', '.join(unhealthy)}."
            )

    async def _check_all(
        self, aliases: list[str], write: bool, seconds_per_store: float
    ) -> list[Health]:
        return [await self._check(alias, write, seconds_per_store) for alias in aliases]

    async def _check(self, alias: str, write: bool, seconds_per_store: float) -> Health:
        from ...handler import storages

        health = Health(alias)
        try:
            store = storages[alias]
        except ImproperlyConfigured as exc:
            health.status, health.error = "error", error_text(exc)
            return health
        health.backend = store.backend_name
        health.capabilities = dict(store.capabilities)
        health.description = store.describe()
        try:
            async with asyncio.timeout(seconds_per_store):
                started = time.perf_counter()
                await store.ping()
                health.ping_ms = (time.perf_counter() - started) * 1000
                if write:
                    started = time.perf_counter()
                    await self._probe(store)
                    health.write_ms = (time.perf_counter() - started) * 1000
        except (BackendUnavailableError, TimeoutError) as exc:
            health.status = "down"
            health.error = (
                error_text(exc) if str(exc) else f"no answer within {seconds_per_store:g} s"
            )
        except Exception as exc:  # a health check reports every failure rather than crash
            health.status, health.error = "error", error_text(exc)
        finally:
            try:
                await store.close()
            except Exception as exc:
                if health.healthy:
                    health.status, health.error = "error", f"close failed: {error_text(exc)}"
        return health

    @staticmethod
    async def _probe(store: BaseStorageBackend) -> None:
        """Write, read back and delete a probe record under a fresh key."""
        key = f"{PROBE_PREFIX}{uuid.uuid4().hex}"
        value: dict[str, Any] = {"probe": key, "at": time.time()}
        dimensions = store.dimensions
        if store.supports_search and dimensions is not None and dimensions > 0:
            # A vector store needs the record's embedding; a unit vector suits every metric.
            value["embedding"] = [1.0] + [0.0] * (dimensions - 1)
        try:
            await store.set(key, value)
            stored = await store.get(key)
            if stored != value:
                raise RuntimeError("the probe record read back differs from what was written")
        finally:
            await store.delete(key)
        if await store.get(key) is not None:
            raise RuntimeError("the probe record is still there after delete")

    def _print_table(self, report: list[Health]) -> None:
        header = ("STORE", "BACKEND", "STATUS", "PING", "WRITE", "CAPABILITIES", "DETAIL")
        rows = [
            (
                h.alias,
                h.backend or "?",
                h.status,
                _ms(h.ping_ms),
                _ms(h.write_ms),
                ",".join(name for name, on in h.capabilities.items() if on) or "-",
                h.error or h.description,
            )
            for h in report
        ]
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]

        def line(cells: tuple[str, ...]) -> str:
            padded = [cell.ljust(width) for cell, width in zip(cells, widths, strict=False)]
            return "  ".join([*padded, cells[-1]]).rstrip()

        self.stdout.write(line(header))
        for health, row in zip(report, rows, strict=True):
            style = self.style.SUCCESS if health.healthy else self.style.ERROR
            self.stdout.write(line(row), style_func=style)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}ms"
