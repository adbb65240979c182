"""Key segments: any label as one part of a ``/``-separated prism key, reversibly.

Shared by tenant scopes (``store.scoped(...)``) and the LangGraph adapters.

A label is percent-encoded with nothing left safe but letters, digits and ``-_.``, so a
segment never holds ``/`` and a prefix ending in ``/`` matches exactly one label: the
thread ``"a"`` never lists the keys of thread ``"ab"``. ``~`` is encoded too, which frees
it to stand for the empty label (a key must not hold an empty segment on every store).
"""

from __future__ import annotations

from urllib.parse import quote, unquote

__all__ = ["EMPTY", "decode_segment", "encode_segment", "join"]

#: The segment of the empty label.
EMPTY = "~"


def encode_segment(label: str) -> str:
    if not label:
        return EMPTY
    return quote(label, safe="").replace("~", "%7E")


def decode_segment(segment: str) -> str:
    if segment == EMPTY:
        return ""
    return unquote(segment, errors="strict")


def join(*labels: str) -> str:
    """The encoded labels, each followed by ``/`` (a prefix, or a key once more is added)."""
    return "".join(encode_segment(label) + "/" for label in labels)
