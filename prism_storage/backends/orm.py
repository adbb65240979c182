"""``orm``: records in the app's ``Record`` model (a ``JSONField``), on any Django database.

Django's ORM is synchronous; each call runs through ``asgiref.sync.sync_to_async`` with
``thread_sensitive=True``, as Django's own async ORM methods do, so the ORM keeps the
one-connection-per-thread discipline it was built for.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connections, router
from django.db.models import Q

from ..exceptions import InvalidOptionError
from .base import BaseStorageBackend, Clock, KeyPage, check_ttl

__all__ = ["ORMStorageBackend"]

T = TypeVar("T")
# SQLite allows at most 999 bound parameters on old builds; stay under it per statement.
_CHUNK = 500


class ORMStorageBackend(BaseStorageBackend):
    """Stores records in the ``prism_storage.Record`` model.

    :param namespace: the logical store; stores with different namespaces never see each
        other's records. Defaults to the ``PRISM_STORAGE`` alias (``"default"`` when the
        backend is built by hand).
    :param using: the database alias (default: the router's choice for ``Record``).
    :param ttl: default expiry in seconds; ``None`` never expires.
    :param clock: returns the current time as a Unix timestamp (injectable for tests).
    """

    backend_name = "orm"
    supports_ttl = True
    ttl_uses_clock = True
    supports_listing = True
    supports_sweep = True
    native_batch = True

    def __init__(
        self,
        namespace: str | None = None,
        *,
        using: str | None = None,
        ttl: float | None = None,
        clock: Clock = time.time,
    ) -> None:
        if namespace is not None and (not isinstance(namespace, str) or not namespace
                                      or len(namespace) > 255):
            raise InvalidOptionError("namespace must be a non-empty str of at most 255 chars.")
        if using is not None and not isinstance(using, str):
            raise InvalidOptionError("using must be a database alias (str).")
        self._namespace = namespace
        self.using = using
        self.default_ttl = None if ttl is None else check_ttl(ttl)
        self.clock = clock

    @property
    def namespace(self) -> str:
        return self._namespace or self.alias or "default"

    def describe(self) -> str:
        return f"namespace={self.namespace!r} database={self._db_alias()!r}"

    def check(self) -> list[Any]:
        from django.core.checks import Error

        if self.using is not None and self.using not in settings.DATABASES:
            return [
                Error(
                    f"using={self.using!r} is not a database in DATABASES.",
                    id="prism_storage.E009",
                )
            ]
        return []

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _model() -> Any:
        from ..models import Record

        return Record

    def _db_alias(self) -> str:
        return self.using or router.db_for_write(self._model())

    def _now(self) -> datetime:
        return self._datetime(self.clock())

    @staticmethod
    def _datetime(timestamp: float) -> datetime:
        moment = datetime.fromtimestamp(timestamp, tz=UTC)
        return moment if settings.USE_TZ else moment.astimezone().replace(tzinfo=None)

    def _records(self) -> Any:
        return self._model().objects.using(self._db_alias()).filter(namespace=self.namespace)

    def _alive(self, now: datetime) -> Q:
        return Q(expires_at__isnull=True) | Q(expires_at__gt=now)

    async def _run(self, action: str, function: Callable[..., T], *args: Any) -> T:
        try:
            return await sync_to_async(function, thread_sensitive=True)(*args)
        except (OperationalError, InterfaceError) as exc:
            error = self._unavailable(exc, action)
            raise error from error.__cause__

    # ------------------------------------------------------------------ sync core

    def _get_sync(self, key: str) -> dict[str, Any] | None:
        rows = list(
            self._records().filter(self._alive(self._now()), key=key)
            .values_list("value", flat=True)[:1]
        )
        return rows[0] if rows else None

    def _upsert_sync(self, items: list[tuple[str, dict[str, Any]]], ttl: float | None) -> None:
        model = self._model()
        now_ts = self.clock()
        now = self._datetime(now_ts)
        expires_at = None if ttl is None else self._datetime(now_ts + ttl)
        db = self._db_alias()
        if connections[db].features.supports_update_conflicts_with_target:
            for start in range(0, len(items), _CHUNK):
                model.objects.using(db).bulk_create(
                    [
                        model(namespace=self.namespace, key=key, value=value,
                              created_at=now, updated_at=now, expires_at=expires_at)
                        for key, value in items[start:start + _CHUNK]
                    ],
                    update_conflicts=True,
                    unique_fields=["namespace", "key"],
                    update_fields=["value", "updated_at", "expires_at"],
                )
            return
        for key, value in items:  # databases without INSERT ... ON CONFLICT
            model.objects.using(db).update_or_create(
                namespace=self.namespace, key=key,
                defaults={"value": value, "updated_at": now, "expires_at": expires_at},
                create_defaults={"value": value, "created_at": now, "updated_at": now,
                                 "expires_at": expires_at},
            )

    def _get_many_sync(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        alive = self._alive(self._now())
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(keys), _CHUNK):
            found.update(
                self._records().filter(alive, key__in=keys[start:start + _CHUNK])
                .values_list("key", "value")
            )
        return found

    def _delete_many_sync(self, keys: list[str]) -> None:
        for start in range(0, len(keys), _CHUNK):
            self._records().filter(key__in=keys[start:start + _CHUNK]).delete()

    def _keys_sync(self, prefix: str, limit: int, cursor: str | None) -> KeyPage:
        rows = self._records().filter(self._alive(self._now()))
        if prefix:
            rows = rows.filter(key__startswith=prefix)
        if cursor is not None:
            rows = rows.filter(key__gt=cursor)
        keys = list(rows.order_by("key").values_list("key", flat=True)[:limit])
        next_cursor = keys[-1] if len(keys) == limit else None
        # SQLite's LIKE ignores ASCII case: keep only true prefix matches. The cursor still
        # advances past the dropped rows, so every key is visited once.
        return KeyPage([k for k in keys if k.startswith(prefix)], next_cursor)

    def _sweep_sync(self) -> int:
        expired = self._records().filter(expires_at__lte=self._now())
        return int(expired.delete()[0])

    # ------------------------------------------------------------------ async API

    async def _get(self, key: str) -> dict[str, Any] | None:
        return await self._run("read", self._get_sync, key)

    async def _set(self, key: str, value: dict[str, Any], data: str, ttl: float | None) -> None:
        await self._run("write", self._upsert_sync, [(key, value)], ttl)

    async def _delete(self, key: str) -> None:
        await self._run("delete", self._delete_many_sync, [key])

    async def _exists(self, key: str) -> bool:
        def exists() -> bool:
            return bool(self._records().filter(self._alive(self._now()), key=key).exists())

        return await self._run("read", exists)

    async def _get_many(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        return await self._run("read", self._get_many_sync, keys)

    async def _set_many(
        self, items: list[tuple[str, dict[str, Any], str]], ttl: float | None
    ) -> None:
        await self._run("write", self._upsert_sync, [(k, v) for k, v, _ in items], ttl)

    async def _delete_many(self, keys: list[str]) -> None:
        await self._run("delete", self._delete_many_sync, keys)

    async def _keys(self, prefix: str, limit: int, cursor: str | None) -> KeyPage:
        return await self._run("list keys", self._keys_sync, prefix, limit, cursor)

    async def sweep(self) -> int:
        return await self._run("sweep", self._sweep_sync)

    async def ping(self) -> None:
        def probe() -> None:
            connection = connections[self._db_alias()]
            connection.ensure_connection()
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")

        try:
            await self._run("connect", probe)
        except DatabaseError as exc:
            error = self._unavailable(exc, "connect")
            raise error from error.__cause__
