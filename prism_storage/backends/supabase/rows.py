"""Reading the rows PostgREST answers: a record's value, and the record with its
metadata (version, times, expiry)."""

from __future__ import annotations

from typing import Any

from ...exceptions import CorruptRecordError
from ..versions import Record
from .queries import parse_timestamp

__all__ = ["RECORD_COLUMNS", "row_record", "row_value"]

#: The columns of a record with its metadata.
RECORD_COLUMNS = "key,data,version,created_at,updated_at,expires_at"


def row_value(row: dict[str, Any], table: str) -> dict[str, Any]:
    """The value a row of ``table`` holds, or CorruptRecordError."""
    data = row.get("data")
    if not isinstance(data, dict):
        raise CorruptRecordError(
            f"The row {row.get('key')!r} of table {table!r} holds "
            f"{type(data).__name__}, not a JSON object."
        )
    return data


def row_record(row: dict[str, Any], table: str, prefix: str) -> Record:
    """The record a row of ``table`` (read with :data:`RECORD_COLUMNS`) holds, keyed
    without the store's namespace ``prefix``."""
    version = row.get("version")
    if not isinstance(version, str):
        raise CorruptRecordError(f"The row {row.get('key')!r} of table {table!r} has no version.")
    return Record(
        key=row["key"][len(prefix) :],
        value=row_value(row, table),
        version=version,
        created_at=parse_timestamp(row["created_at"]),
        updated_at=parse_timestamp(row["updated_at"]),
        expires_at=None if row.get("expires_at") is None else parse_timestamp(row["expires_at"]),
    )
