"""Scoped erasure: ``delete_prefix`` against a key-by-key delete loop through the public API.

Stores: memory; file (on tmpfs, ``/dev/shm``); orm on SQLite and on PostgreSQL (scratch
databases ``prism_bench_erasure``, created and dropped here); redis (a private
``redis-server`` on a free loopback port).

Each measurement first writes (untimed) the records to erase, ``user-7/NNNNNN``, plus a
tenth as many neighbours under ``user-70/`` that must survive (checked after each run),
then times one of:

* ``key-by-key loop`` (the baseline): what a user writes without ``delete_prefix`` — list
  the keys with ``iter_keys("user-7/")``, then ``await store.delete(key)`` for each.
  Measured over ``--naive`` records (default 2,000; 500 with ``--quick``): it is a
  rate, and single deletes run at tens per second on SQLite (a commit each);
* ``delete_prefix``: ``await store.delete_prefix("user-7/")`` over ``--records`` records
  (default 100,000; 10,000 with ``--quick``).

Figures are records erased per second, the median over rotated rounds (default 3, 2 with
``--quick``); the ratio is the median of same-round ratios against the loop.

Run: ``python -m bench.bench_erasure [--quick] [--rounds N] [--records N] [--naive N]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench.harness import Case, Row, measure_cases, parser, print_table, rounds_of, save_json

BENCH = "erasure"
LOOP = "key-by-key loop"
ERASE = "delete_prefix"
PREFIX = "user-7/"
NEIGHBOURS = "user-70/"
TMPFS = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()


async def _seed(store: Any, count: int) -> None:
    for start in range(0, count, 2000):
        await store.set_many(
            {
                f"{PREFIX}{i:06d}": {"i": i, "note": "x" * 100}
                for i in range(start, min(count, start + 2000))
            }
        )
    await store.set_many({f"{NEIGHBOURS}{i:06d}": {"i": i} for i in range(max(1, count // 10))})


async def _loop(store: Any) -> None:
    keys = [key async for key in store.iter_keys(PREFIX)]
    for key in keys:
        await store.delete(key)


async def _erase(store: Any) -> None:
    await store.delete_prefix(PREFIX)


def _measure(
    make: Callable[[], Any], count: int, work: Callable[[Any], Awaitable[None]]
) -> Callable[[], Awaitable[float]]:
    async def measure() -> float:
        store = make()
        try:
            await store.delete_prefix("", all=True)
            await _seed(store, count)
            started = time.perf_counter()
            await work(store)
            elapsed = time.perf_counter() - started
            left = [key async for key in store.iter_keys(PREFIX)]
            kept = [key async for key in store.iter_keys(NEIGHBOURS)]
            if left or len(kept) != max(1, count // 10):
                raise SystemExit(f"{store!r}: erased wrongly ({len(left)} left, {len(kept)} kept)")
            await store.delete_prefix("", all=True)
            return count / elapsed
        finally:
            await store.close()

    return measure


async def main(argv: list[str] | None = None) -> list[Row]:
    p = parser(__doc__.splitlines()[0])  # type: ignore[union-attr]
    p.add_argument("--records", type=int, default=None, help="records delete_prefix erases")
    p.add_argument("--naive", type=int, default=None, help="records the loop erases")
    p.set_defaults(rounds=None)
    args = p.parse_args(argv)
    if args.rounds is None and not args.quick:
        args.rounds = 3
    records = args.records or (10_000 if args.quick else 100_000)
    naive = min(records, args.naive or (500 if args.quick else 2_000))
    rounds = rounds_of(args)

    from bench.harness import setup_django

    setup_django()
    from bench.bench_redis import private_server
    from bench.orm_paths import scratch_databases
    from prism_storage import FileStorageBackend, ORMStorageBackend, RedisStorageBackend
    from prism_storage.backends.memory import MemoryStorageBackend

    root = tempfile.mkdtemp(prefix="prism-bench-erasure-", dir=TMPFS)
    sqlite_file = os.path.join(tempfile.gettempdir(), f"prism-bench-erase-{os.getpid()}.sqlite3")
    rows: list[Row] = []
    try:
        with private_server() as redis_url:
            async with scratch_databases("prism_bench_erasure", sqlite_file):
                stores: list[tuple[str, Callable[[], Any]]] = [
                    ("memory", lambda: MemoryStorageBackend("bench-erasure")),
                    ("file (tmpfs)", lambda: FileStorageBackend(os.path.join(root, "files"))),
                    ("orm SQLite", lambda: ORMStorageBackend("bench-erasure", using="sqlite")),
                    (
                        "orm PostgreSQL",
                        lambda: ORMStorageBackend("bench-erasure", using="default"),
                    ),
                    ("redis", lambda: RedisStorageBackend(redis_url, prefix="bench-erasure")),
                ]
                cases = [
                    Case(
                        BENCH,
                        name,
                        [
                            (LOOP, _measure(make, naive, _loop)),
                            (ERASE, _measure(make, records, _erase)),
                        ],
                    )
                    for name, make in stores
                ]
                rows = await measure_cases(cases, rounds)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            os.remove(sqlite_file)
    for row in rows:
        row.extra["records"] = naive if row.path == LOOP else records
    print_table(
        rows,
        f"erasing a prefix: delete_prefix of {records:,} records vs a key-by-key loop over "
        f"{naive:,} (records/s), median of {rounds} rotated round(s)",
    )
    if args.json:
        save_json(rows, args.json)
    return rows


if __name__ == "__main__":
    asyncio.run(main())
