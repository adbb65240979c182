"""The JSON Lines format of ``prism_export`` and ``prism_import``.

One record per line, ``{"key": "...", "value": {...}}``, UTF-8, each line ended by ``\\n``.
Nothing else is allowed on a line: a blank line, another field or a value that is not a
storable dict is a bad line, reported with its number.
"""

from __future__ import annotations

import json
from typing import Any

from ..codec import encode_value, validate_key
from ..exceptions import InvalidKeyError, InvalidValueError

__all__ = ["BadLine", "dump_record", "parse_record"]

_FIELDS = frozenset({"key", "value"})
_key_encoder = json.JSONEncoder(ensure_ascii=False)


def dump_record(key: str, value: dict[str, Any]) -> str:
    """One line (with its newline) holding ``key`` and ``value``."""
    # encode_value escapes every control character, so the line holds no raw newline.
    return f'{{"key":{_key_encoder.encode(key)},"value":{encode_value(value)}}}\n'


class BadLine(ValueError):
    """A line that is not a valid record. ``lineno`` counts from 1."""

    def __init__(self, lineno: int, reason: str) -> None:
        super().__init__(f"line {lineno}: {reason}")
        self.lineno = lineno
        self.reason = reason


def parse_record(
    line: str | bytes, lineno: int, max_value_bytes: int | None = None
) -> tuple[str, dict[str, Any]]:
    """Return ``(key, value)`` from one line, or raise :class:`BadLine`.

    The key and value obey the same rules every store applies (``validate_key``,
    ``encode_value``); ``max_value_bytes`` adds the target store's own size limit.
    """
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadLine(lineno, f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
    if not line.strip():
        raise BadLine(lineno, "blank line (every line must hold one record)")
    try:
        record = json.loads(line)
    except ValueError as exc:
        raise BadLine(lineno, f"invalid JSON ({exc})") from None
    if type(record) is not dict:
        raise BadLine(lineno, f"not a JSON object but {type(record).__name__}")
    missing = sorted(_FIELDS - record.keys())
    if missing:
        raise BadLine(lineno, f"missing {' and '.join(map(repr, missing))}")
    extra = sorted(record.keys() - _FIELDS)
    if extra:
        raise BadLine(lineno, f"unexpected field(s) {', '.join(map(repr, extra))}")
    key, value = record["key"], record["value"]
    try:
        validate_key(key)
    except InvalidKeyError as exc:
        raise BadLine(lineno, f"invalid key: {exc}") from None
    try:
        encoded = encode_value(value)
    except InvalidValueError as exc:
        raise BadLine(lineno, f"invalid value for key {key!r}: {exc}") from None
    if max_value_bytes is not None and len(encoded.encode()) > max_value_bytes:
        raise BadLine(
            lineno,
            f"the value of {key!r} is {len(encoded.encode())} bytes as JSON; the target "
            f"store accepts at most {max_value_bytes}",
        )
    return key, value
