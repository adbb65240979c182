"""OpenAI Agents SDK sessions: agent turns kept by prism's ``PrismSession`` and the SDK's own.

A *turn* is what ``Runner.run`` asks of a session each time: ``add_items`` of the turn's
two items (the user's message and the assistant's answer, ~150 and ~450 bytes as JSON),
then ``get_items()`` of the whole history, which the next turn hands the model. Each
session's turns run one after another, as one conversation's do; the cases run 1 session
(``TURNS`` turns) and 64 sessions at once (64 asyncio tasks, ``TURNS_EACH`` turns each).
Every measurement starts new, empty sessions (so the histories have the same lengths in
every round) and checks, untimed, that each session then holds all its items in order;
a path that lost or reordered any fails the run. Before the first round each path holds
``FILL_SESSIONS`` earlier conversations (untimed) and the PostgreSQL database is
analyzed, as autovacuum keeps a database in service (bench_orm and bench_langgraph do the
same).

Paths (the SDK's ``SQLiteSession`` is the baseline):

* ``sdk SQLiteSession``: the SDK's default session, on a scratch SQLite file;
* ``prism orm @ SQLite`` and ``prism orm @ PostgreSQL``: ``PrismSession`` over the orm
  store on scratch databases (``bench.orm_paths.scratch_databases``); the SQLite file is
  put in WAL mode, as ``SQLiteSession`` puts its own (``--sqlite-journal``: Django's
  default rollback journal);
* ``prism redis``: ``PrismSession`` over the redis store, on a private ``redis-server``
  on a free loopback port (or ``--url``);
* ``sdk SQLAlchemySession @ PostgreSQL`` (``agents.extensions.memory``, with SQLAlchemy's
  async engine over psycopg 3, default pool) on the same scratch PostgreSQL database, and
  ``sdk RedisSession`` on the same Redis server, one shared client: each only where the
  installed SDK has it (a note says when it does not).

Besides the table against the baseline, a second table gives the same-round ratios of
each prism path to the SDK session on the same server. Each round measures every path of
every case once, in an order rotated round by round (``--rounds``, default 5, 2 with
``--quick``).

Run: ``python -m bench.bench_sessions [--quick] [--rounds N] [--url redis://...]
[--paths NAMES]`` (``--paths``: only the paths named, comma-separated, e.g.
``"sdk SQLiteSession,prism orm @ SQLite"``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from bench.harness import (
    Case,
    Measure,
    Row,
    measure_cases,
    pair_ratio,
    parser,
    print_table,
    rounds_of,
    save_json,
)

BASELINE = "sdk SQLiteSession"
PRISM_SQLITE = "prism orm @ SQLite"
PRISM_PG = "prism orm @ PostgreSQL"
PRISM_REDIS = "prism redis"
SDK_SQLALCHEMY = "sdk SQLAlchemySession @ PostgreSQL"
SDK_REDIS = "sdk RedisSession"
#: Each prism path and the SDK session it is compared with on the same server.
SAME_SERVER = ((PRISM_PG, SDK_SQLALCHEMY), (PRISM_REDIS, SDK_REDIS), (PRISM_SQLITE, BASELINE))
SESSIONS = (1, 64)
#: Turns of the single session, and of each of the 64, per measurement (full, --quick).
TURNS = (64, 16)
TURNS_EACH = (8, 3)
#: Conversations written on each path before the first round (untimed).
FILL_SESSIONS = 64
_ANSWER = "The quarterly report shows revenue up 12% in the north region, flat elsewhere. " * 4


def user_item(turn: int) -> dict[str, Any]:
    return {"role": "user", "content": f"Turn {turn}: what does the quarterly report say?"}


def assistant_item(session: str, turn: int) -> dict[str, Any]:
    """An answer as the SDK stores a model's output message."""
    return {
        "id": f"msg_{session}_{turn}",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": _ANSWER[:320], "annotations": []}],
    }


#: Makes the session of one conversation id; the second callable closes what it made.
Factory = Callable[[str], Any]
Closer = Callable[[list[Any]], Awaitable[None]]


async def close_nothing(sessions: list[Any]) -> None:
    pass


async def close_sqlite(sessions: list[Any]) -> None:
    for session in sessions:
        session.close()


def turns_measure(
    make: Factory, close: Closer, sessions: int, turns: int, failures: list[str], label: str
) -> Measure:
    """A measure: ``sessions`` new sessions make ``turns`` turns each, concurrently
    (timed); then each session's items are checked (untimed). Returns turns per second."""

    async def measure() -> float:
        run = uuid.uuid4().hex[:8]
        ids = [f"{run}-{n}" for n in range(sessions)]
        made = [make(session_id) for session_id in ids]
        try:

            async def converse(session: Any, session_id: str) -> None:
                for turn in range(turns):
                    await session.add_items([user_item(turn), assistant_item(session_id, turn)])
                    history = await session.get_items()
                    if len(history) != 2 * (turn + 1):
                        failures.append(f"{label}: {session_id} had {len(history)} items")

            started = time.perf_counter()
            await asyncio.gather(*(converse(s, i) for s, i in zip(made, ids, strict=True)))
            seconds = time.perf_counter() - started
            for session, session_id in zip(made, ids, strict=True):
                expected = [
                    item
                    for turn in range(turns)
                    for item in (user_item(turn), assistant_item(session_id, turn))
                ]
                if await session.get_items() != expected:
                    failures.append(f"{label}: {session_id} does not hold its turns in order")
        finally:
            await close(made)
        return sessions * turns / seconds

    return measure


async def run(
    args: Any, rounds: int, stack: contextlib.AsyncExitStack
) -> tuple[list[Row], list[str], list[str]]:
    from agents.memory import SQLiteSession
    from asgiref.sync import sync_to_async

    from bench.bench_redis import private_server
    from bench.orm_paths import analyze, scratch_databases
    from prism_storage import ORMStorageBackend, RedisStorageBackend
    from prism_storage.integrations.openai_agents import PrismSession

    scratch = tempfile.mkdtemp(prefix="prism-bench-sessions-")
    stack.callback(_remove_tree, scratch)
    pg_alias, sqlite_alias = await stack.enter_async_context(
        scratch_databases("prism_bench_sessions", os.path.join(scratch, "orm.sqlite3"))
    )
    if not args.sqlite_journal:
        await sync_to_async(write_ahead_log)(sqlite_alias)
    url = args.url or stack.enter_context(private_server())
    stores = [
        ORMStorageBackend(namespace="bench-sessions", using=sqlite_alias),
        ORMStorageBackend(namespace="bench-sessions", using=pg_alias),
        RedisStorageBackend(url, prefix="bench-sessions:"),
    ]

    async def close_stores() -> None:
        for store in stores:
            await store.close()

    stack.push_async_callback(close_stores)
    sqlite_file = os.path.join(scratch, "sdk.sqlite3")
    paths: list[tuple[str, Factory, Closer]] = [
        (BASELINE, lambda sid: SQLiteSession(sid, sqlite_file), close_sqlite),
        (PRISM_SQLITE, lambda sid: PrismSession(sid, stores[0]), close_nothing),
        (PRISM_PG, lambda sid: PrismSession(sid, stores[1]), close_nothing),
        (PRISM_REDIS, lambda sid: PrismSession(sid, stores[2]), close_nothing),
    ]
    notes = []
    try:
        from agents.extensions.memory import SQLAlchemySession
        from sqlalchemy.ext.asyncio import create_async_engine
    except ImportError as error:
        notes.append(f"{SDK_SQLALCHEMY}: n/a ({error})")
    else:
        from django.db import connections
        from sqlalchemy.engine import URL

        # The scratch database's connection settings, as Django's alias has them.
        db = connections[pg_alias].settings_dict
        engine = create_async_engine(
            URL.create(
                "postgresql+psycopg",
                username=db["USER"] or None,
                password=db["PASSWORD"] or None,
                host=db["HOST"] or None,
                port=int(db["PORT"]) if db["PORT"] else None,
                database=db["NAME"],
            )
        )
        stack.push_async_callback(engine.dispose)
        # Create the SDK's tables once, untimed (create_tables checks them on every call).
        await SQLAlchemySession("setup", engine=engine, create_tables=True).get_items()
        paths.append(
            (SDK_SQLALCHEMY, lambda sid: SQLAlchemySession(sid, engine=engine), close_nothing)
        )
    try:
        from agents.extensions.memory import RedisSession
        from redis.asyncio import Redis
    except ImportError as error:
        notes.append(f"{SDK_REDIS}: n/a ({error})")
    else:
        client = Redis.from_url(url)
        stack.push_async_callback(client.aclose)
        paths.append(
            (
                SDK_REDIS,
                lambda sid: RedisSession(sid, redis_client=client, key_prefix="bench-sdk"),
                close_nothing,
            )
        )

    if args.paths:
        chosen = [name.strip() for name in args.paths.split(",")]
        unknown = sorted(set(chosen) - {path[0] for path in paths})
        if unknown:
            raise SystemExit(f"--paths: no such path here: {', '.join(unknown)}")
        paths = [path for path in paths if path[0] in chosen]

    # One untimed turn per path first: connections, the Lua script, prepared statements.
    for _, make, close in paths:
        warm = make(f"warm-up-{uuid.uuid4().hex[:8]}")
        await warm.add_items([user_item(0), assistant_item("warm-up", 0)])
        await warm.get_items()
        await close([warm])

    failures: list[str] = []
    # Tables in service hold earlier conversations and autovacuum keeps their statistics:
    # 64 conversations on each path first, untimed, then ANALYZE, as bench_orm does.
    for path, make, close in paths:
        await turns_measure(make, close, FILL_SESSIONS, TURNS_EACH[0], failures, f"{path}, fill")()
    await analyze(pg_alias)
    cases = []
    for sessions in SESSIONS:
        turns = (TURNS if sessions == 1 else TURNS_EACH)[1 if args.quick else 0]
        name = f"{sessions} session{'s' if sessions > 1 else ''} x {turns} turns"
        measures: list[tuple[str, Measure]] = [
            (path, turns_measure(make, close, sessions, turns, failures, f"{path}, {name}"))
            for path, make, close in paths
        ]
        cases.append(Case("agent sessions", name, measures))
    rows = await measure_cases(cases, rounds)
    return rows, notes, failures


def write_ahead_log(alias: str) -> None:
    """Put the orm's scratch SQLite file in WAL mode, as SQLiteSession does with its own
    file (the mode is kept in the file). Django leaves SQLite in its default rollback
    journal, which syncs more per commit; ``--sqlite-journal`` keeps that default."""
    from django.db import connections

    with connections[alias].cursor() as cursor:
        cursor.execute("PRAGMA journal_mode=WAL")
    connections[alias].close()


def _remove_tree(path: str) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def print_same_server(rows: list[Row]) -> None:
    """Each prism path against the SDK's session on the same server, same-round ratios."""
    print("\n## prism against the SDK's session on the same server (same-round ratios)\n")
    print("| case | prism path | SDK session | prism / SDK |")
    print("|---|---|---|---:|")
    for case in dict.fromkeys(row.case for row in rows):
        for ours, theirs in SAME_SERVER:
            ratio = pair_ratio(rows, ours, theirs, case)
            if ratio is not None:
                print(f"| {case} | {ours} | {theirs} | {ratio} |")


async def main(argv: list[str] | None = None) -> list[Row]:
    p = parser((__doc__ or "").splitlines()[0])
    p.add_argument("--url", help="use this Redis server instead of a private one")
    p.add_argument(
        "--sqlite-journal",
        action="store_true",
        help="leave the orm's SQLite file in Django's default rollback journal (not WAL)",
    )
    p.add_argument(
        "--paths",
        metavar="NAMES",
        help="measure only these paths (comma-separated names as in the table, e.g. "
        f'"{BASELINE},{PRISM_SQLITE}")',
    )
    args = p.parse_args(argv)
    rounds = rounds_of(args)
    # The SDK must not try to export traces (no key, no network): sessions alone are timed.
    os.environ["OPENAI_AGENTS_DISABLE_TRACING"] = "1"

    from bench.harness import setup_django

    setup_django()
    async with contextlib.AsyncExitStack() as stack:
        rows, notes, failures = await run(args, rounds, stack)
    print_table(
        rows,
        f"agent sessions, a turn = add_items(2 items) + get_items(), {os.cpu_count()} cores, "
        f"orm's SQLite in {'rollback journal' if args.sqlite_journal else 'WAL'} mode, "
        f"median of {rounds} rotated round(s)",
    )
    print_same_server(rows)
    for note in notes:
        print(f"\n{note}")
    if args.json:
        save_json(rows, args.json)
    if failures:
        print(
            "\n!!! A SESSION LOST OR REORDERED ITEMS !!!", *failures[:10], sep="\n", file=sys.stderr
        )
        raise SystemExit(1)
    return rows


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
