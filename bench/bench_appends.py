"""Atomic appends: 64 concurrent appenders adding messages to a record's list, per store.

Every case runs 64 asyncio tasks, each appending one ~200-byte message per call to the
``"messages"`` list of a record: all on ONE hot key, or spread over 64 keys (each call to
a key drawn at random, the same draw for every path). Stores: ``memory``, ``file`` on
tmpfs (``/dev/shm``), ``orm`` on SQLite (a scratch file) and on PostgreSQL (a scratch
database, ``prism_bench_appends``), and ``redis`` (a private ``redis-server`` on a free
loopback port unless ``--url`` names one).

Paths:

* ``naive get+set`` (the baseline): what a user writes without atomic lists, on the same
  prism store: ``v = await store.get(k) or {}; v.setdefault("messages", []).append(item);
  await store.set(k, v)``. Two round trips, and concurrent callers overwrite each other's
  messages: the bench counts what was kept and reports the loss.
* ``prism append``: ``await store.append(k, [item])``, one atomic operation of the store.
  Every message must be kept exactly once; the bench checks that after every burst, prints
  loudly if anything was lost or duplicated, and exits non-zero.
* ``django select_for_update`` (orm stores only): the atomic append a Django user writes
  with the ORM directly, on prism's own ``Record`` model and the store's namespace:
  ``transaction.atomic()`` + ``Record.objects.select_for_update().get_or_create(...)``,
  append to the ``value["messages"]`` JSONField list, a new ``version`` (where the model
  has that column), ``save(update_fields=...)``. Django's async ORM has no transactions,
  so each call runs through
  ``sync_to_async(thread_sensitive=False)`` (the event loop's default thread pool, one
  connection per thread). SQLite has no ``FOR UPDATE`` (Django drops it): there the path
  uses a second alias on the same file with Django's ``transaction_mode: IMMEDIATE``, so
  the transaction takes the write lock at BEGIN, and a 60 s lock timeout (the default 5 s
  ran out under 6 contending threads): Django's docs' advice against "database is
  locked".

A store whose ``supports_atomic_lists`` is false has no ``prism append`` row; a note says
so. A measurement is a number of *bursts* (4, 1 with ``--quick``, or ``--bursts N``):
before each burst (untimed) every key is reset to a record of 20 messages; the burst's 64
tasks then make 4 appends each (256 appends, timed); after it (untimed) the messages
stored are counted against those appended. So every burst starts from the same record
sizes, whatever the round. Each round measures every path of every case once, in an order
rotated round by round (``--rounds``, default 5, 2 with ``--quick``); ops/s is the median
over rounds and a ratio the median of same-round ratios (min-max shown); "kept" sums all
the rounds' bursts.

Run: ``python -m bench.bench_appends [--quick] [--rounds N] [--bursts N]
[--store memory|file|orm-sqlite|orm-pg|redis ...] [--url redis://...]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from bench.harness import (
    Case,
    Measure,
    Row,
    measure_cases,
    pair_ratio,
    parser,
    print_table,
    rounds_of,
    save_json,
    throughput,
)

NAIVE = "naive get+set"
PRISM = "prism append"
DJANGO = "django select_for_update"
TASKS = 64
#: Appends each task makes in one burst: a burst on the hot key takes its list from
#: SEED_MESSAGES to SEED_MESSAGES + TASKS * APPENDS_PER_TASK messages (about 55 KB).
APPENDS_PER_TASK = 4
SEED_MESSAGES = 20
BURSTS = 4
QUICK_BURSTS = 1
LAYOUTS = (("1 hot key", 1), ("64 keys", 64))
STORES = ("memory", "file", "orm-sqlite", "orm-pg", "redis")
NAMESPACE = "bench-appends"
#: The alias the Django path uses on SQLite (bench/settings.py): the scratch file, with
#: transactions begun IMMEDIATE.
SQLITE_IMMEDIATE = "sqlite_immediate"
_TEXT = "The agent read the quarterly report and summarised the revenue by region. " * 3


def message(ident: str) -> dict[str, Any]:
    """A chat message of about 200 bytes as JSON; ``id`` tells who appended it."""
    return {"id": ident, "role": "assistant", "content": _TEXT[:150], "ts": 1_700_000_000}


def seeded(key: str) -> dict[str, Any]:
    """The record every key is reset to before a burst."""
    return {
        "agent_id": key,
        "messages": [message(f"seed-{n}") for n in range(SEED_MESSAGES)],
        "state": {"step": 3, "done": False},
    }


class Path:
    """One way of appending a message to a record's list."""

    name = ""

    async def reset(self, keys: list[str]) -> None:
        raise NotImplementedError

    async def append(self, key: str, item: dict[str, Any]) -> None:
        raise NotImplementedError

    async def messages(self, keys: list[str]) -> list[dict[str, Any]]:
        """Every message stored under ``keys`` (after a burst)."""
        raise NotImplementedError


class StorePath(Path):
    """A path going through a prism store: reset with set_many, count with get_many."""

    def __init__(self, store: Any) -> None:
        self.store = store

    async def reset(self, keys: list[str]) -> None:
        await self.store.set_many({k: seeded(k) for k in keys})

    async def messages(self, keys: list[str]) -> list[dict[str, Any]]:
        found = await self.store.get_many(keys)
        return [m for value in found.values() for m in value.get("messages", [])]


class NaivePath(StorePath):
    name = NAIVE

    async def append(self, key: str, item: dict[str, Any]) -> None:
        value = await self.store.get(key) or {}
        value.setdefault("messages", []).append(item)
        await self.store.set(key, value)


class PrismPath(StorePath):
    name = PRISM

    async def append(self, key: str, item: dict[str, Any]) -> None:
        await self.store.append(key, [item])


class DjangoLockedPath(StorePath):
    """A row-locked read-modify-write through the Django ORM, in a thread per call.

    Records are reset through the prism store (same table and namespace) and counted
    through the model, as the user's own code would read them.
    """

    name = DJANGO

    def __init__(self, store: Any, alias: str) -> None:
        from asgiref.sync import sync_to_async

        from prism_storage.models import Record

        super().__init__(store)
        self.records = Record.objects.using(alias)
        self.alias = alias
        self.namespace = store.namespace
        # Where the model has prism's version column, the user's write bumps it too, so
        # that the store's readers (ETags, conditional writes) see the change.
        self.versioned = any(f.name == "version" for f in Record._meta.get_fields())
        self._append = sync_to_async(self._append_locked, thread_sensitive=False)
        self._count = sync_to_async(self._stored, thread_sensitive=False)

    def _append_locked(self, key: str, item: dict[str, Any]) -> None:
        from django.db import transaction
        from django.utils import timezone

        from prism_storage.backends.versions import new_version

        now = timezone.now()
        with transaction.atomic(using=self.alias):
            record, _ = self.records.select_for_update().get_or_create(
                namespace=self.namespace,
                key=key,
                defaults={"value": {}, "created_at": now, "updated_at": now},
            )
            record.value.setdefault("messages", []).append(item)
            record.updated_at = now
            fields = ["value", "updated_at"]
            if self.versioned:
                setattr(record, "version", new_version())  # noqa: B010 (not on every model version)
                fields.append("version")
            record.save(update_fields=fields)

    def _stored(self, keys: list[str]) -> list[dict[str, Any]]:
        rows = self.records.filter(namespace=self.namespace, key__in=keys)
        return [m for row in rows for m in row.value.get("messages", [])]

    async def append(self, key: str, item: dict[str, Any]) -> None:
        await self._append(key, item)

    async def messages(self, keys: list[str]) -> list[dict[str, Any]]:
        return await self._count(keys)


@dataclass
class Tally:
    """What one path did in one case, summed over every burst of every round."""

    appended: int = 0
    kept: int = 0
    duplicated: int = 0

    @property
    def lost(self) -> int:
        return self.appended - self.kept

    @property
    def lost_pct(self) -> float:
        return 100.0 * self.lost / self.appended if self.appended else 0.0


def burst_measure(
    path: Path, keys: list[str], tally: Tally, bursts: int, label: str
) -> Callable[[], Any]:
    """A measure: ``bursts`` times reset, append concurrently (timed), count (untimed);
    returns appends per second over the timed parts."""
    per_burst = TASKS * APPENDS_PER_TASK
    # Which key call i goes to: drawn at random (the same draw for every path), so that
    # callers in flight at once collide on a key now and then, as independent agents do;
    # i mod 64 would hand the 64 calls in flight 64 different keys.
    draw = random.Random(len(keys))
    spread = [draw.randrange(len(keys)) for _ in range(per_burst)]
    measured = 0

    async def measure() -> float:
        nonlocal measured
        seconds = 0.0
        for _ in range(bursts):
            measured += 1
            tag = f"{label}-{measured}-"
            await path.reset(keys)

            def op(i: int, tag: str = tag) -> Any:
                return path.append(keys[spread[i]], message(f"{tag}{i}"))

            started = time.perf_counter()
            await throughput(op, tasks=TASKS, total=per_burst)
            seconds += time.perf_counter() - started
            ids = [m.get("id") for m in await path.messages(keys)]
            mine = [i for i in ids if isinstance(i, str) and i.startswith(tag)]
            tally.appended += per_burst
            tally.kept += len(set(mine))
            tally.duplicated += len(mine) - len(set(mine))
        return bursts * per_burst / seconds

    return measure


@dataclass
class Target:
    """One store under test: its table label, its paths, and why a path is missing."""

    bench: str
    paths: list[Path]
    notes: list[str]


def target(bench: str, store: Any, django_alias: str | None = None) -> Target:
    paths: list[Path] = [NaivePath(store)]
    notes = []
    if store.supports_atomic_lists:
        paths.append(PrismPath(store))
    else:
        notes.append(f"{bench}: {PRISM} n/a (not supported: supports_atomic_lists is False)")
    if django_alias is not None:
        paths.append(DjangoLockedPath(store, django_alias))
    return Target(bench, paths, notes)


def plan(
    targets: list[Target], bursts: int
) -> tuple[list[Case], dict[tuple[str, str, str], Tally]]:
    cases: list[Case] = []
    tallies: dict[tuple[str, str, str], Tally] = {}
    for t in targets:
        for layout, count in LAYOUTS:
            case = f"{TASKS} tasks, {layout}"
            measures: list[tuple[str, Measure]] = []
            for number, path in enumerate(t.paths):
                # Keys of their own per path and layout: no path reads another's records.
                keys = [f"p{number}-{count}k-{j}" for j in range(count)]
                tally = tallies.setdefault((t.bench, case, path.name), Tally())
                measures.append(
                    (path.name, burst_measure(path, keys, tally, bursts, f"p{number}-{count}"))
                )
            cases.append(Case(t.bench, case, measures))
    return cases, tallies


def print_kept(rows: list[Row], notes: list[str]) -> bool:
    """Print what each path kept; return whether an atomic path lost or duplicated."""
    print("\n## appended messages kept (all rounds)\n")
    print("| bench | case | path | appended | kept | lost | duplicated |")
    print("|---|---|---|---:|---:|---:|---:|")
    broken = False
    for row in rows:
        x = row.extra
        print(
            f"| {row.bench} | {row.case} | {row.path} | {x['appended']:,} | {x['kept']:,} | "
            f"{x['lost']:,} ({x['lost_pct']:.1f}%) | {x['duplicated']:,} |"
        )
        if row.path != NAIVE and (x["lost"] or x["duplicated"]):
            broken = True
    for note in notes:
        print(f"\n{note}")
    if broken:
        print(
            "\n!!! AN ATOMIC PATH LOST OR DUPLICATED MESSAGES: see the table above !!!\n",
            file=sys.stderr,
            flush=True,
        )
    return broken


def print_goals(rows: list[Row]) -> None:
    """prism append against the naive loop and the Django row lock, same-round ratios."""
    print("\n## atomic append goals (>= 1.0x the naive loop, with nothing lost)\n")
    print(f"| bench | case | {PRISM} / {NAIVE} | {PRISM} / {DJANGO} |")
    print("|---|---|---:|---:|")
    for row in rows:
        if row.path != PRISM:
            continue
        naive = pair_ratio(rows, PRISM, NAIVE, row.case, bench=row.bench)
        django = pair_ratio(rows, PRISM, DJANGO, row.case, bench=row.bench)
        verdict = "" if naive is None else (" met" if naive.median >= 1.0 else " MISSED")
        print(f"| {row.bench} | {row.case} | {naive or ''}{verdict} | {django or 'n/a'} |")


@contextlib.asynccontextmanager
async def orm_databases() -> AsyncIterator[tuple[str, str]]:
    """Scratch PostgreSQL and SQLite databases (bench.orm_paths), with the IMMEDIATE
    alias pointed at the same SQLite file for the Django path."""
    from django.conf import settings

    from bench.orm_paths import scratch_databases

    sqlite_file = os.path.join(tempfile.gettempdir(), f"prism-bench-appends-{os.getpid()}.sqlite3")
    immediate: dict[str, Any] = settings.DATABASES[SQLITE_IMMEDIATE]  # type: ignore[assignment]
    saved = immediate["NAME"]
    async with scratch_databases("prism_bench_appends", sqlite_file) as aliases:
        immediate["NAME"] = sqlite_file
        try:
            yield aliases
        finally:
            immediate["NAME"] = saved


async def run(
    args: Any, rounds: int, stack: contextlib.AsyncExitStack
) -> tuple[list[Row], list[str]]:
    from prism_storage import (
        FileStorageBackend,
        MemoryStorageBackend,
        ORMStorageBackend,
        RedisStorageBackend,
    )

    chosen = args.store or list(STORES)
    targets: list[Target] = []
    stores: list[Any] = []

    def keep(store: Any) -> Any:
        stores.append(store)
        return store

    if "memory" in chosen:
        targets.append(target("memory", keep(MemoryStorageBackend())))
    if "file" in chosen:
        parent = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
        directory = tempfile.mkdtemp(prefix="prism-bench-appends-", dir=parent)
        stack.callback(shutil.rmtree, directory, ignore_errors=True)
        label = "file (tmpfs)" if parent == "/dev/shm" else "file (disk)"
        targets.append(target(label, keep(FileStorageBackend(directory))))
    if "orm-sqlite" in chosen or "orm-pg" in chosen:
        pg_alias, sqlite_alias = await stack.enter_async_context(orm_databases())
        if "orm-sqlite" in chosen:
            store = keep(ORMStorageBackend(namespace=NAMESPACE, using=sqlite_alias))
            targets.append(target("orm @ SQLite", store, SQLITE_IMMEDIATE))
        if "orm-pg" in chosen:
            store = keep(ORMStorageBackend(namespace=NAMESPACE, using=pg_alias))
            targets.append(target("orm @ PostgreSQL", store, pg_alias))
    if "redis" in chosen:
        from bench.bench_redis import private_server

        url = args.url or stack.enter_context(private_server())
        targets.append(target("redis", keep(RedisStorageBackend(url, prefix="bench-appends:"))))

    cases, tallies = plan(targets, args.bursts or (QUICK_BURSTS if args.quick else BURSTS))
    try:
        rows = await measure_cases(cases, rounds)
    finally:
        for store in stores:
            await store.close()
    for row in rows:
        tally = tallies[(row.bench, row.case, row.path)]
        row.extra.update(
            appended=tally.appended,
            kept=tally.kept,
            lost=tally.lost,
            lost_pct=round(tally.lost_pct, 2),
            duplicated=tally.duplicated,
        )
    return rows, [note for t in targets for note in t.notes]


async def main(argv: list[str] | None = None) -> list[Row]:
    p = parser((__doc__ or "").splitlines()[0])
    p.add_argument(
        "--store",
        action="append",
        choices=STORES,
        help="measure only this store (repeatable; default: all)",
    )
    p.add_argument("--url", help="use this Redis server instead of a private one")
    p.add_argument(
        "--bursts",
        type=int,
        default=None,
        help=f"bursts per measurement (default {BURSTS}, {QUICK_BURSTS} with --quick)",
    )
    args = p.parse_args(argv)
    rounds = rounds_of(args)

    from bench.harness import setup_django

    setup_django()
    async with contextlib.AsyncExitStack() as stack:
        rows, notes = await run(args, rounds, stack)
    print_table(
        rows,
        f"atomic appends, {TASKS} tasks, {os.cpu_count()} cores, "
        f"median of {rounds} rotated round(s)",
    )
    broken = print_kept(rows, notes)
    print_goals(rows)
    if args.json:
        save_json(rows, args.json)
    if broken:
        raise SystemExit(1)
    return rows


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
