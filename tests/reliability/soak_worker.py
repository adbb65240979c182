"""A worker for the concurrency soak: many tasks set, get, delete and list an overlapping
key set, and report every acknowledged operation with its start and end times.

Output lines: ``set <key> <version> <start_ns> <end_ns>``, ``del <key> 0 <start> <end>``,
``bad <description>`` for a violation seen while running (a torn read, a key listed twice).
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.reliability.worker_settings")

import django

django.setup()

from prism_storage import storages  # noqa: E402
from tests.reliability.workload import check_record, make_record  # noqa: E402

KEYS = 24
TASKS = int(os.environ.get("PRISM_WORKER_TASKS", "16"))


async def main() -> None:
    store = storages["default"]
    worker = int(os.environ["PRISM_WORKER_ID"])
    deadline = time.monotonic() + float(os.environ.get("PRISM_WORKER_SECONDS", "8"))
    lines: list[str] = []

    async def task(task_id: int) -> None:
        rng = random.Random(worker * 1000 + task_id)
        n = 0
        while time.monotonic() < deadline:
            n += 1
            key = f"soak/{rng.randrange(KEYS)}"
            roll = rng.random()
            start = time.monotonic_ns()
            if roll < 0.45:
                version = (worker * 1000 + task_id) * 1_000_000 + n
                await store.set(key, make_record(key, version, size=rng.choice([80, 3000])))
                lines.append(f"set {key} {version} {start} {time.monotonic_ns()}")
            elif roll < 0.55:
                await store.delete(key)
                lines.append(f"del {key} 0 {start} {time.monotonic_ns()}")
            elif roll < 0.95:
                value = await store.get(key)
                if value is not None:
                    try:
                        check_record(key, value)
                    except AssertionError as exc:
                        lines.append(f"bad torn-read {exc}")
            elif store.supports_listing:
                listed = [k async for k in store.iter_keys("soak/", page_size=7)]
                if len(listed) != len(set(listed)):
                    lines.append(f"bad listed-twice {sorted(listed)}")

    await asyncio.gather(*(task(i) for i in range(TASKS)))
    await store.close()
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
