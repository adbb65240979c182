"""Listing a large ``file`` store: key pages, a full ``iter_keys()`` and ``prism_export``.

The store holds ``--records`` records (100,000 by default, 10,000 with ``--quick``) of
about 300 bytes each on tmpfs (``/dev/shm``), written in a shuffled order. Cases:

* ``first page``: ``keys(limit=100)``, on a store instance that has listed before (warm)
  and on a new instance (cold: it opens the index first);
* ``later page``: ``keys(limit=100, cursor=...)`` from a cursor in the middle;
* ``prefix page``: ``keys(prefix=..., limit=100)`` for a prefix in the middle;
* ``iter_keys``: every key, in pages of 500;
* ``prism_export``: the command through ``call_command`` into a JSON Lines file on tmpfs;
* ``index build``: the first listing of a directory written without an index (the index
  files are deleted first), which scans the directory once.

Paths: ``prism file`` (the sorted index, ``backends/file/index.py``) and, for the page cases,
``directory scan``: the listing the file store used before the index, kept here as a
function, which reads the whole directory for each page. Its full ``iter_keys`` would take
minutes at 100,000 records, so its figure is one page's time multiplied by the number of
pages (marked *estimated*).

Each figure is the median of ``--rounds`` rounds, with the min-max beside it (the machine
may be shared: load only ever slows a round down).

Run: ``python -m bench.bench_file_listing [--quick] [--records N] [--rounds N]``.
"""

from __future__ import annotations

import asyncio
import io
import os
import random
import shutil
import stat
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench.harness import Row, parser, save_json

BENCH = "file_listing"
PRISM = "prism file"
SCAN = "directory scan"
TMPFS = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
PAGE = 100
#: The issue's goals: milliseconds for pages and iter_keys, records/s for the export.
GOALS_MS = {"first page (warm)": 20.0, "later page": 20.0, "iter_keys": 2000.0}
GOAL_EXPORT = 20_000.0


def _key(i: int) -> str:
    return f"conv/{i % 997:03d}/{i:07d}"


def _value(i: int) -> dict[str, Any]:
    return {"role": "user", "turn": i, "text": "a short message of an agent's conversation " * 4}


def _scan_page(store: Any, prefix: str, limit: int, cursor: str | None) -> list[str]:
    """The file store's listing before the index: scan, filter, sort, for every page."""
    now = time.time()
    found: list[str] = []
    with os.scandir(store.data_dir) as entries:
        for entry in entries:
            key = store._scan.key_of(entry)
            if key is None or not key.startswith(prefix):
                continue
            if cursor is not None and key <= cursor:
                continue
            st = entry.stat(follow_symlinks=False)
            if st.st_mode & stat.S_IXUSR and st.st_mtime <= now:
                continue
            found.append(key)
    found.sort()
    return found[:limit]


#: CPU milliseconds (all threads of this process) of each round, by the case last measured.
CPU_MS: list[float] = []


async def _rounds(work: Callable[[], Awaitable[Any]], rounds: int) -> list[float]:
    """Wall-clock milliseconds of each round (CPU time goes to CPU_MS)."""
    times = []
    CPU_MS.clear()
    for _ in range(rounds):
        started, cpu = time.perf_counter(), time.process_time()
        await work()
        times.append((time.perf_counter() - started) * 1000)
        CPU_MS.append((time.process_time() - cpu) * 1000)
    return times


def _export(alias: str, path: str) -> None:
    from django.core.management import call_command

    call_command("prism_export", alias, "-o", path, stdout=io.StringIO(), stderr=io.StringIO())


async def main(argv: list[str] | None = None) -> list[Row]:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=None, help="records in the store")
    args = p.parse_args(argv)
    records = args.records or (10_000 if args.quick else 100_000)
    rounds = args.rounds or (3 if args.quick else 7)  # --rounds comes from bench.harness

    from bench.harness import setup_django

    setup_django()
    from django.test.utils import override_settings

    from prism_storage import FileStorageBackend
    from prism_storage.backends.file.index import INDEX_NAME

    root = tempfile.mkdtemp(prefix="prism-bench-listing-", dir=TMPFS)
    data_dir = os.path.join(root, "store")
    # case, path, wall ms, CPU ms, estimated
    results: list[tuple[str, str, list[float], list[float], bool]] = []

    def record(case: str, path: str, times: list[float], estimated: bool = False) -> None:
        results.append((case, path, times, list(CPU_MS), estimated))
        print(
            f"  {case:20} {path:16} median {statistics.median(times):9.2f} ms "
            f"(CPU {statistics.median(CPU_MS):9.2f} ms){'  (estimated)' if estimated else ''}",
            flush=True,
        )

    try:
        store = FileStorageBackend(data_dir=data_dir)
        order = list(range(records))
        random.Random(7).shuffle(order)
        print(f"seeding {records:,} records in {data_dir} ...", flush=True)
        for start in range(0, records, 1000):
            await store.set_many({_key(i): _value(i) for i in order[start : start + 1000]})
        keys = sorted(_key(i) for i in range(records))
        middle = keys[len(keys) // 2]
        prefix = middle.rsplit("/", 1)[0] + "/"

        await store.keys(limit=PAGE)
        record("first page (warm)", PRISM, await _rounds(lambda: store.keys(limit=PAGE), rounds))

        async def cold_first_page() -> None:
            fresh = FileStorageBackend(data_dir=data_dir)
            await fresh.keys(limit=PAGE)
            await fresh.close()

        record("first page (cold)", PRISM, await _rounds(cold_first_page, rounds))
        record(
            "later page",
            PRISM,
            await _rounds(lambda: store.keys(limit=PAGE, cursor=middle), rounds),
        )
        record("prefix page", PRISM, await _rounds(lambda: store.keys(prefix, limit=PAGE), rounds))

        async def iterate() -> None:
            count = sum([1 async for _ in store.iter_keys()])
            assert count == records, count

        record("iter_keys", PRISM, await _rounds(iterate, rounds))

        scan_rounds = max(1, rounds // 3)

        def scan(prefix: str, cursor: str | None) -> Callable[[], Awaitable[Any]]:
            return lambda: asyncio.to_thread(_scan_page, store, prefix, PAGE, cursor)

        first = await _rounds(scan("", None), scan_rounds)
        first_cpu = list(CPU_MS)
        record("first page (warm)", SCAN, first)
        record("later page", SCAN, await _rounds(scan("", middle), scan_rounds))
        record("prefix page", SCAN, await _rounds(scan(prefix, None), scan_rounds))
        pages = -(-records // 500)
        CPU_MS[:] = [t * pages for t in first_cpu]
        record("iter_keys", SCAN, [t * pages for t in first], estimated=True)

        jsonl = os.path.join(root, "export.jsonl")
        storage = {"files": {"BACKEND": "file", "OPTIONS": {"data_dir": data_dir}}}
        with override_settings(PRISM_STORAGE=storage):
            record(
                "prism_export",
                PRISM,
                await _rounds(lambda: asyncio.to_thread(_export, "files", jsonl), rounds),
            )
        with open(jsonl, encoding="utf-8") as fh:
            assert sum(1 for _ in fh) == records

        await store.close()

        async def build() -> None:
            for suffix in ("", "-wal", "-shm"):
                path = os.path.join(data_dir, INDEX_NAME + suffix)
                if os.path.exists(path):
                    os.remove(path)
            fresh = FileStorageBackend(data_dir=data_dir)
            await fresh.keys(limit=PAGE)
            await fresh.close()

        record("index build", PRISM, await _rounds(build, max(1, rounds // 3)))
    finally:
        shutil.rmtree(root, ignore_errors=True)

    rows = _report(results, records, rounds)
    if args.json:
        save_json(rows, args.json)
    return rows


def _report(
    results: list[tuple[str, str, list[float], list[float], bool]], records: int, rounds: int
) -> list[Row]:
    print(
        f"\n## file store listing, {records:,} records of ~300 B on {TMPFS}, "
        f"median of {rounds} rounds (directory scan: fewer)\n"
    )
    print(
        "CPU: the process's CPU time in all its threads; on a shared machine the wall-clock\n"
        "figure includes waiting for a core, the CPU figure does not.\n"
    )
    print("| case | path | median | min-max | CPU | goal |")
    print("|---|---|---:|---:|---:|---|")
    rows = []
    for case, path, times, cpu, estimated in results:
        median = statistics.median(times)
        cpu_median = statistics.median(cpu)
        goal = ""
        if case == "prism_export":
            rate = records / (median / 1000)
            shown = f"{rate:,.0f} records/s"
            spread = f"{records / (max(times) / 1000):,.0f}-{records / (min(times) / 1000):,.0f}"
            cpu_shown = f"{records / (cpu_median / 1000):,.0f} records/CPU-s"
            if path == PRISM:
                goal = f">= {GOAL_EXPORT:,.0f}/s {'met' if rate >= GOAL_EXPORT else 'MISSED'}"
            rows.append(
                Row(
                    BENCH,
                    case,
                    path,
                    ops_per_s=rate,
                    extra={"records": records, "cpu_ms": cpu_median},
                )
            )
        else:
            shown = f"{median:,.1f} ms" + (" (estimated)" if estimated else "")
            spread = f"{min(times):,.1f}-{max(times):,.1f}"
            cpu_shown = f"{cpu_median:,.1f} ms"
            if path == PRISM and case in GOALS_MS:
                limit = GOALS_MS[case]
                goal = f"<= {limit:,.0f} ms {'met' if median <= limit else 'MISSED'}"
            rows.append(
                Row(
                    BENCH,
                    case,
                    path,
                    p50_ms=median,
                    extra={"records": records, "estimated": estimated, "cpu_ms": cpu_median},
                )
            )
        print(f"| {case} | {path} | {shown} | {spread} | {cpu_shown} | {goal} |")
    return rows


if __name__ == "__main__":
    asyncio.run(main())
