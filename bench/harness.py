"""Shared benchmark helpers: timing loops and the ratio table every bench prints.

Each bench module is ``bench/bench_<name>.py``, defines
``async def main(argv: list[str] | None = None) -> list[Row]`` and runs standalone with
``python -m bench.bench_<name>``; ``python -m bench`` runs them all, each in its own process
(the full convention is at the top of ``bench/__main__.py``). Timings never feed a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

AGENT_RECORD_KB = 2.5


def agent_record(i: int, size: int = 2500) -> dict[str, Any]:
    """A realistic agent conversation record of about ``size`` bytes as JSON."""
    content = "The user asked about the quarterly report; the agent looked it up. " * 60
    messages = []
    used = 0
    turn = 0
    while used < size - 200:
        text = content[: min(300, size - 200 - used)]
        messages.append(
            {
                "role": "user" if turn % 2 == 0 else "assistant",
                "content": text,
                "ts": 1_700_000_000 + turn,
            }
        )
        used += len(text) + 60
        turn += 1
    return {
        "agent_id": f"agent-{i}",
        "messages": messages,
        "state": {"step": i % 17, "done": False, "score": 0.5},
    }


def big_record(i: int, size: int = 1024 * 1024) -> dict[str, Any]:
    return {"agent_id": f"agent-{i}", "blob": "x" * size, "state": {"step": i}}


@dataclass(frozen=True)
class Size:
    """A record size under test: how to make records and how many operations to run."""

    label: str
    make: Callable[[int], dict[str, Any]]
    key_space: int
    ops: int
    quick_ops: int


class SetGetPath(Protocol):
    name: str

    async def set(self, key: str, value: dict[str, Any]) -> None: ...

    async def get(self, key: str) -> Any: ...


Measure = Callable[[], Awaitable[float]]


def set_get_cases(
    paths: Sequence[SetGetPath],
    size: Size,
    tasks_list: Sequence[int],
    keys: list[str],
    values: list[dict[str, Any]],
    total: Callable[[SetGetPath, int], int],
) -> list[tuple[str, str, Measure]]:
    """``(case, path name, measure)`` for set and get of each path at each concurrency;
    ``total(path, tasks)`` is how many operations one measurement runs."""
    count = len(keys)
    found: list[tuple[str, str, Measure]] = []
    for tasks in tasks_list:
        for path in paths:
            def set_one(i: int, path: SetGetPath = path) -> Awaitable[None]:
                return path.set(keys[i % count], values[i % count])

            def get_one(i: int, path: SetGetPath = path) -> Awaitable[Any]:
                return path.get(keys[i % count])

            ops = total(path, tasks)
            for verb, op in (("set", set_one), ("get", get_one)):
                case = f"{verb} {size.label}, {tasks} task{'s' if tasks > 1 else ''}"

                def measure(op: Callable[[int], Awaitable[Any]] = op, tasks: int = tasks,
                            ops: int = ops) -> Awaitable[float]:
                    return throughput(op, tasks=tasks, total=ops)

                found.append((case, path.name, measure))
    return found


@dataclass
class Row:
    """One measured line: ops per second (higher is better) or latency in ms."""

    bench: str
    case: str
    path: str
    ops_per_s: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    baseline: bool = False


async def throughput(op: Callable[[int], Awaitable[Any]], *, tasks: int, total: int) -> float:
    """Run ``op(i)`` for i in range(total) across ``tasks`` concurrent tasks; ops/s."""
    counter = iter(range(total))

    async def worker() -> None:
        for i in counter:
            await op(i)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    return total / (time.perf_counter() - started)


async def latencies(op: Callable[[int], Awaitable[Any]], *, count: int) -> tuple[float, float]:
    """p50 and p99 latency in ms of ``count`` sequential calls."""
    samples = []
    for i in range(count):
        started = time.perf_counter()
        await op(i)
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[
        min(len(samples) - 1, math.ceil(0.99 * len(samples)) - 1)
    ]


async def best_of(repeats: int, measure: Callable[[], Awaitable[float]]) -> float:
    """The best of ``repeats`` throughput measurements (the least disturbed run)."""
    return max([await measure() for _ in range(repeats)])


def print_table(rows: list[Row], title: str = "") -> None:
    """Print rows grouped by (bench, case), with each path's ratio to the group baseline."""
    if title:
        print(f"\n## {title}\n")
    print("| bench | case | path | ops/s | p50 ms | p99 ms | ratio vs baseline |")
    print("|---|---|---|---:|---:|---:|---:|")
    groups: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        groups.setdefault((row.bench, row.case), []).append(row)
    for (bench, case), group in groups.items():
        base = next((r for r in group if r.baseline), None)
        for row in group:
            ratio = ""
            if base is not None and row is not base:
                if row.ops_per_s and base.ops_per_s:
                    ratio = f"{row.ops_per_s / base.ops_per_s:.2f}x"
                elif row.p50_ms and base.p50_ms:
                    ratio = f"{base.p50_ms / row.p50_ms:.2f}x"
            elif row is base:
                ratio = "1.00x (baseline)"
            print(
                f"| {bench} | {case} | {row.path} | {_fmt(row.ops_per_s, 0)} | "
                f"{_fmt(row.p50_ms, 3)} | {_fmt(row.p99_ms, 3)} | {ratio} |"
            )


def _fmt(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


def save_json(rows: list[Row], path: str) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as fh:
        json.dump([asdict(r) for r in rows], fh, indent=2)


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="fewer operations (a smoke run)")
    p.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    return p


def setup_django() -> None:
    """Configure Django for benches (bench.settings) if nothing configured it yet."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    import django

    django.setup()
