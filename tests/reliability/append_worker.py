"""A worker for the atomic list tests: appends to, or pops from, one record.

Run as ``python -m tests.reliability.append_worker append|pop`` with PRISM_WORKER_CONFIG
set (see worker_settings) and PRISM_WORKER_ID. ``append`` runs PRISM_WORKER_TASKS tasks,
each appending PRISM_WORKER_APPENDS items ``{"w": worker, "t": task, "n": n}`` one call at
a time; ``pop`` runs the tasks popping until the list is empty and prints every item it
got as a JSON line.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.reliability.worker_settings")

import django

django.setup()

from prism_storage import storages  # noqa: E402

KEY = "lists/chat"
TASKS = int(os.environ.get("PRISM_WORKER_TASKS", "4"))
APPENDS = int(os.environ.get("PRISM_WORKER_APPENDS", "50"))


async def append(worker: int) -> None:
    store = storages["default"]

    async def task(t: int) -> None:
        for n in range(APPENDS):
            await store.append(KEY, [{"w": worker, "t": t, "n": n}])

    await asyncio.gather(*(task(t) for t in range(TASKS)))
    await store.close()


async def pop() -> None:
    store = storages["default"]
    taken: list[object] = []

    async def task() -> None:
        while (item := await store.pop(KEY)) is not None:
            taken.append(item)

    await asyncio.gather(*(task() for _ in range(TASKS)))
    await store.close()
    sys.stdout.write("".join(json.dumps(item) + "\n" for item in taken))


if __name__ == "__main__":
    mode = sys.argv[1]
    asyncio.run(append(int(os.environ["PRISM_WORKER_ID"])) if mode == "append" else pop())
