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

Peak memory is measured in a second run of each path under ``tracemalloc`` (which slows
it, hence the separate run): the peak of Python allocations above the start of the run.
A streaming command's peak stays flat as the store grows; compare ``--quick`` with the
full run.

Run: ``python -m bench.bench_commands [--quick] [--records N] [--naive N] [--batch-size N]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import shutil
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

from bench.harness import Row, agent_record, parser, print_table, save_json

BENCH = "commands"
NAIVE = "naive loop (get/set each)"
TMPFS = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()


def _storage(root: str, run: int) -> dict[str, Any]:
    return {
        "default": {"BACKEND": "orm"},
        "files": {"BACKEND": "file", "OPTIONS": {"data_dir": os.path.join(root, "files")}},
        "rows": {"BACKEND": "orm", "OPTIONS": {"namespace": "bench-rows"}},
        "copy_rows": {"BACKEND": "orm", "OPTIONS": {"namespace": f"bench-copy-{run}"}},
        "copy_files": {"BACKEND": "file",
                       "OPTIONS": {"data_dir": os.path.join(root, f"copy-{run}")}},
    }


async def _seed(alias: str, count: int) -> None:
    from prism_storage import storages

    store = storages[alias]
    for start in range(0, count, 1000):
        await store.set_many({f"agent/{i:07d}": agent_record(i)
                              for i in range(start, min(count, start + 1000))})
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

    def storage() -> Any:
        return override_settings(PRISM_STORAGE=_storage(root, next(run_ids)))

    async def measure(case: str, path: str, count: int, baseline: bool,
                      work: Callable[[], Awaitable[Any]]) -> None:
        with storage():
            rate = await _timed(work, count)
        with storage():
            peak = await _peak_mb(work)
        rows.append(Row(BENCH, case, path, ops_per_s=rate, baseline=baseline,
                        extra={"records": count, "peak_mb": round(peak, 1)}))
        print(f"  {case:16} {path:28} {rate:10,.0f} records/s  peak {peak:7.1f} MB",
              flush=True)

    try:
        async with scratch_databases("prism_bench_commands", sqlite_file):
            with override_settings(PRISM_STORAGE=_storage(root, -1)):
                print(f"seeding {records:,} records in a file store and an orm store ...")
                await _seed("files", records)
                await _seed("rows", records)
            jsonl = os.path.join(root, "export.jsonl")
            cases = [
                ("copy file→orm", "prism_copy", "files", "copy_rows"),
                ("copy orm→file", "prism_copy", "rows", "copy_files"),
            ]
            for case, command, src, dst in cases:
                await measure(case, NAIVE, naive, True,
                              lambda s=src, d=dst: _naive_copy(s, d, naive))
                await measure(case, command, records, False,
                              lambda s=src, d=dst, c=command: asyncio.to_thread(
                                  _command, c, s, d, *batch))
            for case, src in (("export orm", "rows"), ("export file", "files")):
                await measure(case, NAIVE, naive, True,
                              lambda s=src: _naive_export(s, jsonl, naive))
                await measure(case, "prism_export", records, False,
                              lambda s=src: asyncio.to_thread(
                                  _command, "prism_export", s, "-o", jsonl, *batch))
    finally:
        shutil.rmtree(root, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            os.remove(sqlite_file)

    print_table(rows, f"management commands, {records:,} records (naive loop: {naive:,}), "
                      f"file store on {TMPFS}, orm on PostgreSQL")
    print("\n| case | path | records | peak traced memory MB |\n|---|---|---:|---:|")
    for row in rows:
        print(f"| {row.case} | {row.path} | {row.extra['records']:,} | "
              f"{row.extra['peak_mb']:.1f} |")
    if args.json:
        save_json(rows, args.json)
    return rows


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
