"""The ``prism_copy`` and ``prism_export`` commands against a naive loop of single calls.

Cases, each over ~2.5 KB agent records (100,000 by default, 10,000 with ``--quick``):

* ``copy file→orm``: a file store on tmpfs (``/dev/shm``) into an ``orm`` store on
  PostgreSQL (a scratch database, ``prism_bench_commands``, created and dropped here);
* ``copy orm→file``: back again, into a new file store;
* ``export orm`` and ``export file``: JSON Lines to a file on tmpfs.

Paths:

* ``naive loop`` (the baseline): what a user writes without the commands — list the keys
  with ``iter_keys`` and, for each one, ``await src.get(key)`` then ``await dst.set(key,
  value)`` (or write the line). Measured over the first ``--naive`` records (default
  10,000; 2,000 with ``--quick``): it is a rate, and 100,000 single ORM writes take minutes.
* ``prism_copy`` / ``prism_export``: the command through ``call_command``, as ``manage.py``
  runs it (key pages, ``get_many``/``set_many`` batches of ``--batch-size``, one event loop).

Each round measures both paths of every case once, in an order rotated round by round
(``--rounds``, default 5, 2 with ``--quick``), each measurement into a fresh destination;
a figure is the median over rounds, the ratio the median of same-round ratios (min-max
shown). The naive loop moves values as they are (no JSON of its own), so there is no
orjson variant of it.

Peak memory is measured once per path after the rounds, in a run of its own under
``tracemalloc`` (which slows it, hence the separate run): the peak of Python allocations
above the start of the run. A streaming command's peak stays flat as the store grows;
compare ``--quick`` with the full run.

Run: ``python -m bench.bench_commands [--quick] [--rounds N] [--records N] [--naive N]
[--batch-size N]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import os
import shutil
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

from bench.harness import (
    Case,
    Row,
    agent_record,
    measure_cases,
    parser,
    print_table,
    rounds_of,
    save_json,
)

BENCH = "commands"
NAIVE = "naive loop (get/set each)"
TMPFS = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()


def _storage(root: str, run: int) -> dict[str, Any]:
    return {
        "default": {"BACKEND": "orm"},
        "files": {"BACKEND": "file", "OPTIONS": {"data_dir": os.path.join(root, "files")}},
        "rows": {"BACKEND": "orm", "OPTIONS": {"namespace": "bench-rows"}},
        "copy_rows": {"BACKEND": "orm", "OPTIONS": {"namespace": f"bench-copy-{run}"}},
        "copy_files": {
            "BACKEND": "file",
            "OPTIONS": {"data_dir": os.path.join(root, f"copy-{run}")},
        },
    }


async def _seed(alias: str, count: int) -> None:
    from prism_storage import storages

    store = storages[alias]
    for start in range(0, count, 1000):
        await store.set_many(
            {f"agent/{i:07d}": agent_record(i) for i in range(start, min(count, start + 1000))}
        )
    await store.close()


async def _naive_copy(src_alias: str, dst_alias: str, limit: int) -> int:
    from prism_storage import storages

    src, dst = storages[src_alias], storages[dst_alias]
    done = 0
    async for key in src.iter_keys():
        value = await src.get(key)
        if value is not None:
            await dst.set(key, value)
        done += 1
        if done == limit:
            break
    await src.close()
    await dst.close()
    return done


async def _naive_export(src_alias: str, path: str, limit: int) -> int:
    from prism_storage import storages
    from prism_storage.management.jsonl import dump_record

    src = storages[src_alias]
    done = 0
    with open(path, "w", encoding="utf-8") as out:
        async for key in src.iter_keys():
            value = await src.get(key)
            if value is not None:
                out.write(dump_record(key, value))
            done += 1
            if done == limit:
                break
    await src.close()
    return done


def _command(*args: str) -> None:
    from django.core.management import call_command

    call_command(*args, stdout=io.StringIO(), stderr=io.StringIO())


async def _timed(work: Callable[[], Awaitable[Any]], records: int) -> float:
    started = time.perf_counter()
    await work()
    return records / (time.perf_counter() - started)


async def _peak_mb(work: Callable[[], Awaitable[Any]]) -> float:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        await work()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return (peak - base) / 1e6


async def main(argv: list[str] | None = None) -> list[Row]:
    p = parser(__doc__.splitlines()[0])  # type: ignore[union-attr]
    p.add_argument("--records", type=int, default=None, help="records per store")
    p.add_argument("--naive", type=int, default=None, help="records for the naive loops")
    p.add_argument("--batch-size", default="500", help="the commands' --batch-size")
    args = p.parse_args(argv)
    records = args.records or (10_000 if args.quick else 100_000)
    naive = min(records, args.naive or (2_000 if args.quick else 10_000))

    from bench.harness import setup_django

    setup_django()
    from django.test.utils import override_settings

    from bench.orm_paths import scratch_databases

    root = tempfile.mkdtemp(prefix="prism-bench-commands-", dir=TMPFS)
    sqlite_file = os.path.join(tempfile.gettempdir(), f"prism-bench-cmd-{os.getpid()}.sqlite3")
    rows: list[Row] = []
    run_ids = iter(range(1_000_000))
    batch = ["--batch-size", args.batch_size]
    rounds = rounds_of(args)

    def storage() -> Any:
        return override_settings(PRISM_STORAGE=_storage(root, next(run_ids)))

    def timed(count: int, work: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[float]]:
        async def measure() -> float:
            with storage():  # a fresh destination (namespace, directory) each time
                return await _timed(work, count)

        return measure

    try:
        async with scratch_databases("prism_bench_commands", sqlite_file):
            with override_settings(PRISM_STORAGE=_storage(root, -1)):
                print(f"seeding {records:,} records in a file store and an orm store ...")
                await _seed("files", records)
                await _seed("rows", records)
            jsonl = os.path.join(root, "export.jsonl")
            # (case, [(path, records, work)]), the naive loop (the baseline) first.
            plans: list[tuple[str, list[tuple[str, int, Callable[[], Awaitable[Any]]]]]] = []
            for case, command, src, dst in (
                ("copy file→orm", "prism_copy", "files", "copy_rows"),
                ("copy orm→file", "prism_copy", "rows", "copy_files"),
            ):
                plans.append(
                    (
                        case,
                        [
                            (NAIVE, naive, functools.partial(_naive_copy, src, dst, naive)),
                            (
                                command,
                                records,
                                functools.partial(
                                    asyncio.to_thread, _command, command, src, dst, *batch
                                ),
                            ),
                        ],
                    )
                )
            for case, src in (("export orm", "rows"), ("export file", "files")):
                plans.append(
                    (
                        case,
                        [
                            (NAIVE, naive, functools.partial(_naive_export, src, jsonl, naive)),
                            (
                                "prism_export",
                                records,
                                functools.partial(
                                    asyncio.to_thread,
                                    _command,
                                    "prism_export",
                                    src,
                                    "-o",
                                    jsonl,
                                    *batch,
                                ),
                            ),
                        ],
                    )
                )
            cases = [
                Case(BENCH, case, [(path, timed(count, work)) for path, count, work in paths])
                for case, paths in plans
            ]
            rows = await measure_cases(cases, rounds)
            flat = [(count, work) for _, paths in plans for _, count, work in paths]
            for row, (count, work) in zip(rows, flat, strict=True):
                with storage():
                    peak = await _peak_mb(work)
                row.extra.update({"records": count, "peak_mb": round(peak, 1)})
                print(
                    f"  {row.case:16} {row.path:28} {row.ops_per_s or 0:10,.0f} records/s  "
                    f"peak {peak:7.1f} MB",
                    flush=True,
                )
    finally:
        shutil.rmtree(root, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            os.remove(sqlite_file)

    print_table(
        rows,
        f"management commands, {records:,} records (naive loop: {naive:,}), "
        f"file store on {TMPFS}, orm on PostgreSQL, median of {rounds} "
        "rotated round(s)",
    )
    print("\n| case | path | records | peak traced memory MB |\n|---|---|---:|---:|")
    for row in rows:
        print(
            f"| {row.case} | {row.path} | {row.extra['records']:,} | {row.extra['peak_mb']:.1f} |"
        )
    if args.json:
        save_json(rows, args.json)
    return rows


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
