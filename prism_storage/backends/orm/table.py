"""The ORM path's work on the ``Record`` table, through Django's own connections.

Every method is blocking and runs in the thread that holds the alias's connection (see
:func:`.thread.on_connection_thread`). Reads, deletes and the sweep are SQL written once
(:mod:`.sql`); writes are ``bulk_create`` upserts, each row at a new version. The
versioned operations (conditions, lists) are in :mod:`.locked`. None of them sends model signals
(``pre_save``/``post_save``/``pre_delete``/``post_delete``): the same rule as the fast path.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import connections, transaction
from django.db.models import Q

from ..base import KeyPage
from ..versions import new_version
from .requests import Row
from .sql import JSONText, RecordSQL, takes_json_text

__all__ = ["RecordTable", "as_datetime"]

#: A write is sent in statements of at most this many rows (SQLite allows at most 999
#: bound parameters on old builds) ...
WRITE_CHUNK_ROWS = 500
#: ... and about this much JSON: large values written a few at a time are measurably
#: faster than in one statement.
WRITE_CHUNK_BYTES = 4 * 1024 * 1024
_UPDATED = ["value", "version", "updated_at", "expires_at"]


def as_datetime(timestamp: float) -> datetime:
    """A Unix timestamp as the ``DateTimeField`` value Django expects under ``USE_TZ``."""
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    return moment if settings.USE_TZ else moment.astimezone().replace(tzinfo=None)


class RecordTable:
    """One namespace's records, on any database alias given per call."""

    def __init__(self, model: Any, namespace: str) -> None:
        self.model = model
        self.namespace = namespace
        self._sql: dict[str, RecordSQL] = {}

    def sql(self, db: str) -> RecordSQL:
        found = self._sql.get(db)
        if found is None:
            found = self._sql[db] = RecordSQL(self.model, connections[db])
        return found

    def records(self, db: str) -> Any:
        return self.model.objects.using(db).filter(namespace=self.namespace)

    def read(
        self, db: str, keys: Sequence[str], now: float, sizes: list[int] | None = None
    ) -> dict[str, Any]:
        return self.sql(db).read(connections[db], self.namespace, keys, as_datetime(now), sizes)

    def exists(self, db: str, keys: Sequence[str], now: float) -> set[str]:
        return self.sql(db).exists(connections[db], self.namespace, keys, as_datetime(now))

    def slide(self, db: str, keys: Sequence[str], now: float, expires_at: float | None) -> int:
        expiry = None if expires_at is None else as_datetime(expires_at)
        return self.sql(db).slide(connections[db], self.namespace, keys, as_datetime(now), expiry)

    def delete(self, db: str, keys: Sequence[str]) -> None:
        self.sql(db).delete(connections[db], self.namespace, keys)

    def delete_prefix(self, db: str, prefix: str) -> int | None:
        return self.sql(db).delete_prefix(connections[db], self.namespace, prefix)

    def sweep(self, db: str, now: float) -> int:
        return self.sql(db).sweep(connections[db], self.namespace, as_datetime(now))

    def keys(self, db: str, prefix: str, limit: int, cursor: str | None, now: float) -> KeyPage:
        rows = self.records(db).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=as_datetime(now))
        )
        if prefix:
            rows = rows.filter(key__startswith=prefix)
        if cursor is not None:
            rows = rows.filter(key__gt=cursor)
        keys = list(rows.order_by("key").values_list("key", flat=True)[:limit])
        next_cursor = keys[-1] if len(keys) == limit else None
        # SQLite's LIKE ignores ASCII case: keep only true prefix matches. The cursor still
        # advances past the dropped rows, so every key is visited once.
        return KeyPage([k for k in keys if k.startswith(prefix)], next_cursor)

    def write(self, db: str, rows: Sequence[Row], now_ts: float) -> None:
        model = self.model
        now = as_datetime(now_ts)
        connection = connections[db]
        features = connection.features
        as_text = takes_json_text(connection)
        # The upsert keeps ``created_at``; an expired record must count as absent instead.
        self.sql(db).delete_expired(connection, self.namespace, [row[0] for row in rows], now)

        def record(key: str, value: dict[str, Any], data: str, expiry: float | None) -> Any:
            return model(
                namespace=self.namespace,
                key=key,
                value=JSONText(data) if as_text else value,
                version=new_version(),
                created_at=now,
                updated_at=now,
                expires_at=None if expiry is None else as_datetime(expiry),
            )

        if features.supports_update_conflicts:
            # MySQL/MariaDB upsert on any unique key and take no target columns.
            unique = (
                ["namespace", "key"] if features.supports_update_conflicts_with_target else None
            )
            chunks = write_chunks(rows)
            with transaction.atomic(using=db) if len(chunks) > 1 else nullcontext():
                for chunk in chunks:
                    model.objects.using(db).bulk_create(
                        [record(*row) for row in chunk],
                        update_conflicts=True,
                        unique_fields=unique,
                        update_fields=_UPDATED,
                    )
            return
        # No upsert at all: update, else insert; QuerySet.update() and bulk_create() send
        # no signals, where update_or_create() would send the save signals.
        with transaction.atomic(using=db):
            for key, value, data, expiry in rows:
                expires_at = None if expiry is None else as_datetime(expiry)
                if (
                    not self.records(db)
                    .filter(key=key)
                    .update(
                        value=value, version=new_version(), updated_at=now, expires_at=expires_at
                    )
                ):
                    model.objects.using(db).bulk_create([record(key, value, data, expiry)])


def write_chunks(rows: Sequence[Row]) -> list[Sequence[Row]]:
    """Rows in statements of at most ``WRITE_CHUNK_ROWS`` rows and about
    ``WRITE_CHUNK_BYTES`` of JSON."""
    chunks: list[Sequence[Row]] = []
    start = size = 0
    for index, row in enumerate(rows):
        if index > start and (
            index - start >= WRITE_CHUNK_ROWS or size + len(row[2]) > WRITE_CHUNK_BYTES
        ):
            chunks.append(rows[start:index])
            start, size = index, 0
        size += len(row[2])
    if start < len(rows):
        chunks.append(rows[start:])
    return chunks
