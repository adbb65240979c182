"""A writer process for the crash tests: writes self-checking records until killed.

Run as ``python -m tests.reliability.crash_writer`` with PRISM_WORKER_CONFIG set (see
worker_settings). After each acknowledged write it prints ``ack <key> <version>``, so the
parent knows which versions the store has confirmed. With PRISM_WORKER_DELETES=1 it also
sets and deletes (one by one and in batches) keys under ``gone/``, which it does not
acknowledge: they exercise the delete paths for the checks that the listing agrees with
the records. With PRISM_WORKER_LISTS=1 it appends items ``{"n": version, "pad": ...}`` to
the lists of a few ``chat/`` records instead, acknowledging each append the same way.
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
from tests.reliability.workload import list_item, make_record  # noqa: E402

KEYS = int(os.environ.get("PRISM_WORKER_KEYS", "12"))
DELETES = os.environ.get("PRISM_WORKER_DELETES") == "1"
LISTS = os.environ.get("PRISM_WORKER_LISTS") == "1"


async def churn(store, rng: random.Random, version: int) -> None:  # type: ignore[no-untyped-def]
    """Set or delete a few ``gone/`` keys (unacknowledged: only their consistency counts)."""
    keys = [f"gone/{k}" for k in rng.sample(range(KEYS), 3)]
    roll = rng.random()
    if roll < 0.3:
        await store.set_many({key: make_record(key, version) for key in keys})
    elif roll < 0.6:
        await store.set(keys[0], make_record(keys[0], version))
    elif roll < 0.8:
        await store.delete(keys[0])
    else:
        await store.delete_many(keys)


async def main() -> None:
    store = storages["default"]
    rng = random.Random(os.getpid())
    version = int(os.environ.get("PRISM_WORKER_START", "1"))
    out = sys.stdout
    while True:
        if LISTS:
            key = f"chat/{rng.randrange(4)}"
            await store.append(key, [list_item(version)])
            out.write(f"ack {key} {version}\n")
        elif DELETES and rng.random() < 0.4:
            await churn(store, rng, version)
        elif rng.random() < 0.2:
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
