"""The Python side of a Lua script: its text and the SHA-1 ``EVALSHA`` calls it by."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

__all__ = ["Script"]


@dataclass(frozen=True)
class Script:
    """A Lua script and its SHA-1 (the name ``EVALSHA`` calls it by)."""

    name: str
    body: str
    #: The script writes or deletes a record and keeps the key index (KEYS[2]) in step.
    indexed: bool = False
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        digest = hashlib.sha1(self.body.encode(), usedforsecurity=False).hexdigest()
        object.__setattr__(self, "sha", digest)
