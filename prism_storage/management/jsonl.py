"""The JSON Lines format of ``prism_export`` and ``prism_import``.

One record per line, ``{"key": "...", "value": {...}}``, UTF-8, each line ended by ``\\n``.
A store that keeps versions adds the record's metadata to its lines: ``"version"``,
``"created_at"``, ``"updated_at"`` and ``"expires_at"`` (ISO 8601 in UTC, ``expires_at``
``null`` for a record that never expires). Nothing else is allowed on a line: a blank
line, another field, a malformed timestamp or a value that is not a storable dict is a bad
line, reported with its number.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, NamedTuple

from ..backends.versions import Record
from ..codec import encode_value, validate_key
from ..exceptions import InvalidKeyError, InvalidValueError

__all__ = ["BadLine", "Line", "dump_record", "parse_record"]

_FIELDS = frozenset({"key", "value"})
_METADATA = ("version", "created_at", "updated_at", "expires_at")
_key_encoder = json.JSONEncoder(ensure_ascii=False)


class Line(NamedTuple):
    """A parsed line: the record, and when it expires (from its metadata, if any)."""

    key: str
    value: dict[str, Any]
    expires_at: datetime | None = None


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def dump_record(key: str, value: dict[str, Any], record: Record | None = None) -> str:
    """One line (with its newline) holding ``key`` and ``value``, and the metadata of
    ``record`` when given."""
    # encode_value escapes every control character, so the line holds no raw newline.
    line = f'{{"key":{_key_encoder.encode(key)},"value":{encode_value(value)}'
    if record is not None:
        metadata = {
            "version": record.version,
            "created_at": _iso(record.created_at),
            "updated_at": _iso(record.updated_at),
            "expires_at": _iso(record.expires_at),
        }
        line += "," + json.dumps(metadata, separators=(",", ":"))[1:-1]
    return line + "}\n"


def _timestamp(record: dict[str, Any], name: str, lineno: int) -> datetime | None:
    text = record.get(name)
    if text is None and name == "expires_at":
        return None
    try:
        if type(text) is not str:
            raise ValueError
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadLine(lineno, f"{name} must be an ISO 8601 date and time") from None
    if moment.tzinfo is None:
        raise BadLine(lineno, f"{name} must carry its time zone (UTC offset)")
    return moment


class BadLine(ValueError):
    """A line that is not a valid record. ``lineno`` counts from 1."""

    def __init__(self, lineno: int, reason: str) -> None:
        super().__init__(f"line {lineno}: {reason}")
        self.lineno = lineno
        self.reason = reason


def parse_record(line: str | bytes, lineno: int, max_value_bytes: int | None = None) -> Line:
    """Return the :class:`Line` of one line of text, or raise :class:`BadLine`.

    The key and value obey the same rules every store applies (``validate_key``,
    ``encode_value``); ``max_value_bytes`` adds the target store's own size limit. The
    metadata fields are optional, all or none; of them only ``expires_at`` is returned
    (an import is a new write: the store gives it a version and times of its own).
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
    extra = sorted(record.keys() - _FIELDS - set(_METADATA))
    if extra:
        raise BadLine(lineno, f"unexpected field(s) {', '.join(map(repr, extra))}")
    expires_at = _metadata(record, lineno)
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
    return Line(key, value, expires_at)


def _metadata(record: dict[str, Any], lineno: int) -> datetime | None:
    """Check the metadata fields (all or none) and return ``expires_at``."""
    present = [name for name in _METADATA if name in record]
    if not present:
        return None
    if len(present) != len(_METADATA):
        missing = ", ".join(repr(n) for n in _METADATA if n not in record)
        raise BadLine(lineno, f"record metadata without {missing}")
    if type(record["version"]) is not str or not record["version"]:
        raise BadLine(lineno, "version must be a non-empty string")
    _timestamp(record, "created_at", lineno)
    _timestamp(record, "updated_at", lineno)
    return _timestamp(record, "expires_at", lineno)
