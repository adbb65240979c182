"""The keys and values every store is tried with: valid ones that must round-trip, invalid
ones that must be refused with the typed error (and the item the error must point at)."""

from __future__ import annotations

import math
from typing import Any

from ...codec import MAX_KEY_LENGTH

__all__ = [
    "AGENT_RECORD",
    "HOSTILE_KEYS",
    "INVALID_KEYS",
    "INVALID_VALUES",
    "ROUND_TRIP_VALUES",
    "nested_value",
]

#: Valid keys that must round-trip exactly and never name a path outside the store.
HOSTILE_KEYS = [
    "agent_1",
    "a",
    "A",
    "user/42/thread/7",
    "../../etc/passwd",
    "/etc/passwd",
    "..",
    ".",
    "...",
    ".hidden",
    "C:\\Windows\\System32",
    "\\\\server\\share",
    "with space",
    " leading and trailing ",
    "100%",
    "%2e%2e%2f",
    "under_score",
    "star*",
    "question?",
    "[brackets]",
    "{hash}tag",
    "a:b:c",
    "quote'\"`",
    "semi;colon--",
    "' OR 1=1 --",
    "emoji-🤖-agent",
    "日本語のキー",
    "ÅNGSTRÖM",
    "ångström",
    "CON",
    "nul",
    "com1.txt",
    "LPT9",
    "tab\u00a0nbsp",
    "zero\u200bwidth",
    "rtl\u202eoverride",
    "x" * MAX_KEY_LENGTH,
    "🤖" * MAX_KEY_LENGTH,
    "k" + "_" * 300,
]

#: Values that are not keys: (description, key).
INVALID_KEYS: list[tuple[str, Any]] = [
    ("empty", ""),
    ("too long", "x" * (MAX_KEY_LENGTH + 1)),
    ("NUL", "a\x00b"),
    ("newline", "a\nb"),
    ("tab", "a\tb"),
    ("DEL", "a\x7fb"),
    ("C1 control", "a\x85b"),
    ("lone surrogate", "a\ud800b"),
    ("int", 42),
    ("None", None),
    ("bytes", b"agent"),
    ("list", ["agent"]),
]


class _Opaque:
    """An object that is no JSON type."""


#: Values that must be refused: (description, value, path of the offending item).
INVALID_VALUES: list[tuple[str, Any, str]] = [
    ("list", [1, 2], "$"),
    ("str", "hello", "$"),
    ("None", None, "$"),
    ("int", 3, "$"),
    ("NaN", {"score": math.nan}, "$['score']"),
    ("infinity", {"a": [1, {"b": math.inf}]}, "$['a'][1]['b']"),
    ("set", {"tags": {"a", "b"}}, "$['tags']"),
    ("tuple", {"pair": (1, 2)}, "$['pair']"),
    ("bytes", {"blob": b"\x00\x01"}, "$['blob']"),
    ("object", {"o": _Opaque()}, "$['o']"),
    ("int dict key", {"counts": {1: "one"}}, "$['counts']"),
    ("NUL in string", {"text": "a\x00b"}, "$['text']"),
    ("NUL among escaped characters", {"text": 'line\n"quoted"\\ \x00'}, "$['text']"),
    ("lone surrogate", {"text": "a\udc80b"}, "$['text']"),
    ("lone surrogate in a dict key", {"meta": {"\ud800": 1}}, "$['meta']"),
]


def nested_value(depth: int) -> dict[str, Any]:
    """A dict nested ``depth`` levels deep (``depth + 1`` dicts in all)."""
    value: dict[str, Any] = {"leaf": True}
    for level in range(depth):
        value = {"level": level, "child": value}
    return value


AGENT_RECORD: dict[str, Any] = {
    "messages": [
        {"role": "system", "content": "You are a helpful agent."},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi! How can I help?", "tool_calls": []},
    ],
    "state": {"step": 3, "done": False, "score": 0.75, "notes": None},
}

ROUND_TRIP_VALUES: list[tuple[str, dict[str, Any]]] = [
    ("agent record", AGENT_RECORD),
    ("empty", {}),
    ("empty containers", {"d": {}, "l": [], "s": "", "nested": [[], [{}], {"x": []}]}),
    (
        "unicode",
        {"text": "héllo wörld — 日本語 — 🤖🧠", "rtl": "שלום", "escapes": '"\\/\b\f\n\r\t'},
    ),
    ("big ints", {"big": 2**100, "neg": -(2**70), "max64": 2**63 - 1, "zero": 0}),
    ("floats", {"pi": math.pi, "tiny": 5e-324, "neg": -0.5, "small": 1e-7, "third": 1 / 3}),
    ("bools and null", {"t": True, "f": False, "n": None, "list": [True, None, 0, ""]}),
    ("key-like strings", {"../x": 1, "": "empty key", "a.b": {"c/d": 2}, "%_*": 3}),
    ("escape spelled out, no NUL", {"path": "C:\\u0000\\dir"}),
]
