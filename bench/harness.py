"""Shared benchmark helpers: timing loops and the ratio table every bench prints.

Each bench module is ``bench/bench_<name>.py``, defines
``async def main(argv: list[str] | None = None) -> list[Row]`` and runs standalone with
``python -m bench.bench_<name>``; ``python -m bench`` runs them all, each in its own process
(the full convention is at the top of ``bench/__main__.py``). Timings never feed a test.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
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


#: One measurement of one path: ops/s (or ms, for a latency case), sync or async.
Measure = Callable[[], Awaitable[float] | float]


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
                case = f"{verb} {size.label}, {tasks_label(tasks)}"

                def measure(
                    op: Callable[[int], Awaitable[Any]] = op, tasks: int = tasks, ops: int = ops
                ) -> Awaitable[float]:
                    return throughput(op, tasks=tasks, total=ops)

                found.append((case, path.name, measure))
    return found


def tasks_label(tasks: int) -> str:
    return f"{tasks} task{'s' if tasks > 1 else ''}"


@dataclass(frozen=True)
class Ratio:
    """The median of one path's same-round ratios to a reference path, with their range."""

    median: float
    low: float
    high: float

    def __str__(self) -> str:
        if self.low == self.high:
            return f"{self.median:.2f}x"
        return f"{self.median:.2f}x ({self.low:.2f}..{self.high:.2f})"


@dataclass
class Row:
    """One measured line: ops per second (higher is better) or latency in ms.

    ``ratio`` is against the case's baseline, ``ratio_fast`` against its raw path with
    the fast encoder (orjson) where the case has one; both are medians of same-round
    ratios (> 1 is better than the reference, for latencies too).
    """

    bench: str
    case: str
    path: str
    ops_per_s: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    baseline: bool = False
    ratio: Ratio | None = None
    ratio_fast: Ratio | None = None
    rounds: int = 0


@dataclass
class Case:
    """The paths one case compares, the baseline first.

    ``fast`` names the raw path that encodes with orjson, when the case has one: rows get
    a second ratio against it. ``latency`` cases measure milliseconds (lower is better).
    """

    bench: str
    name: str
    paths: list[tuple[str, Measure]]
    fast: str | None = None
    latency: bool = False

    @property
    def baseline(self) -> str:
        return self.paths[0][0]


def rotated(items: Sequence[Any], round_no: int) -> list[Any]:
    """``items`` rotated left by ``round_no``: each round starts one path later, so that
    over the rounds every path runs first, last and in between as often as the others."""
    if not items:
        return []
    shift = round_no % len(items)
    return [*items[shift:], *items[:shift]]


def same_round_ratio(
    ours: Sequence[float], theirs: Sequence[float], *, latency: bool = False
) -> Ratio:
    """Median (and range) of ``ours[r] / theirs[r]`` over rounds r; inverted for latencies
    so that > 1 always means ``ours`` did better in that round."""
    if len(ours) != len(theirs) or not ours:
        raise ValueError("same-round ratios need one sample of each path per round")
    ratios = [(t / o) if latency else (o / t) for o, t in zip(ours, theirs, strict=True)]
    return Ratio(statistics.median(ratios), min(ratios), max(ratios))


async def _value(measured: Awaitable[float] | float) -> float:
    if inspect.isawaitable(measured):
        return float(await measured)
    return float(measured)


async def run_rounds(cases: Sequence[Case], rounds: int) -> list[dict[str, list[float]]]:
    """Measure ``rounds`` rounds; each round measures every path of every case once.

    Within a round a case's paths run back to back, in their order rotated by the round
    number, so a burst of load from other processes lands on every path of that round
    alike, and no path always runs first (cold) or right after the same neighbour. The
    result holds, per case, each path's samples in round order: sample r of two paths of
    one case come from the same round.
    """
    if rounds < 1:
        raise ValueError("at least one round")
    found: list[dict[str, list[float]]] = [{name: [] for name, _ in case.paths} for case in cases]
    for round_no in range(rounds):
        for case, samples in zip(cases, found, strict=True):
            for name, measure in rotated(case.paths, round_no):
                samples[name].append(await _value(measure()))
    return found


def case_rows(case: Case, samples: dict[str, list[float]]) -> list[Row]:
    """One row per path: the median of its samples and its same-round ratios."""
    base = samples[case.baseline]
    fast = samples.get(case.fast) if case.fast else None
    rows = []
    for name, _ in case.paths:
        mine = samples[name]
        middle = statistics.median(mine)
        rows.append(
            Row(
                case.bench,
                case.name,
                name,
                ops_per_s=None if case.latency else middle,
                p50_ms=middle if case.latency else None,
                extra={"samples": mine},
                baseline=name == case.baseline,
                ratio=same_round_ratio(mine, base, latency=case.latency),
                ratio_fast=None
                if fast is None
                else same_round_ratio(mine, fast, latency=case.latency),
                rounds=len(mine),
            )
        )
    return rows


async def measure_cases(cases: Sequence[Case], rounds: int) -> list[Row]:
    """:func:`run_rounds`, then :func:`case_rows` for every case, in case order."""
    found = await run_rounds(cases, rounds)
    return [
        row for case, samples in zip(cases, found, strict=True) for row in case_rows(case, samples)
    ]


def group_cases(
    bench: str, plans: Sequence[tuple[str, str, Measure]], *, baseline: str, fast: str | None = None
) -> list[Case]:
    """Group ``(case, path, measure)`` triples into cases (first-seen order), ``baseline``
    moved first; ``fast`` is set on the cases that have that path."""
    by_case: dict[str, list[tuple[str, Measure]]] = {}
    for case, path, measure in plans:
        by_case.setdefault(case, []).append((path, measure))
    cases = []
    for name, paths in by_case.items():
        paths.sort(key=lambda item: item[0] != baseline)  # stable: the rest keep their order
        names = [p for p, _ in paths]
        if names[0] != baseline:
            raise ValueError(f"case {name!r} has no baseline path {baseline!r}")
        cases.append(Case(bench, name, paths, fast=fast if fast in names else None))
    return cases


def pair_ratio(
    rows: Sequence[Row], ours: str, theirs: str, case: str, bench: str | None = None
) -> Ratio | None:
    """The same-round ratio of path ``ours`` to path ``theirs`` in one case, from the rows'
    samples (both paths of a case were measured in the same rounds); None if either is
    missing."""
    found: dict[str, Row] = {
        r.path: r for r in rows if r.case == case and (bench is None or r.bench == bench)
    }
    a, b = found.get(ours), found.get(theirs)
    if a is None or b is None or "samples" not in a.extra or "samples" not in b.extra:
        return None
    return same_round_ratio(a.extra["samples"], b.extra["samples"], latency=a.ops_per_s is None)


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


def print_table(rows: list[Row], title: str = "") -> None:
    """Print rows grouped by (bench, case) with each path's median same-round ratio to the
    case's baseline (and to its raw+orjson path, where the case has one), min-max after it.

    Columns nobody filled (p50/p99 on throughput tables) are left out.
    """
    if title:
        print(f"\n## {title}\n")
    rounds = sorted({r.rounds for r in rows if r.rounds})
    if rounds:
        print(
            f"Ratios: median of same-round ratios over {'/'.join(map(str, rounds))} "
            "rotated round(s), (min-max) after; > 1 is better than the reference.\n"
        )
    columns: list[tuple[str, str, Callable[[Row], str]]] = [
        ("bench", "---", lambda r: r.bench),
        ("case", "---", lambda r: r.case),
        ("path", "---", lambda r: r.path),
    ]
    if any(r.ops_per_s is not None for r in rows):
        columns.append(("ops/s", "---:", lambda r: _fmt(r.ops_per_s, 0)))
    if any(r.p50_ms is not None for r in rows):
        columns.append(("p50 ms", "---:", lambda r: _fmt(r.p50_ms, 3)))
    if any(r.p99_ms is not None for r in rows):
        columns.append(("p99 ms", "---:", lambda r: _fmt(r.p99_ms, 3)))
    columns.append(("vs baseline", "---:", _ratio_cell))
    if any(r.ratio_fast is not None for r in rows):
        columns.append(
            ("vs raw+orjson", "---:", lambda r: "" if r.ratio_fast is None else str(r.ratio_fast))
        )
    print("| " + " | ".join(c[0] for c in columns) + " |")
    print("|" + "|".join(c[1] for c in columns) + "|")
    for row in rows:
        print("| " + " | ".join(c[2](row) for c in columns) + " |")


def _ratio_cell(row: Row) -> str:
    if row.baseline:
        return "1.00x (baseline)"
    if row.ratio is not None:
        return str(row.ratio)
    # A module that computes its own same-round ratios (bench_codec) keeps them here.
    legacy = row.extra.get("median_same_round_ratio")
    return "" if legacy is None else f"{legacy:.2f}x"


def _fmt(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


def save_json(rows: list[Row], path: str) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as fh:
        json.dump([asdict(r) for r in rows], fh, indent=2)


#: Rounds per figure by default, and with ``--quick`` (two, so the order still rotates).
ROUNDS = 5
QUICK_ROUNDS = 2


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="fewer operations (a smoke run)")
    p.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    p.add_argument(
        "--rounds",
        type=int,
        default=None,
        help=f"rotated rounds per figure (default {ROUNDS}, {QUICK_ROUNDS} with --quick)",
    )
    return p


def rounds_of(args: argparse.Namespace) -> int:
    """The rounds asked for on the command line, else the default for the run's kind."""
    chosen = getattr(args, "rounds", None) or (QUICK_ROUNDS if args.quick else ROUNDS)
    if chosen < 1:
        raise SystemExit("--rounds must be at least 1")
    return int(chosen)


def setup_django() -> None:
    """Configure Django for benches (bench.settings) if nothing configured it yet."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    import django

    django.setup()
