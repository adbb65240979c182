"""The LangGraph integration on the ``orm`` store against LangGraph's own PostgreSQL packages.

Paths on one PostgreSQL (a scratch database, ``prism_bench_langgraph``, created and dropped
here):

* ``langgraph postgres`` (the baseline): ``AsyncPostgresSaver`` / ``AsyncPostgresStore``
  from ``langgraph-checkpoint-postgres``, on an ``AsyncConnectionPool`` of 10 autocommit
  connections (what LangGraph documents for concurrent use), after ``setup()``;
* ``prism orm``: ``PrismCheckpointSaver`` / ``PrismStore`` on ``ORMStorageBackend``, each
  on a store of its own (two namespaces of the one table, as two aliases are: the setup
  docs/langgraph.md shows);
* ``prism orm, one store``: in the store's cases, ``PrismStore`` on the checkpointer's
  own store, its items among the checkpoints.

Cases, each at 1 and 64 concurrent tasks over 64 threads (checkpointer) or on one
namespace of ``MEMORIES`` items (store):

* ``aput``: a new checkpoint (an ~2.5 KB agent record as the ``messages`` channel) on a
  thread, its parent the thread's previous one;
* ``aget_tuple``: a thread's latest checkpoint; ``alist``: its 10 newest;
* store ``aput`` / ``aget`` of ~2.5 KB memories, ``asearch`` with a ``filter``.

The tables are filled (``MEMORIES`` checkpoints over the threads, as many memories) and
analyzed before the first round, as bench_orm does: the planner's statistics then describe
the tables in use, as autovacuum keeps them on a database in service. Threads grow as
``aput`` runs: every later case reads longer threads, on both paths alike.
Each round measures every path of every case once, back to back, in an order rotated
round by round; a figure is the median over rounds and a ratio the median of same-round
ratios, min-max shown (``bench.harness``).

Run: ``python -m bench.bench_langgraph [--quick] [--rounds N]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from bench.harness import (
    Measure,
    Row,
    agent_record,
    group_cases,
    measure_cases,
    parser,
    print_table,
    rounds_of,
    save_json,
    tasks_label,
    throughput,
)

BENCH = "langgraph @ PostgreSQL"
BASELINE = "langgraph postgres"
PRISM = "prism orm"
PRISM_SHARED = "prism orm, one store"
TASKS = (1, 64)
THREADS = 64
MEMORIES = 500
NAMESPACE = ("bench", "memories")


class Checkpoints:
    """One checkpointer under test, with the latest checkpoint id of each thread."""

    def __init__(self, name: str, saver: Any) -> None:
        self.name = name
        self.saver = saver
        self.latest: dict[str, str] = {}

    async def put(self, i: int) -> None:
        from langgraph.checkpoint.base import empty_checkpoint

        thread = f"thread-{i % THREADS}"
        configurable = {"thread_id": thread, "checkpoint_ns": ""}
        if thread in self.latest:
            configurable["checkpoint_id"] = self.latest[thread]
        version = f"{i:032}.0"
        checkpoint = empty_checkpoint()
        checkpoint["channel_values"] = {"messages": agent_record(i)}
        checkpoint["channel_versions"] = {"messages": version}
        stored = await self.saver.aput(
            {"configurable": configurable},
            checkpoint,
            {"source": "loop", "step": i, "parents": {}},
            {"messages": version},
        )
        self.latest[thread] = stored["configurable"]["checkpoint_id"]

    async def get(self, i: int) -> None:
        config = {"configurable": {"thread_id": f"thread-{i % THREADS}", "checkpoint_ns": ""}}
        assert await self.saver.aget_tuple(config) is not None

    async def list(self, i: int) -> None:
        config = {"configurable": {"thread_id": f"thread-{i % THREADS}"}}
        found = [t async for t in self.saver.alist(config, limit=10)]
        assert found


class Memories:
    """One LangGraph store under test."""

    def __init__(self, name: str, store: Any) -> None:
        self.name = name
        self.store = store

    async def put(self, i: int) -> None:
        value = {**agent_record(i), "kind": "note" if i % 10 == 0 else "chat"}
        await self.store.aput(NAMESPACE, f"m{i % MEMORIES}", value)

    async def get(self, i: int) -> None:
        assert await self.store.aget(NAMESPACE, f"m{i % MEMORIES}") is not None

    async def search(self, i: int) -> None:
        assert await self.store.asearch(NAMESPACE, filter={"kind": "note"}, limit=10)


def _plans(
    paths: list[Any], verbs: list[tuple[str, str]], ops: int, prefix: str
) -> list[tuple[str, str, Measure]]:
    plans: list[tuple[str, str, Measure]] = []
    for tasks in TASKS:
        for label, method in verbs:
            for path in paths:
                op: Callable[[int], Awaitable[Any]] = getattr(path, method)

                def measure(op: Any = op, tasks: int = tasks) -> Awaitable[float]:
                    return throughput(op, tasks=tasks, total=ops)

                plans.append((f"{prefix} {label}, {tasks_label(tasks)}", path.name, measure))
    return plans


async def main(argv: list[str] | None = None) -> list[Row]:
    p = parser(__doc__.splitlines()[0])  # type: ignore[union-attr]
    args = p.parse_args(argv)
    rounds = rounds_of(args)
    ops = 128 if args.quick else 640

    from bench.harness import setup_django

    setup_django()
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from langgraph.store.postgres import AsyncPostgresStore
    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool

    from bench.orm_paths import _conninfo, analyze, scratch_databases
    from prism_storage import ORMStorageBackend
    from prism_storage.integrations.langgraph import PrismCheckpointSaver, PrismStore

    sqlite_file = os.path.join(tempfile.gettempdir(), f"prism-bench-lg-{os.getpid()}.sqlite3")
    async with scratch_databases("prism_bench_langgraph", sqlite_file) as (pg_alias, _):
        pool = AsyncConnectionPool(
            _conninfo(pg_alias),
            min_size=10,
            max_size=10,
            open=False,
            kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        )
        await pool.open()
        run = uuid.uuid4().hex[:8]
        backend = ORMStorageBackend(namespace=f"bench-{run}", using=pg_alias)
        memory_backend = ORMStorageBackend(namespace=f"bench-memories-{run}", using=pg_alias)
        try:
            saver = AsyncPostgresSaver(pool)  # type: ignore[arg-type]
            await saver.setup()
            store = AsyncPostgresStore(pool)  # type: ignore[arg-type]
            await store.setup()
            checkpoints = [
                Checkpoints(BASELINE, saver),
                Checkpoints(PRISM, PrismCheckpointSaver(backend)),
            ]
            memories = [
                Memories(BASELINE, store),
                Memories(PRISM, PrismStore(memory_backend)),
                Memories(PRISM_SHARED, PrismStore(backend)),
            ]
            for path in [*checkpoints, *memories]:
                for i in range(max(THREADS, MEMORIES)):
                    await path.put(i)
            # Statistics of the filled tables, as autovacuum keeps them on a database in
            # service: prepared statements first planned against empty tables keep plans that
            # can read every row (docs/langgraph.md, "Speed").
            await analyze(pg_alias)
            plans = _plans(
                checkpoints,
                [("aput", "put"), ("aget_tuple", "get"), ("alist 10", "list")],
                ops,
                "checkpointer",
            )
            plans += _plans(
                memories,
                [("aput", "put"), ("aget", "get"), ("asearch filter", "search")],
                ops,
                "store",
            )
            rows = await measure_cases(group_cases(BENCH, plans, baseline=BASELINE), rounds)
        finally:
            await backend.close()
            await memory_backend.close()
            await pool.close()
    print_table(rows, f"LangGraph integration on PostgreSQL, median of {rounds} rotated round(s)")
    if args.json:
        save_json(rows, args.json)
    return rows


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
