"""How the ``redis`` backend lays out a record in its Redis string.

A record is one Redis string: a fixed-size header with its metadata, then the JSON text of
its value::

    %1|<version: 16 hex>|<created_at: 15-digit Unix ms>|<updated_at: 15 digits>|<hint>|{...}

where the hint (40 bytes) says where the list the last ``append`` or ``pop`` wrote ends:
the field's id (16 hex digits of the SHA-1 of its name, or dashes), the list's length (10
digits) and the offset of its ``]`` (12 digits). The next ``append`` to that field then
inserts there without reading the record; every other write clears the hint.

Value and metadata are one string, so every command and script reads or writes them
together; the expiry is the key's own (``PX``/``PTTL``). The fixed layout lets the Lua
scripts read the header with one ``GETRANGE`` and rewrite it in place.

Records written before versions existed are the JSON text alone (always starting with
``{``): they are read as they are, their version is the first 16 hex digits of the SHA-1
of the text (the scripts compute the same with ``redis.sha1hex``), and their times are
unknown (the Unix epoch). The next write of such a record stores the new layout.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

__all__ = ["HEADER_SIZE", "MAGIC", "Stored", "json_text", "split"]

MAGIC = b"%1|"
#: ``%1|`` + 16 + ``|`` + 15 + ``|`` + 15 + ``|`` + the hint: 16 + ``|`` + 10 + ``|`` + 12 + ``|``.
HEADER_SIZE = 93


class Stored(NamedTuple):
    """A stored string taken apart: the JSON text and the metadata (Unix ms)."""

    data: bytes | memoryview
    version: str
    created_ms: int
    updated_ms: int


def split(raw: bytes) -> Stored:
    """The JSON text and metadata of a stored string (either layout)."""
    if raw.startswith(MAGIC):
        return Stored(
            memoryview(raw)[HEADER_SIZE:],
            raw[3:19].decode("ascii"),
            int(raw[20:35]),
            int(raw[36:51]),
        )
    return Stored(raw, hashlib.sha1(raw, usedforsecurity=False).hexdigest()[:16], 0, 0)


def json_text(raw: bytes) -> bytes | memoryview:
    """Only the JSON text of a stored string (the hot path of ``get``)."""
    return memoryview(raw)[HEADER_SIZE:] if raw.startswith(MAGIC) else raw
