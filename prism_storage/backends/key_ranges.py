"""Key ranges: the keys starting with a prefix are those from the prefix up to (not
including) :func:`prefix_end`, in code point order."""

from __future__ import annotations

__all__ = ["prefix_end"]


def prefix_end(prefix: str) -> str | None:
    """The least string above every string starting with ``prefix`` in code point order
    (``None``: there is none). Keys hold no surrogates, so U+D7FF is followed by U+E000."""
    chars = list(prefix)
    while chars:
        code = ord(chars.pop()) + 1
        if 0xD800 <= code <= 0xDFFF:
            code = 0xE000
        if code <= 0x10FFFF:
            return "".join(chars) + chr(code)
    return None
