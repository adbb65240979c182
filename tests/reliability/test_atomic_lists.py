"""Atomic appends and pops from several processes at once, on every store that has them.

Four processes, each with four tasks, append 200 items apiece to one record: every item
must end up in the list exactly once, in each writer's own order. Then four processes pop
a list of 400 items empty: every item must be handed out exactly once. (Processes of the
same machine on one store: what two web or task workers serving one conversation do.)
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connections

from prism_storage import Registry
from tests.support.stores import STORE_KINDS

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = 4
TASKS = 4
APPENDS = 50  # per task: 200 per process
KEY = "lists/chat"


def _database_settings() -> dict:
    settings = connections["default"].settings_dict
    return {
        k: settings[k]
        for k in ("ENGINE", "NAME", "USER", "PASSWORD", "HOST", "PORT", "OPTIONS")
        if k in settings
    }


def _run_workers(config: dict, databases: dict, mode: str) -> list[str]:
    env = {
        **os.environ,
        "PRISM_WORKER_CONFIG": json.dumps({"store": config, "databases": databases}, default=str),
        "DJANGO_SETTINGS_MODULE": "tests.reliability.worker_settings",
        "PYTHONPATH": str(ROOT),
        "PRISM_WORKER_TASKS": str(TASKS),
        "PRISM_WORKER_APPENDS": str(APPENDS),
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.append_worker", mode],
            cwd=ROOT,
            env={**env, "PRISM_WORKER_ID": str(i)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(PROCESSES)
    ]
    outputs = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err[-3000:]
            outputs.append(out)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    return outputs


def _store_for(kind: str, config: dict):  # type: ignore[no-untyped-def]
    store = Registry.create(config["BACKEND"], **config.get("OPTIONS", {}))
    if kind == "memory" or not store.shared_across_processes:
        pytest.skip("the store lives in one process: the conformance suite covers its tasks")
    if not store.supports_atomic_lists:
        pytest.skip(f"the {kind} store has no atomic list operations")
    return store


@pytest.mark.django_db(transaction=True, databases=["default"])
@pytest.mark.parametrize("kind", sorted(STORE_KINDS))
def test_processes_appending_to_one_record_lose_nothing(kind, store_config):
    config = store_config(kind, "appends")
    store = _store_for(kind, config)
    _run_workers(config, {"default": _database_settings()}, "append")

    async def read() -> dict | None:
        try:
            return await store.get(KEY)
        finally:
            await store.close()

    value = asyncio.run(read())
    connections.close_all()
    assert value is not None
    items = value["messages"]
    assert len(items) == PROCESSES * TASKS * APPENDS
    for w in range(PROCESSES):
        for t in range(TASKS):
            mine = [item["n"] for item in items if item["w"] == w and item["t"] == t]
            assert mine == list(range(APPENDS)), (w, t, mine[:10])


@pytest.mark.django_db(transaction=True, databases=["default"])
@pytest.mark.parametrize("kind", sorted(STORE_KINDS))
def test_processes_popping_one_list_never_share_an_item(kind, store_config):
    config = store_config(kind, "pops")
    store = _store_for(kind, config)
    total = 400

    async def fill() -> None:
        try:
            await store.set(KEY, {"messages": list(range(total))})
        finally:
            await store.close()

    asyncio.run(fill())
    outputs = _run_workers(config, {"default": _database_settings()}, "pop")
    taken = [json.loads(line) for out in outputs for line in out.splitlines() if line]

    async def read() -> dict | None:
        try:
            return await store.get(KEY)
        finally:
            await store.close()

    assert asyncio.run(read()) == {"messages": []}
    connections.close_all()
    assert sorted(taken) == list(range(total))
