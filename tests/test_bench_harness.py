"""The bench runner's arithmetic: rotation of the path order and same-round ratios.

The measure functions here return fixed figures (they stand for timings, which are the
runner's input); what is checked is the order the runner calls them in and what it
computes from what they return.
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Callable

import pytest

from bench.harness import (
    Case,
    Ratio,
    Row,
    case_rows,
    group_cases,
    measure_cases,
    pair_ratio,
    rotated,
    run_rounds,
    same_round_ratio,
)


def recorder(log: list[str], name: str, figures: list[float]) -> Callable[[], float]:
    """A measure that logs its call and returns the next of ``figures``."""
    feed = iter(figures)

    def measure() -> float:
        log.append(name)
        return next(feed)

    return measure


def test_rotated_shifts_by_one_each_round() -> None:
    paths = ["raw", "prism", "django"]
    assert [rotated(paths, r) for r in range(4)] == [
        ["raw", "prism", "django"],
        ["prism", "django", "raw"],
        ["django", "raw", "prism"],
        ["raw", "prism", "django"],
    ]
    assert rotated([], 3) == []


def test_run_rounds_rotates_the_order_per_case_and_keeps_rounds_paired() -> None:
    log: list[str] = []
    first = Case(
        "b",
        "set",
        [
            ("raw", recorder(log, "set/raw", [10, 20, 30])),
            ("ours", recorder(log, "set/ours", [11, 22, 33])),
        ],
    )
    second = Case(
        "b",
        "get",
        [
            ("raw", recorder(log, "get/raw", [1, 2, 3])),
            ("ours", recorder(log, "get/ours", [4, 5, 6])),
        ],
    )
    samples = asyncio.run(run_rounds([first, second], rounds=3))
    # Round by round, every case in turn, each with its paths in the rotated order.
    assert log == [
        "set/raw",
        "set/ours",
        "get/raw",
        "get/ours",
        "set/ours",
        "set/raw",
        "get/ours",
        "get/raw",
        "set/raw",
        "set/ours",
        "get/raw",
        "get/ours",
    ]
    assert samples == [
        {"raw": [10, 20, 30], "ours": [11, 22, 33]},
        {"raw": [1, 2, 3], "ours": [4, 5, 6]},
    ]


def test_run_rounds_awaits_async_measures() -> None:
    async def measure() -> float:
        await asyncio.sleep(0)
        return 7.0

    samples = asyncio.run(run_rounds([Case("b", "c", [("raw", measure)])], rounds=2))
    assert samples == [{"raw": [7.0, 7.0]}]


def test_run_rounds_refuses_zero_rounds() -> None:
    with pytest.raises(ValueError, match="at least one round"):
        asyncio.run(run_rounds([], rounds=0))


def test_same_round_ratio_is_the_median_of_per_round_ratios_not_a_ratio_of_medians() -> None:
    # Round 2 is slow for both paths (load on the machine): ours is 2x raw in every round.
    ours = [200.0, 60.0, 180.0, 220.0, 40.0]
    raw = [100.0, 30.0, 90.0, 110.0, 20.0]
    assert same_round_ratio(ours, raw) == Ratio(2.0, 2.0, 2.0)
    # A best-of or a ratio of medians would pair figures from different rounds:
    lopsided_ours = [100.0, 100.0, 300.0]
    lopsided_raw = [50.0, 200.0, 100.0]
    ratio = same_round_ratio(lopsided_ours, lopsided_raw)
    assert ratio == Ratio(2.0, 0.5, 3.0)
    assert max(lopsided_ours) / max(lopsided_raw) == 1.5
    assert statistics.median(lopsided_ours) / statistics.median(lopsided_raw) == 1.0


def test_same_round_ratio_for_latencies_is_inverted() -> None:
    # Latencies: half the time of the reference is a 2x ratio, as for throughput.
    assert same_round_ratio([1.0, 2.0, 3.0], [2.0, 4.0, 3.0], latency=True) == Ratio(2.0, 1.0, 2.0)


def test_same_round_ratio_needs_paired_samples() -> None:
    with pytest.raises(ValueError):
        same_round_ratio([1.0, 2.0], [1.0])
    with pytest.raises(ValueError):
        same_round_ratio([], [])


def test_rows_report_median_ops_and_ratios_against_baseline_and_orjson_path() -> None:
    case = Case(
        "redis",
        "set 2.5 KB, 1 task",
        [("raw", lambda: 0.0), ("raw+orjson", lambda: 0.0), ("ours", lambda: 0.0)],
        fast="raw+orjson",
    )
    samples = {
        "raw": [100.0, 50.0, 80.0, 120.0],
        "raw+orjson": [200.0, 100.0, 100.0, 240.0],
        "ours": [150.0, 100.0, 40.0, 180.0],
    }
    rows = {r.path: r for r in case_rows(case, samples)}
    assert rows["raw"].baseline and not rows["ours"].baseline
    assert rows["ours"].ops_per_s == statistics.median([150.0, 100.0, 40.0, 180.0]) == 125.0
    # ours/raw per round: 1.5, 2.0, 0.5, 1.5 -> median 1.5; ours/orjson: 0.75, 1.0, 0.4, 0.75
    assert rows["ours"].ratio == Ratio(1.5, 0.5, 2.0)
    assert rows["ours"].ratio_fast == Ratio(0.75, 0.4, 1.0)
    assert rows["raw"].ratio == Ratio(1.0, 1.0, 1.0)
    assert rows["raw+orjson"].ratio == Ratio(2.0, 1.25, 2.0)  # 2, 2, 1.25, 2
    assert all(r.rounds == 4 for r in rows.values())


def test_rows_without_a_fast_path_have_no_second_ratio() -> None:
    case = Case("b", "c", [("raw", lambda: 0.0), ("ours", lambda: 0.0)])
    rows = case_rows(case, {"raw": [1.0, 2.0], "ours": [2.0, 2.0]})
    assert [r.ratio_fast for r in rows] == [None, None]
    assert rows[1].ratio == Ratio(1.5, 1.0, 2.0)


def test_latency_case_rows_fill_p50_and_invert_the_ratio() -> None:
    case = Case("vector", "search", [("raw", lambda: 0.0), ("ours", lambda: 0.0)], latency=True)
    rows = case_rows(case, {"raw": [2.0, 4.0, 2.0], "ours": [1.0, 4.0, 4.0]})
    assert rows[1].ops_per_s is None and rows[1].p50_ms == 4.0
    assert rows[1].ratio == Ratio(1.0, 0.5, 2.0)


def test_measure_cases_end_to_end_with_rotation_shown_in_the_figures() -> None:
    # A measure that is slower when it runs first in its round (a cold start): rotation
    # spreads that penalty over both paths instead of always charging the baseline.
    position: list[int] = []

    def path(speed: float) -> Callable[[], float]:
        def measure() -> float:
            position.append(1)
            first = len(position) % 2 == 1
            return speed / 2 if first else speed

        return measure

    rows = asyncio.run(
        measure_cases([Case("b", "c", [("raw", path(100.0)), ("ours", path(100.0))])], rounds=4)
    )
    raw, ours = rows
    assert raw.extra["samples"] == [50.0, 100.0, 50.0, 100.0]
    assert ours.extra["samples"] == [100.0, 50.0, 100.0, 50.0]
    assert ours.ratio == Ratio(1.25, 0.5, 2.0)  # per-round 2.0, 0.5, 2.0, 0.5


def test_group_cases_puts_the_baseline_first_and_marks_the_fast_path() -> None:
    def m() -> float:
        return 1.0

    plans = [
        ("set", "ours", m),
        ("set", "raw", m),
        ("set", "raw+orjson", m),
        ("get", "ours", m),
        ("get", "raw", m),
    ]
    cases = group_cases("b", plans, baseline="raw", fast="raw+orjson")
    assert [(c.name, [p for p, _ in c.paths], c.fast) for c in cases] == [
        ("set", ["raw", "ours", "raw+orjson"], "raw+orjson"),
        ("get", ["raw", "ours"], None),
    ]
    with pytest.raises(ValueError, match="no baseline"):
        group_cases("b", [("set", "ours", m)], baseline="raw")


def test_pair_ratio_between_two_non_baseline_paths() -> None:
    rows = [
        Row("b", "c", "raw", ops_per_s=1.0, extra={"samples": [1.0, 1.0]}),
        Row("b", "c", "ours", ops_per_s=4.0, extra={"samples": [4.0, 6.0]}),
        Row("b", "c", "theirs", ops_per_s=2.0, extra={"samples": [2.0, 2.0]}),
    ]
    assert pair_ratio(rows, "ours", "theirs", "c") == Ratio(2.5, 2.0, 3.0)
    assert pair_ratio(rows, "ours", "missing", "c") is None


def test_results_file_holds_each_module_output_the_machine_and_the_summary(tmp_path) -> None:
    from bench.__main__ import main

    page = tmp_path / "results.md"
    assert main(["codec", "--quick", "--results", str(page)]) == 0
    text = page.read_text(encoding="utf-8")
    assert text.startswith("# Benchmark results\n")
    assert "cores" in text and "Python " in text
    assert "`python -m bench.bench_codec --quick`" in text
    assert "| codec | encode 2.5 KB | prism codec |" in text
    assert "| codec | ok |" in text


def test_tee_stops_a_module_that_runs_past_its_timeout(tmp_path) -> None:
    import io
    import sys

    from bench.__main__ import tee

    copy = io.StringIO()
    command = [sys.executable, "-c", "print('started', flush=True); import time; time.sleep(30)"]
    assert tee(command, copy, timeout=1.0) == 124
    assert copy.getvalue() == "started\n"
