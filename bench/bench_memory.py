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
that hold orjson's output show far more here than in their resident memory. A second
table therefore measures the resident memory itself: each path, each round, in a process
of its own that fills its keys, then resets the kernel's peak-RSS mark
(``/proc/self/clear_refs``) and reports how far the burst raised it (``VmHWM`` over
``VmRSS`` before). The process runs with ``MALLOC_MMAP_THRESHOLD_`` fixed at 128 KiB, so
glibc gives every large block back when it is freed instead of keeping the fill's blocks
for the burst to reuse unseen. Linux only; the table is left out elsewhere.
``tracemalloc`` also slows the writes, so this bench reports memory only; the speed of the same
writes is in ``bench_file`` and ``bench_redis``. Each round measures every path once, in
an order rotated round by round; a figure is the median over rounds, and "vs baseline" is
the median of same-round ratios of the baseline's peak to the path's (> 1: the path
needs less).

Run: ``python -m bench.bench_memory [--quick] [--rounds N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import json
import os
import shutil
import sys
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


def memory_case(
    bench: str, measured: str, paths: list[tuple[str, Callable[[], Awaitable[float]]]], fast: str
) -> Case:
    return Case(
        bench,
        f"{TASKS} concurrent 1 MB writes, {measured}",
        paths,
        fast=fast,
        latency=True,  # lower is better, like a latency
    )


def print_memory(rows: list[Row], what: str) -> None:
    print(
        f"| store | path | {what} MB (median) | peak vs baseline | goal (prism <= {GOAL}x "
        "the raw stdlib path) |\n|---|---|---:|---:|---|"
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


STORES = ("file (tmpfs)", "redis")


def store_paths(store: str, root: Path, url: str) -> list[Any]:
    """The paths compared on ``store``: the raw stdlib baseline, raw with orjson, prism."""
    from bench.bench_file import PrismStore as PrismFile
    from bench.bench_file import RawStore
    from bench.bench_redis import PrismPath, RawPath

    if store == "redis":
        return [RawPath(url), RawPath(url, fast=True), PrismPath(url)]
    for name in ("raw", "raw-orjson", "prism"):
        (root / name).mkdir(exist_ok=True)
    return [
        RawStore(root / "raw"),
        RawStore(root / "raw-orjson", fast=True),
        PrismFile(root / "prism"),
    ]


async def write_all(path: Any, values: list[Any]) -> None:
    await asyncio.gather(*(path.set(f"mem-{i}", v) for i, v in enumerate(values)))


async def traced_cases(
    stack: contextlib.AsyncExitStack, root: Path, url: str, values: list[Any]
) -> list[Case]:
    cases = []
    for store in STORES:
        paths = store_paths(store, root, url)
        for path in paths:
            stack.push_async_callback(path.close)
            await write_all(path, values)
        measures = [(path.name, functools.partial(peak_mb, path.set, values)) for path in paths]
        cases.append(memory_case(store, "traced", measures, paths[1].name))
    return cases


def resident_cases(traced: list[Case], root: Path, url: str, count: int) -> list[Case]:
    """The traced cases' paths again, each measure running :func:`resident_child` in a
    new process."""
    cases = []
    for case in traced:
        names = [name for name, _ in case.paths]
        measures = [
            (name, functools.partial(resident_peak_mb, case.bench, name, root, url, count))
            for name in names
        ]
        cases.append(memory_case(case.bench, "resident", measures, names[1]))
    return cases


async def resident_peak_mb(store: str, name: str, root: Path, url: str, count: int) -> float:
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(128 * 1024)}
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.bench_memory",
        "--resident-child",
        json.dumps([store, name, str(root), url, count]),
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await child.communicate()
    if child.returncode != 0:
        raise RuntimeError(f"the resident-memory run of {store} {name} failed")
    return float(out.decode().strip().splitlines()[-1])


async def resident_child(store: str, name: str, root: str, url: str, count: int) -> float:
    """In a process of its own: fill ``name``'s keys, then the rise of peak RSS, in MB,
    while it writes them all again concurrently."""
    from bench.harness import setup_django

    setup_django()
    values = [big_record(i) for i in range(count)]
    (path,) = [p for p in store_paths(store, Path(root), url) if p.name == name]
    try:
        await write_all(path, values)
        gc.collect()
        before = _status_kb("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # peak RSS := current RSS
        await write_all(path, values)
        return (_status_kb("VmHWM") - before) * 1024 / 1e6
    finally:
        await path.close()


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


async def main(argv: list[str] | None = None) -> list[Row]:
    cli = parser(__doc__.splitlines()[0])  # type: ignore[union-attr]
    cli.add_argument("--resident-child", help=argparse.SUPPRESS)
    args = cli.parse_args(argv)
    if args.resident_child:
        print(await resident_child(*json.loads(args.resident_child)))
        return []
    rounds = rounds_of(args)
    count = 16 if args.quick else TASKS
    values = [big_record(i) for i in range(count)]

    from bench.bench_redis import private_server
    from bench.harness import setup_django

    setup_django()
    root = Path(tempfile.mkdtemp(prefix="prism-bench-memory-", dir=_tmpfs()))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, root, True)
        url = stack.enter_context(private_server())
        async with contextlib.AsyncExitStack() as paths:
            traced = await traced_cases(paths, root, url, values)
            rows = await measure_cases(traced, rounds)
        print(
            f"\n## Peak traced memory of {count} concurrent ~1 MB writes, median of {rounds} "
            "rotated round(s)\n"
        )
        print_memory(rows, "peak traced")
        if Path("/proc/self/clear_refs").exists():
            resident = await measure_cases(resident_cases(traced, root, url, count), rounds)
            print(
                f"\n## Peak resident memory of {count} concurrent ~1 MB writes, median of "
                f"{rounds} rotated round(s), one process per measurement\n"
            )
            print_memory(resident, "peak RSS rise")
            rows += resident
    if args.json:
        save_json(rows, args.json)
    return rows


def _tmpfs() -> str | None:
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() else None


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
