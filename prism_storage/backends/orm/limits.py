"""What each database behind the ``orm`` store accepts, decided from its vendor alone.

The store checks a value against these limits before any I/O, so a value the database would
refuse raises :class:`~prism_storage.exceptions.InvalidValueError` rather than the driver's
error (which Django reports as an ``IntegrityError`` or, for an oversized statement, a lost
connection). The vendor is known from the settings; telling MariaDB from MySQL would take a
query, so the ``mysql`` vendor gets the stricter limit of the two.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...codec import MAX_DEPTH
from ...exceptions import InvalidValueError

__all__ = ["DatabaseLimits", "limits_for"]


@dataclass(frozen=True)
class DatabaseLimits:
    """The values one vendor's ``Record.value`` column takes."""

    #: The deepest nesting of dicts and lists.
    max_depth: int = MAX_DEPTH
    #: The largest value, in bytes of JSON as the statement carries it (with the escapes a
    #: client-side driver adds); ``None``: no limit of the store's own.
    max_statement_bytes: int | None = None

    def check_size(self, data: str) -> None:
        """Raise :class:`InvalidValueError` if the JSON text ``data`` is too large."""
        limit = self.max_statement_bytes
        # A character takes at most four bytes (an escaped one two): only a text longer
        # than a quarter of the limit can exceed it.
        if limit is None or len(data) <= limit // 4:
            return
        size = statement_bytes(data)
        if size > limit:
            raise InvalidValueError(
                f"The value takes {size} bytes in a MySQL/MariaDB statement; the orm store "
                f"sends at most {limit} (the server's default max_allowed_packet is 16 MiB).",
                "$",
            )


def statement_bytes(data: str) -> int:
    """The size of ``data`` as a quoted string literal of a MySQL statement: mysqlclient
    escapes quotes and backslashes with a backslash (JSON text has no raw control
    characters: they are escaped already)."""
    return len(data.encode()) + data.count('"') + data.count("\\") + data.count("'")


#: MariaDB's ``JSON_VALID`` (the check on Django's JSON column there) refuses 32 nested
#: levels; MySQL's JSON type takes 100. MariaDB's default ``max_allowed_packet`` is 16 MiB
#: (MySQL's 64 MiB); 64 KiB of it is left for the rest of the statement.
MYSQL = DatabaseLimits(max_depth=31, max_statement_bytes=16 * 1024 * 1024 - 64 * 1024)

_BY_VENDOR = {"mysql": MYSQL}
_NONE = DatabaseLimits()


def limits_for(vendor: str) -> DatabaseLimits:
    """The limits of a Django database ``vendor`` (``connection.vendor``)."""
    return _BY_VENDOR.get(vendor, _NONE)
