"""The offline MiniLM embedder: texts per second, one at a time and in batches.

Paths, each embedding the same texts with ``prism_storage.embeddings.MiniLMEmbedder``:

* ``single, 1 thread`` (the baseline): ``embedder(text)`` in a loop, onnxruntime on one
  intra-op thread (the default).
* ``single, 2 threads``: the same with ``threads=2``: lower latency per call, same CPU.
* ``embed_many, 1 thread`` / ``2 threads``: ``embed_many(texts)`` with batches of 32.
* ``single x2 callers, 1 thread``: two Python threads calling the embedder at once (what
  a server with two workers threads does); onnxruntime releases the GIL while it runs.

Cases: short texts (a chat message, ~16 word pieces) and long ones (cut at the model's
256 word-piece limit). The first call, which loads the model, is not timed. Besides texts
per second, each path reports the CPU time it spent per text: on a busy shared machine it
is the steadier figure. Each round measures every path once, in an order rotated round by
round (``--rounds``, default 5, 2 with ``--quick``); a figure is the median over rounds, a
ratio the median of same-round ratios (min-max shown). No JSON is involved, so there is
no orjson variant.

Run: ``python -m bench.bench_embeddings [--quick] [--rounds N]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from bench.harness import (
    Case,
    Row,
    latencies,
    measure_cases,
    parser,
    print_table,
    rounds_of,
    save_json,
)
from prism_storage.embeddings import MiniLMEmbedder

BENCH = "embeddings"


def short_texts(count: int) -> list[str]:
    return [
        f"User {i} asked the agent how to reset the password for account {i * 13}."
        for i in range(count)
    ]


def long_texts(count: int) -> list[str]:
    body = "The agent summarised the quarterly report, the open tickets and the plan. "
    return [f"Note {i}: " + body * 30 for i in range(count)]


def measure(run: Callable[[list[str]], object], texts: list[str]) -> tuple[float, float]:
    """Texts per second (wall clock) and CPU milliseconds per text (all threads)."""
    started, cpu = time.perf_counter(), time.process_time()
    run(texts)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return len(texts) / wall, 1000 * cpu / len(texts)


async def measure_case(case: str, texts: list[str], rounds: int) -> list[Row]:
    one, two = MiniLMEmbedder(threads=1), MiniLMEmbedder(threads=2)
    one.load()
    two.load()

    def singles(embedder: MiniLMEmbedder) -> Callable[[list[str]], object]:
        return lambda items: [embedder(text) for text in items]

    def two_callers(items: list[str]) -> object:
        half = len(items) // 2
        with ThreadPoolExecutor(2) as pool:
            return list(pool.map(singles(one), [items[:half], items[half:]]))

    paths: list[tuple[str, Callable[[list[str]], object]]] = [
        ("single, 1 thread", singles(one)),
        ("single, 2 threads", singles(two)),
        ("embed_many, 1 thread", one.embed_many),
        ("embed_many, 2 threads", two.embed_many),
        ("single x2 callers, 1 thread", two_callers),
    ]
    cpu: dict[str, list[float]] = {path: [] for path, _ in paths}

    def timed(path: str, run: Callable[[list[str]], object]) -> Callable[[], float]:
        def once() -> float:
            rate, spent = measure(run, texts)
            cpu[path].append(spent)
            return rate

        return once

    rows = await measure_cases(
        [Case(BENCH, case, [(p, timed(p, run)) for p, run in paths])], rounds
    )
    for row in rows:
        row.extra["cpu_ms_per_text"] = round(statistics.median(cpu[row.path]), 2)

    async def one_call(i: int) -> None:
        one(texts[i % len(texts)])

    p50, p99 = await latencies(one_call, count=min(len(texts), 200))
    rows[0].p50_ms, rows[0].p99_ms = p50, p99
    return rows


async def main(argv: list[str] | None = None) -> list[Row]:
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    count = 64 if args.quick else 256
    rounds = rounds_of(args)
    rows = await measure_case("short texts (~16 word pieces)", short_texts(count), rounds)
    rows += await measure_case("long texts (256 word pieces)", long_texts(count // 8), rounds)
    print_table(rows, f"MiniLM embedder, texts/s (median of {rounds} rotated round(s))")
    # CPU time per text barely depends on what else the shared machine runs; wall time does.
    print("\n| case | path | CPU ms per text |\n|---|---|---:|")
    for row in rows:
        print(f"| {row.case} | {row.path} | {row.extra['cpu_ms_per_text']:.2f} |")
    if args.json:
        save_json(rows, args.json)
    return rows


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
