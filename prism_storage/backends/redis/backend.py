"""``redis``: records as JSON strings in Redis or a Redis Cluster, through ``redis.asyncio``.

Each record is one Redis string, a metadata header then the JSON (see :mod:`.stored`);
writes and metadata reads run Lua scripts (see :mod:`.records`); ``get`` and ``get_many``
are plain ``GET`` and ``MGET``.

Key layout: the record ``key`` of a store with prefix ``prefix`` lives at the Redis key
``prefix + "\\x1f" + key``. Neither keys nor prefixes may contain control characters, so
the first ``\\x1f`` (ASCII unit separator) always marks where the prefix ends: stores whose
prefixes are string-prefixes of each other (``prism:`` and ``prism:x:``) can never share a
Redis key, and a listing matches exactly its own store's keys.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from ...codec import validate_key
from ...exceptions import (
    BackendPermissionError,
    BackendUnavailableError,
    CorruptRecordError,
    InvalidKeyError,
    InvalidOptionError,
)
from ..base import DEFAULT_TIMEOUT, BaseStorageBackend, KeyPage, check_touch_on_read, check_ttl
from ..clients import LoopBoundClients
from .client import BoundClient, bind_client, client_errors, close_client
from .connection_url import URL_FORMS, parse_redis_url
from .erasure import PrefixErasure
from .index import IndexListing, build_index, has_hash_tag
from .listing import KeyListing
from .records import PIPELINE_VALUE_BYTES, ScriptedRecords
from .scripts import DELETE
from .stored import json_text

__all__ = ["INDEX_SUFFIX", "SEPARATOR", "RedisStorageBackend"]

T = TypeVar("T")

#: Between the store's prefix and the record key in every Redis key.
SEPARATOR = "\x1f"
#: After the store's prefix in the name of its key index (a sorted set, see .index).
INDEX_SUFFIX = "\x1ekeys"


class RedisStorageBackend(ScriptedRecords, PrefixErasure, BaseStorageBackend):
    """Stores each record as a JSON string in Redis (standalone server or Redis Cluster).

    :param url: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` (TLS),
        ``unix:///path.sock``, or ``redis+cluster://`` / ``rediss+cluster://`` (a Redis
        Cluster, any node as the seed). Query-string options go to redis-py.
    :param prefix: every Redis key of the store starts with it (no control characters).
    :param ttl: default expiry in seconds for every write (millisecond precision);
        ``None`` never expires.
    :param timeout: seconds any call may take, connecting included, before it raises
        BackendUnavailableError.
    :param cluster: use the Redis Cluster client even for a ``redis://`` URL.
    :param max_connections: the connection pool size per event loop (per node for a
        cluster); ``None`` is redis-py's default.
    :param touch_on_read: every read resets the expiry of the records it returns to now +
        ``ttl`` (needs ``ttl``): ``GETEX`` instead of ``GET``, in the same round trip.
    """

    backend_name = "redis"
    supports_ttl = True
    ttl_uses_clock = False
    supports_listing = True
    native_batch = True
    supports_versions = True
    supports_conditional_writes = True
    supports_atomic_lists = True
    #: Redis strings hold at most 512 MiB.
    max_value_bytes = 512 * 1024 * 1024
    requires = (("redis", "redis"),)

    def __init__(
        self,
        url: str,
        prefix: str = "prism:",
        ttl: float | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        cluster: bool = False,
        max_connections: int | None = None,
        touch_on_read: bool = False,
        alias: str | None = None,
    ) -> None:
        super().__init__(alias=alias)
        if not isinstance(url, str) or not url:
            raise InvalidOptionError(
                "url must be a Redis URL string, e.g. redis://localhost:6379/0."
            )
        if not isinstance(prefix, str):
            raise InvalidOptionError("prefix must be a str.")
        if prefix:
            try:
                validate_key(prefix)
            except InvalidKeyError as exc:
                raise InvalidOptionError(f"prefix is not usable: {exc}") from exc
        if type(timeout) not in (int, float) or not math.isfinite(timeout) or timeout <= 0:
            raise InvalidOptionError(
                f"timeout must be a positive number of seconds, not {timeout!r}."
            )
        if not isinstance(cluster, bool):
            raise InvalidOptionError("cluster must be True or False.")
        if max_connections is not None and (
            type(max_connections) is not int or max_connections < 1
        ):
            raise InvalidOptionError("max_connections must be a positive int or None.")
        self.prefix = prefix
        self.default_ttl = None if ttl is None else check_ttl(ttl)
        self.touch_on_read = check_touch_on_read(touch_on_read, self.default_ttl)
        # touch_on_read: reads are GETEX with this PX (ms), which slides the expiry.
        self._read_command: tuple[Any, ...] = (
            ("GETEX", "PX", max(1, round(self.default_ttl * 1000)))
            if self.touch_on_read and self.default_ttl is not None
            else ("GET",)
        )
        self.timeout = float(timeout)
        self.max_connections = max_connections
        self._url = parse_redis_url(url, cluster=cluster)
        self.cluster = self._url.cluster
        self._key_prefix = prefix + SEPARATOR
        self._index_key = prefix + INDEX_SUFFIX
        # The key index must share a hash slot with every record: always so on a single
        # server; on a cluster only when the prefix holds a hash tag.
        self._indexed = not self.cluster or has_hash_tag(prefix)
        self._read_size = -1.0  # of the records recent reads returned, in bytes
        self._expiry_times = True  # until the server refuses PEXPIRETIME (Redis < 7.0)
        self._clients: LoopBoundClients[BoundClient] = LoopBoundClients(
            self._bind_client, close_client
        )

    # ------------------------------------------------------------- configuration

    def describe(self) -> str:
        kind = " cluster" if self.cluster else ""
        return f"url={self._url.redacted!r} prefix={self.prefix!r}{kind}"

    def check(self) -> list[Any]:
        from django.core.checks import Error, Warning

        messages: list[Any] = []
        if self._url.problem is not None:
            messages.append(
                Error(
                    f"url {self._url.redacted!r} is not a usable Redis URL: {self._url.problem}.",
                    hint=f"Use one of: {URL_FORMS}.",
                    id="prism_storage.E101",
                )
            )
        if self._url.insecure_tls:
            messages.append(
                Warning(
                    "url turns off TLS certificate verification (ssl_cert_reqs).",
                    hint="Give the server's CA with ssl_ca_certs=... instead.",
                    id="prism_storage.W101",
                )
            )
        return messages

    def _secrets(self) -> list[str]:
        return list(self._url.secrets)

    def _bind_client(self) -> BoundClient:
        return bind_client(self._url, timeout=self.timeout, max_connections=self.max_connections)

    # ------------------------------------------------------------------ helpers

    async def _command(self, action: str, *command: Any, alone: bool = False) -> Any:
        """Send one single-key command (pipelined with those of concurrent callers)."""
        pipeliner = self._clients.get().pipeliner
        if pipeliner is None:
            return await self._run(action, lambda client: client.execute_command(*command))
        # Not through _guard: the pipeliner bounds each command by ``timeout`` itself, and
        # this is the hot path (no extra coroutine per command).
        try:
            return await pipeliner.call(*command, alone=alone)
        except Exception as exc:
            error = self._error_for(exc, action)
            if error is None:
                raise
        raise error from error.__cause__

    async def _run(self, action: str, operation: Callable[[Any], Awaitable[T]]) -> T:
        """Run ``operation(client)`` on this loop's client within ``timeout``; failures
        become typed errors (see :meth:`_translate_error`)."""
        client = self._clients.get().client
        return await self._guard(action, self._operate(client, operation))

    async def _operate(self, client: Any, operation: Callable[[Any], Awaitable[T]]) -> T:
        if self.cluster:
            # Learn the slot map before any command: commands racing the first
            # initialisation break each other's connections (redis-py 8.1).
            await client.initialize()
        return await operation(client)

    def _translate_error(self, exc: Exception, action: str) -> Exception | None:
        """Refused credentials or command -> BackendPermissionError; a non-string value at
        our key -> CorruptRecordError; unreachable, timed out or refusing service ->
        BackendUnavailableError. Secrets are scrubbed from each."""
        errors = client_errors()
        if isinstance(exc, errors.no_script):
            return None  # _eval loads the script and runs it again
        if isinstance(exc, errors.denied):
            detail = self._redact(str(exc))
            return self._caused_by(
                BackendPermissionError(
                    f"The 'redis' store refused the credentials or the command ({action}): {detail}"
                ),
                exc,
            )
        if isinstance(exc, errors.response) and str(exc).startswith("WRONGTYPE"):
            error = CorruptRecordError(
                f"A Redis key of the redis store (prefix {self.prefix!r}) holds a value "
                "that is not a string."
            )
            error.__cause__ = exc
            return error
        if isinstance(exc, errors.response) and "PRISM-CORRUPT" in str(exc):
            error = CorruptRecordError(
                f"A record of the redis store (prefix {self.prefix!r}) is not a JSON object."
            )
            error.__cause__ = exc
            return error
        if isinstance(exc, errors.unavailable):
            return self._unavailable(exc, action)
        return super()._translate_error(exc, action)

    def _load(self, key: str, data: bytes | memoryview) -> dict[str, Any]:
        try:
            # decode_value reads any buffer; a memoryview spares copying the JSON out of
            # the stored string.
            return self._decode(cast(bytes, data))
        except ValueError as exc:
            raise CorruptRecordError(
                f"The redis record {key!r} (prefix {self.prefix!r}) is not a JSON object."
            ) from exc

    # ------------------------------------------------------------------ hooks

    async def _get(self, key: str) -> dict[str, Any] | None:
        # Replies of recent reads large: this read goes on its own connection, so that its
        # caller decodes it while the server still sends the others' (as separate calls do).
        alone = self._read_size > PIPELINE_VALUE_BYTES
        command, *sliding = self._read_command
        data = await self._command("read", command, self._key_prefix + key, *sliding, alone=alone)
        if data is None:
            return None
        size = self._read_size  # a moving average, from the first read's size
        self._read_size = size + (len(data) - size) / 8 if size >= 0 else float(len(data))
        return self._load(key, json_text(data))

    async def _delete(self, key: str) -> None:
        await self._delete_key(key)

    async def _exists(self, key: str) -> bool:
        return bool(await self._command("read", "EXISTS", self._key_prefix + key))

    async def _get_many(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        names = [self._key_prefix + k for k in keys]
        if self.touch_on_read:
            values = await self._run("read", lambda client: self._read_sliding(client, names))
        elif self.cluster:
            values = await self._run("read", lambda client: client.mget_nonatomic(names))
        else:
            values = await self._run("read", lambda client: client.execute_command("MGET", *names))
        return {
            k: self._load(k, json_text(v))
            for k, v in zip(keys, values, strict=True)
            if v is not None
        }

    async def _read_sliding(self, client: Any, names: list[str]) -> list[Any]:
        """``touch_on_read``'s ``get_many``: one GETEX per key, in one pipeline (per node
        on a cluster). Not atomic across keys, as MGET on a cluster is not either."""
        command, *sliding = self._read_command
        pipe = client.pipeline(transaction=False)
        for name in names:
            pipe.execute_command(command, name, *sliding)
        return list(await pipe.execute())

    async def _delete_many(self, keys: list[str]) -> None:
        names = [self._key_prefix + k for k in keys]
        if self.cluster and not self._indexed:
            # The cluster client splits a multi-key DEL by hash slot itself.
            await self._run("delete", lambda client: client.delete(*names))
            return
        if self.cluster:
            # One slot: a pipeline of delete scripts, each key out with its index entry.
            await self._eval_many("delete", DELETE, [(key, ()) for key in keys])
            return

        async def delete(client: Any) -> None:
            # The keys and their index entries at once (see DELETE).
            pipe = client.pipeline(transaction=True)
            pipe.execute_command("DEL", *names)
            pipe.execute_command("ZREM", self._index_key, *keys)
            await pipe.execute()

        await self._run("delete", delete)

    async def ping(self) -> None:
        await self._run("answer PING", lambda client: client.ping())

    async def close(self) -> None:
        await self._clients.close_all()

    # ------------------------------------------------------------------ listing

    async def _keys(self, prefix: str, limit: int, cursor: str | None) -> KeyPage:
        if not self._indexed:
            listing = KeyListing(self._key_prefix, prefix, limit, cursor, cluster=True)
            return await self._run("list keys", listing.page)
        indexed = IndexListing(self._key_prefix, self._index_key, prefix, limit, cursor)
        page = await self._run("list keys", indexed.page)
        if page is None:  # no complete index yet: build it from the keys there are
            await build_index(indexed, self._run, cluster=self.cluster)
            page = await self._run("list keys", indexed.page)
            if page is None:
                raise BackendUnavailableError(
                    f"The key index of the redis store (prefix {self.prefix!r}) vanished "
                    "as soon as it was built (is the server evicting keys?)."
                )
        return page
