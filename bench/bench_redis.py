"""The ``redis`` backend against the raw ``redis.asyncio`` client and Django's Redis cache.

Paths, each writing and reading JSON-able agent records by key on the same server:

* ``raw redis.asyncio`` (the baseline, the limit): ``SET key json.dumps(value)`` and
  ``json.loads(GET key)`` on one ``redis.asyncio.Redis`` client (hiredis parser) with
  redis-py's defaults; batches are one ``MGET`` and one non-transactional pipeline of ``SET``.
* ``raw redis.asyncio, socket_timeout=None``: the same without redis-py's per-command
  socket timeout (a timer per read and write), as the backend configures its client: it
  bounds each call with one deadline of its own instead. Shown for comparison.
* ``prism redis``: ``RedisStorageBackend.set/get/get_many/set_many`` (key and value
  validation, the prefix layout, timeouts and typed errors; ``set_many`` is a MULTI/EXEC).
* ``django RedisCache``: ``aset/aget`` and ``aset_many/aget_many`` of
  ``django.core.cache.backends.redis.RedisCache`` (pickled values; its async API runs the
  sync client through asgiref's one shared thread).

Records are ~2.5 KB agent conversations and ~1 MB blobs; keys cycle over a fixed key space
so every get hits. Each figure is the median of ``--rounds`` interleaved rounds (every path
measured once per round). A private ``redis-server`` is started on a free loopback port
unless ``--url`` names a server (whose keys under the bench prefixes get overwritten).

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

from bench.harness import (
    Row,
    Size,
    agent_record,
    big_record,
    parser,
    print_table,
    save_json,
    throughput,
)

BENCH = "redis"
RAW = "raw redis.asyncio"
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

    def __init__(self, url: str, *, socket_timeout: bool = True) -> None:
        from redis.asyncio import Redis

        if socket_timeout:
            self.client = Redis.from_url(url)  # redis-py's default: 5 s read/write timeout
        else:
            self.client = Redis.from_url(url, socket_timeout=None)
            self.name = RAW_NO_TIMEOUT

    async def set(self, key: str, value: dict[str, Any]) -> None:
        await self.client.set("raw:" + key, json.dumps(value))

    async def get(self, key: str) -> Any:
        data = await self.client.get("raw:" + key)
        return None if data is None else json.loads(data)

    async def set_many(self, mapping: dict[str, dict[str, Any]]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for key, value in mapping.items():
            pipe.set("raw:" + key, json.dumps(value))
        await pipe.execute()

    async def get_many(self, keys: list[str]) -> Any:
        values = await self.client.mget(["raw:" + k for k in keys])
        return {k: json.loads(v) for k, v in zip(keys, values, strict=True) if v is not None}

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


def _tasks_label(tasks: int) -> str:
    return f"{tasks} task{'s' if tasks > 1 else ''}"


def _cases(paths: list[Path], size: Size, ops: int, keys: list[str],
           values: list[dict[str, Any]]) -> list[Plan]:
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
                def measure(op: Callable[[int], Awaitable[Any]] = op,
                            tasks: int = tasks) -> Awaitable[float]:
                    return throughput(op, tasks=tasks, total=ops)

                case = f"{verb} {size.label}, {_tasks_label(tasks)}"
                found.append((case, path.name, ops, measure))
    return found


def _batch_cases(paths: list[Path], ops: int, keys: list[str],
                 values: list[dict[str, Any]]) -> list[Plan]:
    """(case, path, measure) for set_many/get_many of BATCH records; ops/s counts records."""
    groups = [keys[i:i + BATCH] for i in range(0, len(keys) - BATCH + 1, BATCH)]
    mappings = [dict(zip(group, values[i * BATCH:(i + 1) * BATCH], strict=True))
                for i, group in enumerate(groups)]
    batches = max(1, ops // BATCH)
    found: list[Plan] = []
    for tasks in TASKS:
        for path in paths:
            def set_batch(i: int, path: Path = path) -> Awaitable[None]:
                return path.set_many(mappings[i % len(mappings)])

            def get_batch(i: int, path: Path = path) -> Awaitable[Any]:
                return path.get_many(groups[i % len(groups)])

            for verb, op in (("set_many", set_batch), ("get_many", get_batch)):
                async def measure(op: Callable[[int], Awaitable[Any]] = op,
                                  tasks: int = tasks) -> float:
                    return BATCH * await throughput(op, tasks=tasks, total=batches)

                case = f"{verb} {BATCH} x 2.5 KB, {_tasks_label(tasks)} (records/s)"
                found.append((case, path.name, batches * BATCH, measure))
    return found


async def _fill(paths: list[Path], keys: list[str], values: list[dict[str, Any]]) -> None:
    for path in paths:
        for key, value in zip(keys, values, strict=True):
            await path.set(key, value)
        if await path.get(keys[-1]) != values[-1]:
            raise AssertionError(f"{path.name} did not round-trip a record")


async def run(url: str, *, quick: bool, rounds: int) -> list[Row]:
    paths: list[Path] = [RawPath(url), RawPath(url, socket_timeout=False), PrismPath(url),
                         DjangoPath(url)]
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
        samples: dict[tuple[str, str], list[float]] = {}
        cpu: dict[tuple[str, str], list[float]] = {}
        for _ in range(rounds):
            for case, path_name, ops, measure in plans:
                started = time.process_time()
                samples.setdefault((case, path_name), []).append(await measure())
                spent = time.process_time() - started
                cpu.setdefault((case, path_name), []).append(spent / ops * 1e6)
    finally:
        for path in paths:
            await path.close()
    return [
        Row(BENCH, case, path_name, ops_per_s=statistics.median(found),
            extra={"samples": found, "cpu_us_per_op": statistics.median(cpu[case, path_name])},
            baseline=path_name == RAW)
        for (case, path_name), found in samples.items()
    ]


def print_cpu(rows: list[Row]) -> None:
    """Print this process's CPU time per operation (steadier than ops/s on a busy host)."""
    base = {r.case: r.extra["cpu_us_per_op"] for r in rows if r.baseline}
    print("\n| case | path | client CPU us/op | CPU vs baseline |")
    print("|---|---|---:|---:|")
    cases = list(dict.fromkeys(r.case for r in rows))
    for row in sorted(rows, key=lambda r: cases.index(r.case)):
        spent = row.extra["cpu_us_per_op"]
        ratio = base[row.case] / spent if spent else 0.0
        print(f"| {row.case} | {row.path} | {spent:,.1f} | {ratio:.2f}x |")


def print_goals(rows: list[Row]) -> None:
    """Print prism's ratio against each goal path at 64 tasks."""
    by_key = {(r.case, r.path): r.ops_per_s or 0.0 for r in rows}
    print("\n| case | " + " | ".join(
        f"prism / {path} (goal >= {goal:.1f}x)" for path, goal in GOALS.items()) + " |")
    print("|---|" + "---:|" * len(GOALS))
    for (case, path), ours in by_key.items():
        if path != PRISM:
            continue
        cells = []
        for other, goal in GOALS.items():
            theirs = by_key.get((case, other))
            ratio = ours / theirs if theirs else 0.0
            applies = "64 tasks" in case
            verdict = ("met" if ratio >= goal else "MISSED") if applies else "(1 task: info)"
            cells.append(f"{ratio:.2f}x {verdict}")
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
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--daemonize", "no", "--dir", directory],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
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
    p.add_argument("--rounds", type=int, default=None,
                   help="interleaved rounds per figure (default 5, 1 with --quick)")
    args = p.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 5)

    from bench.harness import setup_django

    setup_django()
    with contextlib.ExitStack() as stack:
        url = args.url or stack.enter_context(private_server())
        rows = await run(url, quick=args.quick, rounds=rounds)
    print_table(rows, f"redis backend, median of {rounds} round(s)")
    print("\n## redis backend, client CPU per operation (lower is better; ratio > 1 is "
          "cheaper than the baseline)")
    print_cpu(rows)
    print("\n## redis backend goals\n")
    print_goals(rows)
    if args.json:
        save_json(rows, args.json)
    return rows


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
