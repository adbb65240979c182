"""The ``orm`` backend against raw psycopg and the PostgreSQL stores users pick instead.

Paths on PostgreSQL (a scratch database, ``prism_bench_orm``, created and dropped here):

* ``raw psycopg pool`` (the baseline): an ``AsyncConnectionPool`` of 10 autocommit
  connections; set is one ``INSERT ... ON CONFLICT DO UPDATE`` of ``json.dumps(value)`` into
  the app's own table, get one ``SELECT value::text ... WHERE namespace AND key`` plus
  ``json.loads``. ``set_many``/``get_many`` are ``executemany`` of that upsert and one
  ``key = ANY(%s)`` select. What a careful user writes by hand.
* ``raw psycopg pool + orjson``: the same with ``orjson.dumps``/``orjson.loads``: the raw
  path with the fastest encoder a user would pick. Tables show a second ratio against it.
* ``prism orm``: ``ORMStorageBackend`` (validation, expiry filter, timestamps).
* ``prism orm batch=False``: the same backend sending each call on its own through the
  Django ORM (every call one ``sync_to_async`` hop): the backend as it was before batching.
* ``langgraph AsyncPostgresStore``: ``aput``/``aget`` (``abatch`` of ``PutOp``/``GetOp``
  for the 2,000-record batches) on one connection from ``from_conn_string``, after
  ``setup()``.
* ``django ORM naive``: ``Record.objects.aupdate_or_create`` / ``aget``.
* ``django DatabaseCache``: ``aset``/``aget`` (values pickled; no expiry, no culling).

On SQLite (a scratch file): ``prism orm`` against ``prism orm batch=False`` (the baseline
there, the backend's per-call path) and ``django ORM naive``.

Records are ~2.5 KB agent conversations and ~1 MB blobs; keys cycle over a fixed key space
(set overwrites, get hits). The tables are loaded, then ANALYZEd (as autovacuum would do
to a table in service) before anything is timed. Each round measures every path of every
case once, a case's paths back to back in an order rotated round by round (``--rounds``,
default 5, 2 with ``--quick``); a figure is the median over rounds and every ratio (the
goals' too) the median of same-round ratios, min-max shown.

Run: ``python -m bench.bench_orm [--quick] [--rounds N] [--no-sqlite]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import tempfile
import time
from typing import Any

from bench.harness import (
    Measure,
    Row,
    Size,
    agent_record,
    big_record,
    group_cases,
    measure_cases,
    pair_ratio,
    parser,
    print_table,
    rounds_of,
    save_json,
    set_get_cases,
)
from bench.orm_paths import (
    BATCH_OFF,
    DJANGO_CACHE,
    DJANGO_ORM,
    LANGGRAPH,
    PRISM,
    RAW,
    RAW_ORJSON,
    Path,
    analyze,
    pg_paths,
    scratch_databases,
    sqlite_paths,
)

BENCH_PG = "orm @ PostgreSQL"
BENCH_SQLITE = "orm @ SQLite"
TASKS = (1, 64)
BATCH_RECORDS = 2000
#: Goals on PostgreSQL: (case prefix, other path, least ratio prism / other).
GOALS = [
    ("set 2.5 KB, 64 tasks", LANGGRAPH, 1.0),
    ("get 2.5 KB, 64 tasks", LANGGRAPH, 1.0),
    ("set 2.5 KB, 64 tasks", DJANGO_ORM, 10.0),
    ("get 2.5 KB, 64 tasks", DJANGO_ORM, 10.0),
    ("set 2.5 KB, 1 task", RAW, 0.8),
    ("get 2.5 KB, 1 task", RAW, 0.8),
    (f"set_many {BATCH_RECORDS:,}", RAW, 0.8),
    (f"get_many {BATCH_RECORDS:,}", RAW, 0.8),
]


SIZES = (
    Size("2.5 KB", agent_record, key_space=2000, ops=4000, quick_ops=640),
    Size("1 MB", big_record, key_space=64, ops=128, quick_ops=64),
)
#: Paths too slow for the full operation count at 64 tasks run this share of it.
SLOW_PATHS = {DJANGO_ORM: 4, DJANGO_CACHE: 4, BATCH_OFF: 4}


def _cases(
    paths: list[Path], size: Size, ops: int, keys: list[str], values: list[dict[str, Any]]
) -> list[tuple[str, str, Measure]]:
    """(case, path, measure) for set and get at 1 and 64 tasks."""

    def total(path: Any, tasks: int) -> int:
        if tasks == 1:
            # Every path the same count: a shorter run would read fewer distinct records,
            # which SQLite's page cache then favours. At least 64 operations: fewer (1 MB
            # records) measured for well under a second and swung by 10% between runs.
            return max(64, ops // 4)
        return max(tasks * 4, ops // SLOW_PATHS.get(path.name, 1))

    return set_get_cases(paths, size, TASKS, keys, values, total)


def _batch_cases(paths: list[Path], repeats: int) -> list[tuple[str, str, Measure]]:
    keys = [f"batch-{i}" for i in range(BATCH_RECORDS)]
    mapping = {key: agent_record(i) for i, key in enumerate(keys)}
    found: list[tuple[str, str, Measure]] = []
    for path in paths:

        async def set_many(path: Path = path) -> float:
            started = time.perf_counter()
            for _ in range(repeats):
                await path.set_many(mapping)
            return BATCH_RECORDS * repeats / (time.perf_counter() - started)

        async def get_many(path: Path = path) -> float:
            started = time.perf_counter()
            for _ in range(repeats):
                got = await path.get_many(keys)
                if len(got) != BATCH_RECORDS:
                    raise AssertionError(f"{path.name} get_many found {len(got)} records")
            return BATCH_RECORDS * repeats / (time.perf_counter() - started)

        found.append((f"set_many {BATCH_RECORDS:,}", path.name, set_many))
        found.append((f"get_many {BATCH_RECORDS:,}", path.name, get_many))
    return found


async def _fill(paths: list[Path], keys: list[str], values: list[dict[str, Any]]) -> None:
    for path in paths:
        for start in range(0, len(keys), 64):
            await asyncio.gather(
                *(
                    path.set(k, v)
                    for k, v in zip(
                        keys[start : start + 64], values[start : start + 64], strict=True
                    )
                )
            )
        probe = await path.get(keys[-1])
        if probe != values[-1]:
            raise AssertionError(f"{path.name} did not round-trip a record")


async def _measure(
    bench: str, paths: list[Path], *, quick: bool, rounds: int, baseline: str, pg_alias: str | None
) -> list[Row]:
    plans: list[tuple[str, str, Measure]] = []
    for size in SIZES:
        keys = [f"{size.label.replace(' ', '')}-{i}" for i in range(size.key_space)]
        values = [size.make(i) for i in range(size.key_space)]
        await _fill(paths, keys, values)
        plans += _cases(paths, size, size.quick_ops if quick else size.ops, keys, values)
    if pg_alias is not None:
        plans += _batch_cases([p for p in paths if p.batches], 1 if quick else 3)
        for path in paths:  # the batch records exist before any get_many is timed
            if path.batches:
                await path.set_many({f"batch-{i}": agent_record(i) for i in range(BATCH_RECORDS)})
        await analyze(pg_alias)
    return await measure_cases(
        group_cases(bench, plans, baseline=baseline, fast=RAW_ORJSON), rounds
    )


def print_goals(rows: list[Row]) -> None:
    """Print the backend's same-round ratio against each goal on PostgreSQL (and SQLite)."""
    print("\n| case | prism orm / | ratio (min-max) | goal |")
    print("|---|---|---:|---|")
    for case, other, goal in GOALS:
        ratio = pair_ratio(rows, PRISM, other, case, bench=BENCH_PG)
        if ratio is not None:
            print(
                f"| {case} | {other} | {ratio} | >= {goal:.1f}x "
                f"{'met' if ratio.median >= goal else 'MISSED'} |"
            )
    for row in rows:
        if row.bench != BENCH_SQLITE or row.path != PRISM:
            continue
        ratio = pair_ratio(rows, PRISM, BATCH_OFF, row.case, bench=BENCH_SQLITE)
        if ratio is not None:
            print(
                f"| SQLite {row.case} | {BATCH_OFF} | {ratio} | >= 1.0x "
                f"{'met' if ratio.median >= 1.0 else 'MISSED'} |"
            )


async def main(argv: list[str] | None = None) -> list[Row]:
    p = parser(__doc__.splitlines()[0])  # type: ignore[union-attr]
    p.add_argument("--no-sqlite", action="store_true", help="skip the SQLite lines")
    args = p.parse_args(argv)
    rounds = rounds_of(args)

    from bench.harness import setup_django

    setup_django()
    from prism_storage import ORMStorageBackend

    with_batch_off = "batch" in inspect.signature(ORMStorageBackend).parameters
    rows: list[Row] = []
    sqlite_file = os.path.join(tempfile.gettempdir(), f"prism-bench-orm-{os.getpid()}.sqlite3")
    async with scratch_databases("prism_bench_orm", sqlite_file) as (pg_alias, sqlite_alias):
        paths = await pg_paths(pg_alias, with_batch_off=with_batch_off)
        try:
            found = await _measure(
                BENCH_PG, paths, quick=args.quick, rounds=rounds, baseline=RAW, pg_alias=pg_alias
            )
        finally:
            for path in paths:
                await path.close()
        print_table(found, f"orm backend on PostgreSQL, median of {rounds} rotated round(s)")
        rows += found
        if not args.no_sqlite:
            paths = sqlite_paths(sqlite_alias, with_batch_off=with_batch_off)
            try:
                found = await _measure(
                    BENCH_SQLITE,
                    paths,
                    quick=args.quick,
                    rounds=rounds,
                    baseline=BATCH_OFF if with_batch_off else DJANGO_ORM,
                    pg_alias=None,
                )
            finally:
                for path in paths:
                    await path.close()
            print_table(found, f"orm backend on SQLite, median of {rounds} rotated round(s)")
            rows += found
    print("\n## orm backend goals\n")
    print_goals(rows)
    if args.json:
        save_json(rows, args.json)
    return rows


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
