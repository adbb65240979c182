"""A writer process for the crash tests: writes self-checking records until killed.

Run as ``python -m tests.reliability.crash_writer`` with PRISM_WORKER_CONFIG set (see
worker_settings). After each acknowledged write it prints ``ack <key> <version>``, so the
parent knows which versions the store has confirmed.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.reliability.worker_settings")

import django

django.setup()

from prism_storage import storages  # noqa: E402
from tests.reliability.workload import make_record  # noqa: E402

KEYS = int(os.environ.get("PRISM_WORKER_KEYS", "12"))


async def main() -> None:
    store = storages["default"]
    rng = random.Random(os.getpid())
    version = int(os.environ.get("PRISM_WORKER_START", "1"))
    out = sys.stdout
    while True:
        if rng.random() < 0.2:
            keys = rng.sample(range(KEYS), 3)
            batch = {f"rec/{k}": make_record(f"rec/{k}", version) for k in keys}
            await store.set_many(batch)
            for key in batch:
                out.write(f"ack {key} {version}\n")
        else:
            key = f"rec/{rng.randrange(KEYS)}"
            await store.set(key, make_record(key, version))
            out.write(f"ack {key} {version}\n")
        out.flush()
        version += 1


if __name__ == "__main__":
    print("ready", flush=True)
    asyncio.run(main())
