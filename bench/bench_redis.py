"""The ``redis`` backend against the raw ``redis.asyncio`` client and Django's Redis cache.

Paths, each writing and reading JSON-able agent records by key on the same server:

* ``raw redis.asyncio`` (the baseline, the limit): ``SET key json.dumps(value)`` and
  ``json.loads(GET key)`` on one ``redis.asyncio.Redis`` client (hiredis parser) with
  redis-py's defaults; batches are one ``MGET`` and one non-transactional pipeline of ``SET``.
* ``raw redis.asyncio + orjson``: the same with ``orjson.dumps``/``orjson.loads`` in place
  of the standard library's ``json``: the raw client with the fastest encoder a user would
  pick. Tables show a second ratio against it.
* ``raw redis.asyncio, socket_timeout=None``: the same without redis-py's per-command
  socket timeout (a timer per read and write), as the backend configures its client: it
  bounds each call with one deadline of its own instead. Shown for comparison.
* ``prism redis``: ``RedisStorageBackend.set/get/get_many/set_many`` (key and value
  validation, the prefix layout, timeouts and typed errors; ``set_many`` is a MULTI/EXEC).
* ``django RedisCache``: ``aset/aget`` and ``aset_many/aget_many`` of
  ``django.core.cache.backends.redis.RedisCache`` (pickled values; its async API runs the
  sync client through asgiref's one shared thread).

Records are ~2.5 KB agent conversations and ~1 MB blobs; keys cycle over a fixed key space
so every get hits. Each round measures every path of every case once, in an order rotated
round by round (``--rounds``, default 5, 2 with ``--quick``); a figure is the median over
rounds and a ratio the median of same-round ratios (min-max shown). A private
``redis-server`` is started on a free loopback port unless ``--url`` names a server (whose
keys under the bench prefixes get overwritten).

Run: ``python -m bench.bench_redis [--quick] [--rounds N] [--url redis://...]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from bench import harness
from bench.harness import (
    Case,
    Row,
    Size,
    agent_record,
    big_record,
    case_rows,
    pair_ratio,
    parser,
    print_table,
    rounds_of,
    run_rounds,
    same_round_ratio,
    save_json,
    tasks_label,
    throughput,
)

BENCH = "redis"
RAW = "raw redis.asyncio"
RAW_ORJSON = "raw redis.asyncio + orjson"
RAW_NO_TIMEOUT = "raw redis.asyncio, socket_timeout=None"
PRISM = "prism redis"
DJANGO = "django RedisCache"
TASKS = (1, 64)
BATCH = 100
#: Goals at 64 tasks: at least this ratio of prism against each path.
GOALS = {RAW: 0.9, DJANGO: 3.0}


SIZES = (
    Size("2.5 KB", agent_record, key_space=1024, ops=6000, quick_ops=800),
    Size("1 MB", big_record, key_space=16, ops=200, quick_ops=40),
)


class Path:
    """One path under test: single and batch operations on its own key prefix."""

    name = ""

    async def set(self, key: str, value: dict[str, Any]) -> None:
        raise NotImplementedError

    async def get(self, key: str) -> Any:
        raise NotImplementedError

    async def set_many(self, mapping: dict[str, dict[str, Any]]) -> None:
        raise NotImplementedError

    async def get_many(self, keys: list[str]) -> Any:
        raise NotImplementedError

    async def close(self) -> None:
        pass


class RawPath(Path):
    name = RAW

    def __init__(self, url: str, *, socket_timeout: bool = True, fast: bool = False) -> None:
        from redis.asyncio import Redis

        self.dumps: Callable[[Any], Any] = json.dumps
        self.loads: Callable[[Any], Any] = json.loads
        self.prefix = "raw:"
        if fast:
            import orjson

            self.dumps, self.loads = orjson.dumps, orjson.loads
            self.name, self.prefix = RAW_ORJSON, "raw-orjson:"
        if socket_timeout:
            self.client = Redis.from_url(url)  # redis-py's default: 5 s read/write timeout
        else:
            self.client = Redis.from_url(url, socket_timeout=None)
            self.name = RAW_NO_TIMEOUT

    async def set(self, key: str, value: dict[str, Any]) -> None:
        await self.client.set(self.prefix + key, self.dumps(value))

    async def get(self, key: str) -> Any:
        data = await self.client.get(self.prefix + key)
        return None if data is None else self.loads(data)

    async def set_many(self, mapping: dict[str, dict[str, Any]]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for key, value in mapping.items():
            pipe.set(self.prefix + key, self.dumps(value))
        await pipe.execute()

    async def get_many(self, keys: list[str]) -> Any:
        values = await self.client.mget([self.prefix + k for k in keys])
        return {k: self.loads(v) for k, v in zip(keys, values, strict=True) if v is not None}

    async def close(self) -> None:
        await self.client.aclose()


class PrismPath(Path):
    name = PRISM

    def __init__(self, url: str) -> None:
        from prism_storage import RedisStorageBackend

        self.backend = RedisStorageBackend(url, prefix="bench:")

    async def set(self, key: str, value: dict[str, Any]) -> None:
        await self.backend.set(key, value)

    async def get(self, key: str) -> Any:
        return await self.backend.get(key)

    async def set_many(self, mapping: dict[str, dict[str, Any]]) -> None:
        await self.backend.set_many(mapping)

    async def get_many(self, keys: list[str]) -> Any:
        return await self.backend.get_many(keys)

    async def close(self) -> None:
        await self.backend.close()


class DjangoPath(Path):
    name = DJANGO

    def __init__(self, url: str) -> None:
        from django.core.cache.backends.redis import RedisCache

        self.cache = RedisCache(url, {"TIMEOUT": None, "KEY_PREFIX": "django"})

    async def set(self, key: str, value: dict[str, Any]) -> None:
        await self.cache.aset(key, value)

    async def get(self, key: str) -> Any:
        return await self.cache.aget(key)

    async def set_many(self, mapping: dict[str, dict[str, Any]]) -> None:
        await self.cache.aset_many(mapping)

    async def get_many(self, keys: list[str]) -> Any:
        return await self.cache.aget_many(keys)

    async def close(self) -> None:
        await self.cache.aclose()


Measure = Callable[[], Awaitable[float]]
#: (case, path, operations per measurement, measure)
Plan = tuple[str, str, int, Measure]


def _cases(
    paths: list[Path], size: Size, ops: int, keys: list[str], values: list[dict[str, Any]]
) -> list[Plan]:
    """(case, path, measure) for set and get at 1 and 64 tasks."""
    count = len(keys)
    found: list[Plan] = []
    for tasks in TASKS:
        for path in paths:

            def set_one(i: int, path: Path = path) -> Awaitable[None]:
                return path.set(keys[i % count], values[i % count])

            def get_one(i: int, path: Path = path) -> Awaitable[Any]:
                return path.get(keys[i % count])

            for verb, op in (("set", set_one), ("get", get_one)):

                def measure(
                    op: Callable[[int], Awaitable[Any]] = op, tasks: int = tasks
                ) -> Awaitable[float]:
                    return throughput(op, tasks=tasks, total=ops)

                case = f"{verb} {size.label}, {tasks_label(tasks)}"
                found.append((case, path.name, ops, measure))
    return found


def _batch_cases(
    paths: list[Path], ops: int, keys: list[str], values: list[dict[str, Any]]
) -> list[Plan]:
    """(case, path, measure) for set_many/get_many of BATCH records; ops/s counts records."""
    groups = [keys[i : i + BATCH] for i in range(0, len(keys) - BATCH + 1, BATCH)]
    mappings = [
        dict(zip(group, values[i * BATCH : (i + 1) * BATCH], strict=True))
        for i, group in enumerate(groups)
    ]
    batches = max(1, ops // BATCH)
    found: list[Plan] = []
    for tasks in TASKS:
        for path in paths:

            def set_batch(i: int, path: Path = path) -> Awaitable[None]:
                return path.set_many(mappings[i % len(mappings)])

            def get_batch(i: int, path: Path = path) -> Awaitable[Any]:
                return path.get_many(groups[i % len(groups)])

            for verb, op in (("set_many", set_batch), ("get_many", get_batch)):

                async def measure(
                    op: Callable[[int], Awaitable[Any]] = op, tasks: int = tasks
                ) -> float:
                    return BATCH * await throughput(op, tasks=tasks, total=batches)

                case = f"{verb} {BATCH} x 2.5 KB, {tasks_label(tasks)} (records/s)"
                found.append((case, path.name, batches * BATCH, measure))
    return found


async def _fill(paths: list[Path], keys: list[str], values: list[dict[str, Any]]) -> None:
    for path in paths:
        for key, value in zip(keys, values, strict=True):
            await path.set(key, value)
        if await path.get(keys[-1]) != values[-1]:
            raise AssertionError(f"{path.name} did not round-trip a record")


def _timed_cpu(measure: Measure, ops: int, into: list[float]) -> Measure:
    """``measure``, also appending this process's CPU time per operation (us) to ``into``."""

    async def timed() -> float:
        started = time.process_time()
        rate = await measure()
        into.append((time.process_time() - started) / ops * 1e6)
        return rate

    return timed


async def run(url: str, *, quick: bool, rounds: int) -> list[Row]:
    paths: list[Path] = [
        RawPath(url),
        RawPath(url, fast=True),
        RawPath(url, socket_timeout=False),
        PrismPath(url),
        DjangoPath(url),
    ]
    plans: list[Plan] = []
    try:
        for size in SIZES:
            keys = [f"agent-{size.label.replace(' ', '')}-{i}" for i in range(size.key_space)]
            values = [size.make(i) for i in range(size.key_space)]
            await _fill(paths, keys, values)
            ops = size.quick_ops if quick else size.ops
            plans += _cases(paths, size, ops, keys, values)
            if size is SIZES[0]:
                plans += _batch_cases(paths, ops * 5, keys, values)
        cpu: dict[tuple[str, str], list[float]] = {}
        by_case: dict[str, list[tuple[str, harness.Measure]]] = {}
        for case, path_name, ops, measure in plans:
            into = cpu.setdefault((case, path_name), [])
            by_case.setdefault(case, []).append((path_name, _timed_cpu(measure, ops, into)))
        cases = [Case(BENCH, case, measures, fast=RAW_ORJSON) for case, measures in by_case.items()]
        found = await run_rounds(cases, rounds)
    finally:
        for path in paths:
            await path.close()
    rows: list[Row] = []
    for measured, samples in zip(cases, found, strict=True):
        for row in case_rows(measured, samples):
            spent = cpu[measured.name, row.path]
            row.extra["cpu_us_per_op"] = statistics.median(spent)
            # CPU per op: lower is better, so the same-round ratio is taken as for latency.
            row.extra["cpu_ratio"] = same_round_ratio(spent, cpu[measured.name, RAW], latency=True)
            rows.append(row)
    return rows


def print_cpu(rows: list[Row]) -> None:
    """Print this process's CPU time per operation (steadier than ops/s on a busy host)."""
    print("\n| case | path | client CPU us/op | CPU vs baseline (same-round, > 1 cheaper) |")
    print("|---|---|---:|---:|")
    for row in rows:
        print(
            f"| {row.case} | {row.path} | {row.extra['cpu_us_per_op']:,.1f} | "
            f"{row.extra['cpu_ratio']} |"
        )


def print_goals(rows: list[Row]) -> None:
    """Print prism's same-round ratio against each goal path at 64 tasks."""
    print(
        "\n| case | "
        + " | ".join(f"prism / {path} (goal >= {goal:.1f}x)" for path, goal in GOALS.items())
        + " |"
    )
    print("|---|" + "---:|" * len(GOALS))
    for case in dict.fromkeys(r.case for r in rows if r.path == PRISM):
        cells = []
        for other, goal in GOALS.items():
            ratio = pair_ratio(rows, PRISM, other, case)
            if ratio is None:
                cells.append("")
                continue
            applies = "64 tasks" in case
            verdict = ("met" if ratio.median >= goal else "MISSED") if applies else "(1 task: info)"
            cells.append(f"{ratio} {verdict}")
        print(f"| {case} | " + " | ".join(cells) + " |")


@contextlib.contextmanager
def private_server() -> Iterator[str]:
    """A throwaway redis-server on a free loopback port (no persistence); yields its URL."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    directory = tempfile.mkdtemp(prefix="prism-bench-redis-")
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            directory,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)


async def main(argv: list[str] | None = None) -> list[Row]:
    p = parser(__doc__.splitlines()[0])  # type: ignore[union-attr]
    p.add_argument("--url", help="benchmark this Redis server instead of a private one")
    args = p.parse_args(argv)
    rounds = rounds_of(args)

    from bench.harness import setup_django

    setup_django()
    with contextlib.ExitStack() as stack:
        url = args.url or stack.enter_context(private_server())
        rows = await run(url, quick=args.quick, rounds=rounds)
    print_table(rows, f"redis backend, median of {rounds} rotated round(s)")
    print(
        "\n## redis backend, client CPU per operation (lower is better; ratio > 1 is "
        "cheaper than the baseline)"
    )
    print_cpu(rows)
    print("\n## redis backend goals\n")
    print_goals(rows)
    if args.json:
        save_json(rows, args.json)
    return rows


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
