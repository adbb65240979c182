"""What observing store operations costs: signals, logs, traces and metrics on get/set.

Paths, each running ``get`` and ``set`` of ~2.5 KB agent records at 64 tasks on the
``file`` and ``redis`` backends:

* ``unobserved`` (the baseline): the public methods' bodies called past the ``observed``
  decorator (``BaseStorageBackend.get.__wrapped__``), i.e. the code as it was before
  operations were observed;
* ``observed, nobody listening``: the public methods with no receiver connected, no
  OpenTelemetry provider configured and DEBUG logging off (goal: within 2%);
* ``observed, one receiver``: a no-op receiver on each of the three signals (``get``
  sends none, so only ``set`` pays for its ``record_saved``);
* ``observed, OpenTelemetry SDK``: the SDK's TracerProvider (its BatchSpanProcessor, the
  production choice, into an InMemorySpanExporter cleared between measurements) and
  MeterProvider (an InMemoryMetricReader): a span, a counter and a histogram per
  operation (goal: within 15%).

OpenTelemetry lets a process set its providers once, so the first three paths are
measured first, then the SDK is configured and the last path is measured against the
baseline again, in rounds of its own. Each round measures every path of a case once, in
an order rotated round by round (``--rounds``, default 5, 2 with ``--quick``); a ratio is
the median of same-round ratios (min-max shown). On a shared machine rounds swing by far
more than 2%, so further tables give what no I/O blurs: the cost of dispatching one call
(building the coroutine) with and without the decorator, that cost as a share of each
operation above, and a memory-store ``get`` traced, unobserved, and the SDK's own span
and measurements alone. A private ``redis-server`` is started on a free loopback port.

Run: ``python -m bench.bench_observability [--quick] [--rounds N]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.harness import (
    Case,
    Row,
    agent_record,
    measure_cases,
    parser,
    print_table,
    rounds_of,
    save_json,
    throughput,
)

BENCH = "observability"
UNOBSERVED = "unobserved"
QUIET = "observed, nobody listening"
RECEIVER = "observed, one receiver"
OTEL = "observed, OpenTelemetry SDK"
SDK_ALONE = "the SDK alone: one span, two measurements"
TASKS = 64
KEY_SPACE = 1024
#: Goals: at least this ratio of each path against the unobserved baseline.
GOALS = {QUIET: 0.98, OTEL: 0.85}


def _paths(
    store: Any, names: list[str]
) -> list[tuple[str, Callable[..., Any], Callable[..., Any]]]:
    """``(path, set, get)``: the decorated methods, or the bodies beneath them."""
    from prism_storage.backends.base import BaseStorageBackend

    def unobserved_set(key: str, value: dict[str, Any]) -> Awaitable[None]:
        return BaseStorageBackend.set.__wrapped__(store, key, value)  # type: ignore[attr-defined,no-any-return]

    def unobserved_get(key: str) -> Awaitable[Any]:
        return BaseStorageBackend.get.__wrapped__(store, key)  # type: ignore[attr-defined,no-any-return]

    found = []
    for name in names:
        if name == UNOBSERVED:
            found.append((name, unobserved_set, unobserved_get))
        else:
            found.append((name, store.set, store.get))
    return found


def _cases(
    backend: str, store: Any, names: list[str], ops: int, before: Callable[[str], None]
) -> list[Case]:
    keys = [f"agent-{i}" for i in range(KEY_SPACE)]
    values = [agent_record(i) for i in range(KEY_SPACE)]
    cases = []
    for verb in ("set", "get"):
        paths = []
        for name, set_, get in _paths(store, names):

            def op(
                i: int, set_: Callable[..., Any] = set_, get: Callable[..., Any] = get, verb=verb
            ) -> Awaitable[Any]:
                key = keys[i % KEY_SPACE]
                return set_(key, values[i % KEY_SPACE]) if verb == "set" else get(key)

            async def measure(name: str = name, op: Callable[[int], Awaitable[Any]] = op) -> float:
                before(name)
                return await throughput(op, tasks=TASKS, total=ops)

            paths.append((name, measure))
        cases.append(Case(BENCH, f"{backend} {verb} 2.5 KB, {TASKS} tasks", paths))
    return cases


def _receivers(connected: bool) -> None:
    from prism_storage.signals import record_deleted, record_saved, records_expired

    for signal in (record_saved, record_deleted, records_expired):
        if connected:
            signal.connect(_ignore, dispatch_uid="bench-observability")
        else:
            signal.disconnect(dispatch_uid="bench-observability")


def _ignore(sender: Any, **kwargs: Any) -> None:
    """The cheapest receiver: what dispatching costs, not what a receiver does."""


def _configure_opentelemetry() -> Callable[[], None]:
    """Set the SDK providers, exporting to memory; returns what clears the exporter."""
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from prism_storage.observability import refresh_telemetry

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))
    refresh_telemetry()
    return exporter.clear


def _best_ns(call: Callable[[], Any], calls: int) -> float:
    samples = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(calls):
            call()
        samples.append((time.perf_counter() - started) / calls * 1e9)
    return min(samples)


def dispatch_cost(store: Any, calls: int) -> list[Row]:
    """Nanoseconds to build one ``get`` coroutine (closed unawaited), with and without the
    decorator's quiet-path checks."""
    from prism_storage.backends.base import BaseStorageBackend

    body = BaseStorageBackend.get.__wrapped__  # type: ignore[attr-defined]
    case = "dispatch of one get, no I/O"
    return [
        Row(BENCH, case, UNOBSERVED, p50_ms=_best_ns(lambda: body(store, "a").close(), calls)),
        Row(BENCH, case, QUIET, p50_ms=_best_ns(lambda: store.get("a").close(), calls)),
    ]


def traced_cost(calls: int) -> list[Row]:
    """Nanoseconds per ``get`` of a memory store (no I/O) unobserved and traced, and what
    the SDK alone takes for the same span and measurements, without prism_storage."""
    from opentelemetry import metrics, trace

    from prism_storage import MemoryStorageBackend
    from prism_storage.backends.base import BaseStorageBackend

    store = MemoryStorageBackend("bench-observability")
    store.alias = "bench"
    body = BaseStorageBackend.get.__wrapped__  # type: ignore[attr-defined]
    tracer = trace.get_tracer("bench")
    meter = metrics.get_meter("bench")
    counter = meter.create_counter("bench.operations")
    histogram = meter.create_histogram("bench.duration")
    attributes = {"prism.operation": "get", "prism.backend": "memory"}
    span_attributes = {**attributes, "gen_ai.operation.name": "get", "prism.batch.size": 1}

    def drive(coroutine: Any) -> None:
        with contextlib.suppress(StopIteration):
            coroutine.send(None)  # a memory get never suspends: it ends at once

    def sdk_alone() -> None:
        span = tracer.start_span("get bench", attributes=span_attributes)
        with trace.use_span(span, record_exception=False, set_status_on_exception=False):
            pass
        span.set_attribute("prism.outcome", "ok")
        span.end()
        counter.add(1, attributes)
        histogram.record(0.0, attributes)

    case = "get on a memory store, no I/O"
    return [
        Row(BENCH, case, UNOBSERVED, p50_ms=_best_ns(lambda: drive(body(store, "a")), calls)),
        Row(BENCH, case, OTEL, p50_ms=_best_ns(lambda: drive(store.get("a")), calls)),
        Row(BENCH, case, SDK_ALONE, p50_ms=_best_ns(sdk_alone, calls)),
    ]


async def run(redis_url: str, directory: Path, *, quick: bool, rounds: int) -> list[Row]:
    from prism_storage import FileStorageBackend, RedisStorageBackend

    ops = 800 if quick else 6000
    stores = {
        "file": FileStorageBackend(data_dir=directory),
        "redis": RedisStorageBackend(redis_url, prefix="bench-obs:"),
    }
    value = agent_record(0)
    for store in stores.values():
        await store.set_many({f"agent-{i}": value for i in range(KEY_SPACE)})

    def plain_before(name: str) -> None:
        _receivers(name == RECEIVER)

    rows: list[Row] = []
    try:
        cases = [
            case
            for backend, store in stores.items()
            for case in _cases(backend, store, [UNOBSERVED, QUIET, RECEIVER], ops, plain_before)
        ]
        rows += await measure_cases(cases, rounds)
        _receivers(False)
        rows += dispatch_cost(stores["file"], 20_000 if quick else 200_000)

        clear = _configure_opentelemetry()

        def traced_before(name: str) -> None:
            clear()  # the exporter's list would otherwise grow through the run

        cases = [
            case
            for backend, store in stores.items()
            for case in _cases(backend, store, [UNOBSERVED, OTEL], ops, traced_before)
        ]
        rows += await measure_cases(cases, rounds)
        rows += traced_cost(2_000 if quick else 20_000)
    finally:
        _receivers(False)
        for store in stores.values():
            await store.close()
    return rows


def print_goals(rows: list[Row]) -> None:
    print("| case | path | ratio | goal |")
    print("|---|---|---:|---|")
    for row in rows:
        goal = GOALS.get(row.path)
        if goal is None or row.ratio is None:
            continue
        verdict = "met" if row.ratio.median >= goal else "MISSED"
        print(f"| {row.case} | {row.path} | {row.ratio} | >= {goal:.2f}x {verdict} |")


async def main(argv: list[str] | None = None) -> list[Row]:
    p = parser(__doc__.splitlines()[0])  # type: ignore[union-attr]
    args = p.parse_args(argv)
    rounds = rounds_of(args)

    from bench.bench_redis import private_server
    from bench.harness import setup_django

    setup_django()
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(private_server())
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="prism-obs-")))
        rows = await run(url, directory, quick=args.quick, rounds=rounds)
    throughput_rows = [r for r in rows if r.ops_per_s is not None]
    print_table(throughput_rows, f"observability cost, median of {rounds} rotated round(s)")
    print("\n## cost of one call without I/O (ns; best of 5)\n")
    print("| case | path | ns |")
    print("|---|---|---:|")
    for row in rows:
        if row.ops_per_s is None:
            print(f"| {row.case} | {row.path} | {row.p50_ms:,.0f} |")
    quiet = [r.p50_ms or 0.0 for r in rows if r.case.startswith("dispatch")]
    print("\n## the quiet path's cost as a share of each operation\n")
    print("| case | ns per operation | quiet-path ns | share |")
    print("|---|---:|---:|---:|")
    shown = set()
    for row in throughput_rows:
        if row.path == UNOBSERVED and row.ops_per_s and len(quiet) == 2 and row.case not in shown:
            shown.add(row.case)
            per_op = 1e9 / row.ops_per_s
            extra = quiet[1] - quiet[0]
            print(f"| {row.case} | {per_op:,.0f} | {extra:,.0f} | {extra / per_op:.1%} |")
    print("\n## observability goals\n")
    print_goals(throughput_rows)
    if args.json:
        save_json(rows, args.json)
    return rows


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
