"""Peak memory of 64 concurrent ~1 MB writes: prism's stores against the raw paths.

Each measurement writes 64 records of ~1 MB (``big_record``: one long string), each to a
key of its own (written once before, untimed, so each write replaces a record), as 64
concurrent tasks, and reports the peak of Python's traced
allocations (``tracemalloc``) above the start of the burst. The records are built before
the measurement starts, so what is counted is what each path allocates to write them:
encoded text, bytes handed to the socket or the file, buffers. Paths:

* file, on tmpfs: ``raw to_thread`` (the baseline: ``json.dumps``, then in
  ``asyncio.to_thread`` ``tempfile.mkstemp``, write, ``os.replace``), the same with
  ``orjson``, and ``prism file`` (``FileStorageBackend.set``);
* redis, on a private ``redis-server``: ``raw redis.asyncio`` (the baseline:
  ``SET key json.dumps(value)``), the same with ``orjson``, and ``prism redis``
  (``RedisStorageBackend.set``).

``tracemalloc`` counts what is allocated, not what is resident: orjson allocates about 16
bytes per character for a long string's output and writes only what it needs, so paths
that hold orjson's output show far more here than in their resident memory.
``tracemalloc`` also slows the writes, so this bench reports memory only; the speed of the same
writes is in ``bench_file`` and ``bench_redis``. Each round measures every path once, in
an order rotated round by round; a figure is the median over rounds, and "vs baseline" is
the median of same-round ratios of the baseline's peak to the path's (> 1: the path
needs less).

Run: ``python -m bench.bench_memory [--quick] [--rounds N]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.harness import (
    Case,
    Row,
    big_record,
    measure_cases,
    parser,
    rounds_of,
    save_json,
)

TASKS = 64
GOAL = 1.2  # prism's peak at most this many times the raw path's (stdlib json)


async def peak_mb(
    write: Callable[[str, dict[str, Any]], Awaitable[Any]], values: list[Any]
) -> float:
    """The peak traced memory, in MB, of writing ``values`` concurrently (key ``mem-<i>``
    for value i: after the untimed fill, every write replaces a record)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        await asyncio.gather(*(write(f"mem-{i}", v) for i, v in enumerate(values)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return (peak - base) / 1e6


def memory_case(bench: str, paths: list[tuple[str, Any]], values: list[Any], fast: str) -> Case:
    def measure(write: Any) -> Callable[[], Awaitable[float]]:
        return lambda: peak_mb(write, values)

    return Case(
        bench,
        f"{TASKS} concurrent 1 MB writes",
        [(name, measure(write)) for name, write in paths],
        fast=fast,
        latency=True,  # lower is better, like a latency
    )


def print_memory(rows: list[Row]) -> None:
    print(
        f"| store | path | peak MB (median) | peak vs baseline | goal (prism <= {GOAL}x the "
        "raw stdlib path) |\n|---|---|---:|---:|---|"
    )
    for row in rows:
        assert row.ratio is not None and row.p50_ms is not None
        times = 1 / row.ratio.median  # the path's peak over the baseline's, same round
        goal = ""
        if row.path.startswith("prism"):
            goal = "met" if times <= GOAL else "MISSED"
        print(
            f"| {row.bench} | {row.path} | {row.p50_ms:.1f} | {times:.2f}x "
            f"({1 / row.ratio.high:.2f}..{1 / row.ratio.low:.2f}) | {goal} |"
        )


async def main(argv: list[str] | None = None) -> list[Row]:
    args = parser(__doc__.splitlines()[0]).parse_args(argv)  # type: ignore[union-attr]
    rounds = rounds_of(args)
    count = 16 if args.quick else TASKS
    values = [big_record(i) for i in range(count)]

    from bench.bench_file import PrismStore as PrismFile
    from bench.bench_file import RawStore
    from bench.bench_redis import PrismPath, RawPath, private_server
    from bench.harness import setup_django

    setup_django()
    root = Path(tempfile.mkdtemp(prefix="prism-bench-memory-", dir=_tmpfs()))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, root, True)
        url = stack.enter_context(private_server())
        for name in ("raw", "raw-orjson", "prism"):
            (root / name).mkdir()
        raw_file = RawStore(root / "raw")
        fast_file = RawStore(root / "raw-orjson", fast=True)
        prism_file = PrismFile(root / "prism")
        redis_paths = [RawPath(url), RawPath(url, fast=True), PrismPath(url)]
        for write in [s.set for s in (raw_file, fast_file, prism_file)] + [
            p.set for p in redis_paths
        ]:
            await asyncio.gather(*(write(f"mem-{i}", v) for i, v in enumerate(values)))
        cases = [
            memory_case(
                "file (tmpfs)",
                [(s.name, s.set) for s in (raw_file, fast_file, prism_file)],
                values,
                fast_file.name,
            ),
            memory_case(
                "redis", [(p.name, p.set) for p in redis_paths], values, redis_paths[1].name
            ),
        ]
        try:
            rows = await measure_cases(cases, rounds)
        finally:
            for path in redis_paths:
                await path.close()
    print(
        f"\n## Peak traced memory of {count} concurrent ~1 MB writes, median of {rounds} "
        "rotated round(s)\n"
    )
    print_memory(rows)
    if args.json:
        save_json(rows, args.json)
    return rows


def _tmpfs() -> str | None:
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() else None


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
