"""A load process for the server-fault tests: steady reads and writes, outcomes reported.

Prints one line per operation: ``<op> <key> <version> ok <seconds>`` or
``<op> <key> <version> err <ExceptionType> <seconds>``. Stops after PRISM_WORKER_SECONDS.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.reliability.worker_settings")

import django

django.setup()

from prism_storage import storages  # noqa: E402
from tests.reliability.workload import make_record  # noqa: E402


async def main() -> None:
    store = storages["default"]
    deadline = time.monotonic() + float(os.environ.get("PRISM_WORKER_SECONDS", "8"))
    version = 0
    out = sys.stdout
    while time.monotonic() < deadline:
        version += 1
        key = f"load/{version % 16}"
        for op in ("set", "get"):
            started = time.monotonic()
            try:
                if op == "set":
                    await store.set(key, make_record(key, version, size=500))
                else:
                    await store.get(key)
                outcome = "ok"
            except Exception as exc:  # every outcome is reported to the parent
                outcome = f"err {type(exc).__name__}"
            out.write(f"{op} {key} {version} {outcome} {time.monotonic() - started:.3f}\n")
            out.flush()
        await asyncio.sleep(0.01)
    await store.close()


if __name__ == "__main__":
    print("ready", flush=True)
    asyncio.run(main())
