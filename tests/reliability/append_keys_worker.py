"""A worker for the multi-process test of appends to several lists at once: ``PRISM_WORKER_TASKS``
tasks each append ``PRISM_WORKER_APPENDS`` items ``{"w": <worker>, "t": <task>, "n": <n>}``,
item ``n`` of task ``t`` to list ``(t + n) % PRISM_WORKER_KEYS``. The tasks' appends meet in
batches, so they go as merged appends to several lists (some not created yet)."""

from __future__ import annotations

import asyncio
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.reliability.worker_settings")

import django

django.setup()

from prism_storage import storages  # noqa: E402


async def main() -> None:
    store = storages["default"]
    worker = int(os.environ["PRISM_WORKER_ID"])
    keys = int(os.environ["PRISM_WORKER_KEYS"])
    appends = int(os.environ["PRISM_WORKER_APPENDS"])

    async def task(t: int) -> None:
        for n in range(appends):
            await store.append(f"chat-{(t + n) % keys}", [{"w": worker, "t": t, "n": n}])

    await asyncio.gather(*(task(t) for t in range(int(os.environ["PRISM_WORKER_TASKS"]))))
    await store.close()


if __name__ == "__main__":
    asyncio.run(main())
