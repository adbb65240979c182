"""How the ``supabase`` backend reports an HTTP error answer: the typed error that each
status and PostgREST error code stands for."""

from __future__ import annotations

from ...exceptions import (
    BackendPermissionError,
    InvalidValueError,
    PrismStorageError,
    SchemaMismatchError,
)
from ..redaction import redact
from .client import HTTPStatusError

__all__ = ["MISSING_FUNCTION", "SupabaseRequestError", "typed_error"]

#: PostgREST's code for a function it does not know (of these names and arguments).
MISSING_FUNCTION = "PGRST202"
#: PostgreSQL/PostgREST codes of a table whose columns differ from the shipped SQL.
_SCHEMA_CODES = {
    "42703",
    "PGRST204",
    "PGRST200",
    "42P10",
    "42804",
    "PGRST205",
    "42P01",
    MISSING_FUNCTION,
    "42883",
}


class SupabaseRequestError(PrismStorageError):
    """Supabase answered a request with an error no other exception describes."""


def typed_error(
    failure: HTTPStatusError, action: str, *, table: str, url: str, detail: str
) -> Exception | None:
    """The error to raise for ``failure``, Supabase's answer to a request to ``action``
    ``table`` at ``url``; ``detail`` is the failure's text with the store's secrets
    removed. ``None`` for a failure that may pass (5xx, 408, 429): the caller reports it
    as BackendUnavailableError."""
    where = f"table {table!r} at {redact(url)}"
    error: Exception
    if failure.status in (401, 403):
        error = BackendPermissionError(
            f"Supabase refused to {action} {where} ({detail}). The backend needs the "
            "service-role key, and the table's policy must allow the service_role."
        )
    elif failure.status == 404 or failure.code in _SCHEMA_CODES:
        error = SchemaMismatchError(
            f"Supabase could not {action} {where}: the table or its functions are "
            f"missing, or its columns differ from prism_storage's ({detail}). Create "
            f"or upgrade it with the SQL that `manage.py prism_supabase_sql --table "
            f"{table}` prints (safe to run again: it keeps existing rows)."
        )
    elif failure.status == 409:
        error = SchemaMismatchError(
            f"Supabase kept refusing to {action} {where} with a conflict ({detail}): "
            "the table has a constraint beyond its primary key."
        )
    elif failure.status == 413:
        error = InvalidValueError(f"The value is too large for the Supabase API ({detail}).")
    elif failure.status >= 500 or failure.status in (408, 429):
        return None
    else:
        error = SupabaseRequestError(f"Supabase could not {action} {where} ({detail}).")
    error.__cause__ = HTTPStatusError(failure.status, {"message": detail, "code": failure.code})
    return error
