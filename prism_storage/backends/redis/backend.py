"""``redis``: records as JSON strings in Redis or a Redis Cluster, through ``redis.asyncio``.

Each record is one Redis string, a metadata header then the JSON (see :mod:`.stored`);
every write is one Lua script on its key (see :mod:`.scripts`), reads are plain ``GET``
and ``MGET``.

Key layout: the record ``key`` of a store with prefix ``prefix`` lives at the Redis key
``prefix + "\\x1f" + key``. Neither keys nor prefixes may contain control characters, so
the first ``\\x1f`` (ASCII unit separator) always marks where the prefix ends: stores whose
prefixes are string-prefixes of each other (``prism:`` and ``prism:x:``) can never share a
Redis key, and a listing matches exactly its own store's keys.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar, cast

from ...codec import validate_key
from ...exceptions import (
    BackendPermissionError,
    CorruptRecordError,
    InvalidKeyError,
    InvalidOptionError,
    InvalidValueError,
)
from ..base import DEFAULT_TIMEOUT, BaseStorageBackend, KeyPage, check_ttl
from ..clients import LoopBoundClients
from ..versions import ABSENT, Condition, Record, WriteResult, check_condition, new_version
from ..versions import timestamp as utc
from .client import BoundClient, bind_client, client_errors, close_client
from .connection_url import URL_FORMS, parse_redis_url
from .listing import KeyListing
from .scripts import APPEND, POP, PUT, READ, REMOVE, STAMP, Script
from .stored import json_text, split

__all__ = ["SEPARATOR", "RedisStorageBackend"]

T = TypeVar("T")

#: Between the store's prefix and the record key in every Redis key.
SEPARATOR = "\x1f"
#: A SET of a value larger than this (JSON characters) is not pipelined, nor GETs while the
#: records recent reads returned are larger on average.
_PIPELINE_VALUE_BYTES = 64 * 1024


class RedisStorageBackend(BaseStorageBackend):
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
        self.timeout = float(timeout)
        self.max_connections = max_connections
        self._url = parse_redis_url(url, cluster=cluster)
        self.cluster = self._url.cluster
        self._key_prefix = prefix + SEPARATOR
        self._read_size = -1.0  # of the records recent reads returned, in bytes
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

    async def _eval(
        self, action: str, script: Script, key: str, *args: Any, alone: bool = False
    ) -> Any:
        """Run ``script`` on the record ``key`` (pipelined like any single-key command)."""
        command = ("EVALSHA", script.sha, 1, self._key_prefix + key, *args)
        try:
            return await self._command(action, *command, alone=alone)
        except client_errors().no_script:
            pass  # the server restarted or flushed its scripts: load it, once
        await self._run(
            action, lambda client: client.execute_command("SCRIPT", "LOAD", script.body)
        )
        return await self._command(action, *command, alone=alone)

    async def _eval_many(
        self,
        action: str,
        script: Script,
        calls: Sequence[tuple[str, tuple[Any, ...]]],
    ) -> list[Any]:
        """Run ``script`` once per ``(record key, arguments)`` in one pipeline; the
        replies."""
        prefix = self._key_prefix
        no_script = client_errors().no_script

        def pipeline(client: Any, indexes: list[int]) -> Any:
            pipe = client.pipeline(transaction=False)
            if not self.cluster:
                # First on the connection: every EVALSHA after it finds the script.
                pipe.execute_command("SCRIPT", "LOAD", script.body)
            for index in indexes:
                key, args = calls[index]
                pipe.execute_command("EVALSHA", script.sha, 1, prefix + key, *args)
            return pipe

        async def run(client: Any) -> list[Any]:
            indexes = list(range(len(calls)))
            skip = 0 if self.cluster else 1  # the SCRIPT LOAD's reply
            replies = (await pipeline(client, indexes).execute(raise_on_error=False))[skip:]
            # A cluster node that restarted does not know the script: load it on every
            # primary and run again what it refused.
            missing = [
                i for i, reply in zip(indexes, replies, strict=True) if isinstance(reply, no_script)
            ]
            if missing:
                await client.execute_command("SCRIPT", "LOAD", script.body)
                again = (await pipeline(client, missing).execute(raise_on_error=False))[skip:]
                for index, reply in zip(missing, again, strict=True):
                    replies[index] = reply
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
            return list(replies)

        return await self._run(action, run)

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
        alone = self._read_size > _PIPELINE_VALUE_BYTES
        data = await self._command("read", "GET", self._key_prefix + key, alone=alone)
        if data is None:
            return None
        size = self._read_size  # a moving average, from the first read's size
        self._read_size = size + (len(data) - size) / 8 if size >= 0 else float(len(data))
        return self._load(key, json_text(data))

    async def _set(self, key: str, value: dict[str, Any], data: str, ttl: float | None) -> None:
        await self._write(key, data, ttl, None, new_version())

    async def _write(
        self, key: str, data: str, ttl: float | None, condition: Condition, version: str
    ) -> tuple[int, Any]:
        """Store ``data`` at ``version`` if ``condition`` holds: ``(1, created)``, or
        ``(0, current version)``."""
        if condition is None and len(data) > _PIPELINE_VALUE_BYTES and not self.cluster:
            # A large value goes as a plain APPEND after a script that writes the header
            # (see STAMP), in one MULTI/EXEC: never through Lua.
            name = self._key_prefix + key

            async def write(client: Any) -> Any:
                pipe = client.pipeline(transaction=True)
                pipe.execute_command("SCRIPT", "LOAD", STAMP.body)
                pipe.execute_command("EVALSHA", STAMP.sha, 1, name, version, _now(), _px(ttl))
                pipe.execute_command("APPEND", name, data)
                return (await pipe.execute())[1]

            return 1, await self._run("write", write)
        done, detail = await self._eval(
            "write",
            PUT,
            key,
            data,
            version,
            _now(),
            *_put_arguments(ttl, condition),
            alone=len(data) > _PIPELINE_VALUE_BYTES,
        )
        return done, detail

    async def _delete(self, key: str) -> None:
        await self._command("delete", "DEL", self._key_prefix + key)

    async def _exists(self, key: str) -> bool:
        return bool(await self._command("read", "EXISTS", self._key_prefix + key))

    async def _get_many(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        names = [self._key_prefix + k for k in keys]
        if self.cluster:
            values = await self._run("read", lambda client: client.mget_nonatomic(names))
        else:
            values = await self._run("read", lambda client: client.execute_command("MGET", *names))
        return {
            k: self._load(k, json_text(v))
            for k, v in zip(keys, values, strict=True)
            if v is not None
        }

    async def _set_many(
        self, items: list[tuple[str, dict[str, Any], str]], ttl: float | None
    ) -> None:
        if self.cluster:
            # A pipeline that sends each node its share (no cross-slot command).
            arguments = _put_arguments(ttl, None)
            now = _now()
            calls = [(k, (data, new_version(), now, *arguments)) for k, _v, data in items]
            await self._eval_many("write", PUT, calls)
            return
        prefix, px, now = self._key_prefix, _px(ttl), _now()

        async def write(client: Any) -> None:
            # One MULTI/EXEC, so the batch is applied all at once; each record is written
            # as STAMP + APPEND (see _write), so no value goes through Lua.
            pipe = client.pipeline(transaction=True)
            pipe.execute_command("SCRIPT", "LOAD", STAMP.body)
            for key, _value, data in items:
                pipe.execute_command("EVALSHA", STAMP.sha, 1, prefix + key, new_version(), now, px)
                pipe.execute_command("APPEND", prefix + key, data)
            await pipe.execute()

        await self._run("write", write)

    async def _delete_many(self, keys: list[str]) -> None:
        names = [self._key_prefix + k for k in keys]
        # The cluster client splits a multi-key DEL by hash slot itself.
        await self._run("delete", lambda client: client.delete(*names))

    async def ping(self) -> None:
        await self._run("answer PING", lambda client: client.ping())

    async def close(self) -> None:
        await self._clients.close_all()

    # ------------------------------------------------------------------ listing

    async def _keys(self, prefix: str, limit: int, cursor: str | None) -> KeyPage:
        listing = KeyListing(self._key_prefix, prefix, limit, cursor, cluster=self.cluster)
        return await self._run("list keys", listing.page)

    # ---------------------------------------------------------- versioned records

    def _record(self, key: str, reply: list[Any]) -> Record:
        raw, pttl, seconds, microseconds = reply
        stored = split(raw)
        now_ms = int(seconds) * 1000 + int(microseconds) // 1000
        return Record(
            key,
            self._load(key, stored.data),
            stored.version,
            utc(stored.created_ms / 1000),
            utc(stored.updated_ms / 1000),
            None if pttl < 0 else utc((now_ms + pttl) / 1000),
        )

    async def _get_record(self, key: str) -> Record | None:
        if not self.cluster and self._read_size > _PIPELINE_VALUE_BYTES:
            # Recent records are large: read without the copies a script's reply costs.
            return (await self._read_records([key])).get(key)
        reply = await self._eval("read", READ, key)
        return None if reply is None else self._record(key, reply)

    async def _get_many_records(self, keys: list[str]) -> dict[str, Record]:
        if not self.cluster:
            return await self._read_records(keys)
        replies = await self._eval_many("read", READ, [(key, ()) for key in keys])
        return {
            key: self._record(key, reply)
            for key, reply in zip(keys, replies, strict=True)
            if reply is not None
        }

    async def _read_records(self, keys: list[str]) -> dict[str, Record]:
        """Records of a standalone server in one MULTI/EXEC: values, expiries and the
        server's time at one instant."""
        names = [self._key_prefix + key for key in keys]

        async def read(client: Any) -> list[Any]:
            pipe = client.pipeline(transaction=True)
            pipe.execute_command("TIME")
            for name in names:
                pipe.execute_command("GET", name)
                pipe.execute_command("PTTL", name)
            replies = list(await pipe.execute(raise_on_error=False))
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply  # the reply itself (WRONGTYPE...), not the pipeline's wrapper
            return replies

        replies = await self._run("read", read)
        seconds, microseconds = replies[0]
        found = {}
        for index, key in enumerate(keys):
            raw, pttl = replies[1 + 2 * index], replies[2 + 2 * index]
            if raw is not None:
                found[key] = self._record(key, [raw, pttl, seconds, microseconds])
        return found

    async def _put_record(
        self, key: str, value: dict[str, Any], data: str, ttl: float | None, condition: Condition
    ) -> WriteResult:
        version = new_version()
        done, detail = await self._write(key, data, ttl, condition, version)
        if not done:
            check_condition(condition, _text(detail))  # raises VersionConflictError
        return WriteResult(version, bool(detail))

    async def _remove_record(self, key: str, if_version: str | None) -> bool:
        if if_version is None:
            return bool(await self._command("delete", "DEL", self._key_prefix + key))
        done, current = await self._eval("delete", REMOVE, key, if_version)
        if not done:
            check_condition(if_version, _text(current))  # raises VersionConflictError
        return True

    async def _append_items(
        self,
        key: str,
        field: str,
        items: list[Any],
        items_data: str,
        max_items: int | None,
        ttl: float | None,
    ) -> int:
        reply = await self._eval(
            "append",
            APPEND,
            key,
            json.dumps(field, ensure_ascii=False),
            field,
            items_data,
            "" if max_items is None else max_items,
            _px(ttl),
            _px(self.default_ttl),
            new_version(),
            _now(),
        )
        if isinstance(reply, list):
            raise _not_a_list(field, reply[1])
        return int(reply)

    async def _pop_item(self, key: str, field: str) -> Any:
        reply = await self._eval("pop", POP, key, field, new_version(), _now())
        if reply is None:
            return None
        if isinstance(reply, list):
            raise _not_a_list(field, reply[1])
        return self._load(key, b'{"item":' + reply + b"}")["item"]


def _milliseconds(ttl: float) -> int:
    return max(1, round(ttl * 1000))


def _now() -> str:
    """The time of a write, as the scripts store it (15-digit Unix ms)."""
    return f"{time.time_ns() // 1_000_000:015d}"


def _px(ttl: float | None) -> int | str:
    return "" if ttl is None else _milliseconds(ttl)


def _put_arguments(ttl: float | None, condition: Condition) -> tuple[Any, ...]:
    """The PUT script's arguments after the JSON and the version."""
    if condition is None:
        return (_px(ttl), "", "")
    if condition is ABSENT:
        return (_px(ttl), "absent", "")
    return (_px(ttl), "version", condition)


def _text(reply: bytes | None) -> str | None:
    return None if reply is None else reply.decode("ascii")


#: What a JSON value starting with this character is (for the error message).
_KINDS = {ord('"'): "str", ord("{"): "dict", ord("t"): "bool", ord("f"): "bool"}


def _not_a_list(field: str, first: bytes) -> InvalidValueError:
    kind = _KINDS.get(first[0], "number") if first else "value"
    return InvalidValueError(f"The record's {field!r} field is a {kind}, not a list.", f"$.{field}")
