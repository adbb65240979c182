"""The JSON API under uvicorn against a hand-written async view doing the same store call.

A uvicorn server (ASGI, one worker, a free loopback port) serves ``bench.api_urls``:

* ``raw async view`` (the baseline, the limit): ``await storages[alias].get(key)`` or
  ``.set(key, json.loads(body))`` and a ``JsonResponse``, with no access checks;
* ``prism API``: ``GET`` / ``PUT /prism/api/stores/<alias>/records/<key>``, which also
  authenticates the session user, checks permissions, limits and validates the body, and
  for PUT asks whether the key exists (201 or 200).

Both go through the same middleware (sessions, CSRF, auth) and are called by 64
concurrent ``httpx.AsyncClient`` tasks with a logged-in superuser's session cookie and
CSRF token, on ~2.5 KB agent records. Stores: ``file`` on tmpfs, ``orm`` on a scratch
PostgreSQL database (``prism_bench_api_<pid>``, created and dropped here), and ``redis``
on the local server (keys under a private prefix, deleted afterwards) when that backend
exists. Client and server share the machine's cores. Each round measures both paths of
every case once, in an order rotated round by round (``--rounds``, default 5, 2 with
``--quick``); a figure is the median over rounds, the ratio the median of same-round
ratios (min-max shown). The raw view's JSON is encoded by the server (Django's
``JsonResponse``), so this bench has no orjson variant of the raw path.

Run: ``python -m bench.bench_api [--quick] [--rounds N] [--sessions db|signed_cookies]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
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

TASKS = 64
KEYS = 500
BENCH = "api (uvicorn, 64 clients)"
RAW = "raw async view"
API = "prism API"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_answers() -> bool:
    if importlib.util.find_spec("prism_storage.backends.redis") is None:
        return False
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def store_settings(data_dir: str, redis_prefix: str) -> dict[str, Any]:
    stores: dict[str, Any] = {
        "default": {"BACKEND": "orm"},
        "file": {"BACKEND": "file", "OPTIONS": {"data_dir": data_dir}},
        "orm": {"BACKEND": "orm", "OPTIONS": {"namespace": "bench-api"}},
    }
    if redis_answers():
        stores["redis"] = {
            "BACKEND": "redis",
            "OPTIONS": {"url": "redis://127.0.0.1:6379/0", "prefix": redis_prefix},
        }
    return stores


def prepare_database(database: str) -> tuple[str, str]:
    """Create and migrate the scratch database; return (session key, CSRF token)."""
    import psycopg
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.utils.crypto import get_random_string
    from django.utils.module_loading import import_string

    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    call_command("migrate", verbosity=0)
    user = User.objects.create_superuser("bench", "bench@example.com", "bench")
    store_class = import_string(f"{settings.SESSION_ENGINE}.SessionStore")
    session = store_class()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.save()
    return str(session.session_key), get_random_string(32)


def drop_database(database: str) -> None:
    import psycopg
    from django.db import connections

    connections.close_all()
    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


async def wait_ready(client: Any, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("uvicorn exited before it was ready")
        with contextlib.suppress(Exception):
            response = await client.get("/prism/api/stores/")
            if response.status_code == 200:
                return
        await asyncio.sleep(0.2)
    raise RuntimeError("uvicorn did not answer within 30 s")


async def delete_redis_keys(prefix: str) -> None:
    import redis.asyncio as redis

    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


async def main(argv: list[str] | None = None) -> list[Row]:
    p = parser(__doc__ or "")
    p.add_argument(
        "--sessions",
        choices=["db", "signed_cookies"],
        default="db",
        help="the session engine the logged-in API client uses",
    )
    args = p.parse_args(argv)
    total = 300 if args.quick else 3000
    rounds = rounds_of(args)

    database = f"prism_bench_api_{os.getpid()}"
    data_dir = tempfile.mkdtemp(
        prefix="prism-bench-api-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None
    )
    redis_prefix = f"prism-bench-api-{os.getpid()}:"
    stores = store_settings(data_dir, redis_prefix)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.api_settings",
        "PRISM_BENCH_API_DB": database,
        "PRISM_BENCH_STORES": json.dumps(stores),
        "PRISM_BENCH_SESSION_ENGINE": f"django.contrib.sessions.backends.{args.sessions}",
    }
    os.environ.update(
        {
            k: env[k]
            for k in (
                "DJANGO_SETTINGS_MODULE",
                "PRISM_BENCH_API_DB",
                "PRISM_BENCH_STORES",
                "PRISM_BENCH_SESSION_ENGINE",
            )
        }
    )
    import django
    import httpx

    django.setup()
    process: subprocess.Popen[bytes] | None = None
    rows: list[Row] = []
    try:
        session_key, csrf = await asyncio.to_thread(prepare_database, database)
        port = free_port()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "bench.api_asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--no-access-log",
                "--timeout-keep-alive",
                "120",
            ],
            env=env,
        )
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            cookies={"sessionid": session_key, "csrftoken": csrf},
            headers={"X-CSRFToken": csrf},
            limits=httpx.Limits(max_connections=TASKS, max_keepalive_connections=TASKS),
            timeout=60,
        ) as client:
            await wait_ready(client, process)
            rows = await measure(client, [a for a in stores if a != "default"], total, rounds)
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=10)
        await asyncio.to_thread(drop_database, database)
        shutil.rmtree(data_dir, ignore_errors=True)
        if "redis" in stores:
            await delete_redis_keys(redis_prefix)
    print_table(
        rows,
        f"JSON API vs a raw async view ({args.sessions} sessions), median of "
        f"{rounds} rotated round(s)",
    )
    if args.json:
        save_json(rows, args.json)
    return rows


async def measure(client: Any, aliases: list[str], total: int, rounds: int) -> list[Row]:
    bodies = [json.dumps(agent_record(i)) for i in range(KEYS)]
    put_headers = {"Content-Type": "application/json"}

    def url(path: str, alias: str, i: int) -> str:
        if path == RAW:
            return f"/raw/{alias}/agent-{i % KEYS}"
        return f"/prism/api/stores/{alias}/records/agent-{i % KEYS}"

    def op(path: str, alias: str, method: str) -> Callable[[int], Awaitable[None]]:
        async def call(i: int) -> None:
            if method == "GET":
                response = await client.get(url(path, alias, i))
            else:
                response = await client.put(
                    url(path, alias, i), content=bodies[i % KEYS], headers=put_headers
                )
            if response.status_code not in (200, 201):
                raise RuntimeError(
                    f"{method} {path} {alias}: {response.status_code} {response.text[:200]}"
                )

        return call

    for alias in aliases:  # every key exists before the first GET
        await throughput(op(API, alias, "PUT"), tasks=TASKS, total=KEYS)

    def timed(path: str, alias: str, method: str) -> Callable[[], Awaitable[float]]:
        return lambda: throughput(op(path, alias, method), tasks=TASKS, total=total)

    cases = [
        Case(
            BENCH, f"{alias} {method}", [(path, timed(path, alias, method)) for path in (RAW, API)]
        )
        for alias in aliases
        for method in ("GET", "PUT")
    ]
    return await measure_cases(cases, rounds)


if __name__ == "__main__":
    asyncio.run(main())
