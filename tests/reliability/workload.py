"""Self-checking records for the reliability tests.

Each record carries its key, a version and a SHA-256 of its payload, so that a reader can
tell an intact record (some version, whole) from a torn or mixed one without knowing
what the writer managed to do before it died.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any


def make_record(key: str, version: int, size: int | None = None) -> dict[str, Any]:
    rng = random.Random(f"{key}/{version}")
    drawn = rng.choice([64, 700, 4_000, 40_000])
    size = drawn if size is None else size
    words = [f"w{rng.randrange(10_000)}" for _ in range(max(1, size // 6))]
    payload = " ".join(words)
    return {
        "key": key,
        "version": version,
        "payload": payload,
        "nested": {"messages": [{"role": "user", "content": payload[:50]}] * 3},
        "sha256": hashlib.sha256(payload.encode()).hexdigest(),
        "size": size,
    }


def check_record(key: str, value: Any) -> int:
    """Return the version of an intact record for ``key``; raise AssertionError otherwise."""
    assert isinstance(value, dict), f"{key!r}: not a dict: {type(value).__name__}"
    assert value.get("key") == key, f"{key!r}: holds the record of {value.get('key')!r}"
    version = value["version"]
    expected = make_record(key, version, size=value.get("size"))
    assert value == expected, f"{key!r}: version {version} is torn"
    return int(version)


def list_item(version: int) -> dict[str, Any]:
    """An item for list appends whose padding says how long it must be: a torn item does
    not check out."""
    return {"n": version, "pad": "x" * (version % 700)}
