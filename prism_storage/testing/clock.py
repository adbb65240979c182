"""A clock that tests move by hand, for stores whose expiry reads an injected ``clock``."""

from __future__ import annotations

import time


class FakeClock:
    """A clock for TTL tests: ``clock()`` returns a time that only ``advance`` moves."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
