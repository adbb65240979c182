"""The file store's file names: a record's key <-> the name of its file.

File names are derived from the key so that no key can name a path outside ``data_dir``
and keys differing only in case never share a file on a case-insensitive filesystem:
``[a-z0-9-]`` stay as they are, every other UTF-8 byte becomes ``_xx``, and the name is
``k<encoded>.json``. A key whose encoding would be too long for a file name is stored
under ``h<SHA-256 of the key>.json`` (its key is then read from the file).
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["SUFFIX", "file_name", "is_hashed_name", "key_from_name"]

SUFFIX = ".json"
_SAFE = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789-")
_ESCAPED = {b: (chr(b) if b in _SAFE else f"_{b:02x}") for b in range(256)}
_UNESCAPE = re.compile(r"_([0-9a-f]{2})")
_NAME_LIMIT = 240  # file names may be 255 bytes; leave room for the prefix and suffix


def file_name(key: str) -> str:
    """The name of the file holding ``key``'s record."""
    encoded = "".join([_ESCAPED[b] for b in key.encode("utf-8")])
    if len(encoded) <= _NAME_LIMIT:
        return f"k{encoded}{SUFFIX}"
    return f"h{hashlib.sha256(key.encode('utf-8')).hexdigest()}{SUFFIX}"


def key_from_name(name: str) -> str | None:
    """The key a direct file name encodes; ``None`` for hashed or foreign names."""
    if not (name.startswith("k") and name.endswith(SUFFIX)):
        return None
    body = name[1 : -len(SUFFIX)]
    try:
        raw = _UNESCAPE.sub(lambda m: chr(int(m.group(1), 16)), body).encode("latin-1")
        key = raw.decode("utf-8")
    except (UnicodeError, ValueError):
        return None
    return key if file_name(key) == name else None


def is_hashed_name(name: str) -> bool:
    """Whether ``name`` may be the hashed file name of a long key."""
    return name.startswith("h") and name.endswith(SUFFIX)
