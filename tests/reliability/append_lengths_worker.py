"""A worker for the multi-process append test: appends ``PRISM_WORKER_APPENDS`` items
``{"w": <worker>, "n": <n>}`` to the list of one record, one after another, and prints the
length each append returned, one per line."""

from __future__ import annotations

import asyncio
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.reliability.worker_settings")

import django

django.setup()

from prism_storage import storages  # noqa: E402


async def main() -> None:
    store = storages["default"]
    worker = int(os.environ["PRISM_WORKER_ID"])
    lengths = []
    for n in range(int(os.environ["PRISM_WORKER_APPENDS"])):
        lengths.append(await store.append("chat", [{"w": worker, "n": n}]))
    await store.close()
    sys.stdout.write("\n".join(map(str, lengths)) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
