"""``redis``: records as JSON strings in Redis or a Redis Cluster, through ``redis.asyncio``.

Key layout: the record ``key`` of a store with prefix ``prefix`` lives at the Redis key
``prefix + "\\x1f" + key``. Neither keys nor prefixes may contain control characters, so
the first ``\\x1f`` (ASCII unit separator) always marks where the prefix ends: stores whose
prefixes are string-prefixes of each other (``prism:`` and ``prism:x:``) can never share a
Redis key, and a listing matches exactly its own store's keys.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ..codec import validate_key
from ..exceptions import (
    BackendPermissionError,
    CorruptRecordError,
    InvalidKeyError,
    InvalidOptionError,
    InvalidValueError,
    PrismStorageError,
)
from .base import DEFAULT_TIMEOUT, BaseStorageBackend, KeyPage, LoopBoundClients, check_ttl, require
from .redis_pipeline import Pipeliner
from .redis_url import URL_FORMS, parse_redis_url

__all__ = ["SEPARATOR", "RedisStorageBackend"]

T = TypeVar("T")

#: Between the store's prefix and the record key in every Redis key.
SEPARATOR = "\x1f"
_GLOB_SPECIAL = ("\\", "*", "?", "[", "]")
# Listing: SCAN ``COUNT`` bounds, and how many SCAN round trips one page may take before
# it is returned short (a short page with a cursor is allowed; it keeps each call bounded).
_MIN_SCAN_COUNT = 16
_MAX_SCAN_COUNT = 10_000
_MAX_SCANS_PER_PAGE = 64
_CURSOR_VERSION = 1
_SCAN_DONE = -1  # cursor position once every node is scanned (only queued keys remain)
#: A SET of a value larger than this (JSON characters) is not pipelined, nor GETs while the
#: records recent reads returned are larger on average.
_PIPELINE_VALUE_BYTES = 64 * 1024


def glob_escape(text: str) -> str:
    """Escape ``text`` so that a Redis MATCH pattern matches it literally."""
    for special in _GLOB_SPECIAL:
        text = text.replace(special, "\\" + special)
    return text


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
            raise InvalidOptionError("url must be a Redis URL string, e.g. redis://localhost:6379/0.")
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
        self._clients: LoopBoundClients[_Bound] = LoopBoundClients(self._bind_client, _close)

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

    def _create_client(self) -> Any:
        if self._url.problem is not None:
            raise InvalidOptionError(
                f"The redis store's url {self._url.redacted!r} is not usable: {self._url.problem}."
            )
        require("redis", backend="redis", extra="redis")
        from redis.asyncio import Redis
        from redis.asyncio.cluster import RedisCluster
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        # Every call runs under one deadline (see _run) that cancels the command, and a
        # cancelled command drops its connection; a socket read timeout on top would only
        # add a timer per read. One immediate retry: a pooled connection may be stale
        # after a server restart.
        options: dict[str, Any] = {
            "socket_timeout": None,
            "socket_connect_timeout": self.timeout,
            "retry": Retry(NoBackoff(), 1),
        }
        if self.max_connections is not None:
            options["max_connections"] = self.max_connections
        try:
            if self.cluster:
                return RedisCluster.from_url(self._url.client_url, **options)
            client = Redis.from_url(self._url.client_url, **options)
            pool = client.connection_pool
            pool.connection_class(**pool.connection_kwargs)  # unknown URL options fail here
            return client
        except (TypeError, ValueError) as exc:
            raise InvalidOptionError(
                f"The redis store's url {self._url.redacted!r} is not usable: "
                f"{_scrub(str(exc), self._url.secrets)}"
            ) from None

    def _bind_client(self) -> _Bound:
        client = self._create_client()
        # Single-key commands are pipelined on a standalone server; a cluster client routes
        # each command to its node itself.
        return _Bound(client, None if self.cluster else Pipeliner(client, self.timeout))

    # ------------------------------------------------------------------ helpers

    async def _command(self, action: str, *command: Any, alone: bool = False) -> Any:
        """Send one single-key command (pipelined with those of concurrent callers)."""
        pipeliner = self._clients.get().pipeliner
        if pipeliner is None:
            return await self._run(action, lambda client: client.execute_command(*command))
        try:
            return await pipeliner.call(*command, alone=alone)
        except Exception as exc:
            error = self._failure(exc, action)
            if error is None:
                raise
        raise error from error.__cause__

    async def _run(self, action: str, operation: Callable[[Any], Awaitable[T]]) -> T:
        """Run ``operation(client)`` on this loop's client within ``timeout``.

        Failures become typed errors with secrets scrubbed: unreachable, timed out or
        refusing service -> BackendUnavailableError; refused credentials ->
        BackendPermissionError; a non-string value at our key -> CorruptRecordError.
        The typed error is raised outside the ``except`` block so the driver's exception
        (which may quote the URL) is not kept as its ``__context__``.
        """
        client = self._clients.get().client
        try:
            async with asyncio.timeout(self.timeout):
                if self.cluster:
                    # Learn the slot map before any command: commands racing the first
                    # initialisation break each other's connections (redis-py 8.1).
                    await client.initialize()
                return await operation(client)
        except Exception as exc:
            error = self._failure(exc, action)
            if error is None:
                raise
        raise error from error.__cause__

    def _failure(self, exc: Exception, action: str) -> Exception | None:
        """The typed error standing for ``exc``, or ``None`` to let ``exc`` through."""
        unavailable, denied, response_error = _redis_errors()
        if isinstance(exc, PrismStorageError):
            return None
        if isinstance(exc, denied):
            detail = _scrub(str(exc), self._url.secrets)
            error: Exception = BackendPermissionError(
                f"The 'redis' store refused the credentials or the command ({action}): {detail}"
            )
            error.__cause__ = exc if detail == str(exc) else None
            return error
        if isinstance(exc, response_error) and str(exc).startswith("WRONGTYPE"):
            error = CorruptRecordError(
                f"A Redis key of the redis store (prefix {self.prefix!r}) holds a value "
                "that is not a string."
            )
            error.__cause__ = exc
            return error
        if isinstance(exc, (TimeoutError, OSError, *unavailable)):
            return self._unavailable(exc, action)
        return None

    def _load(self, key: str, data: bytes) -> dict[str, Any]:
        try:
            return self._decode(data)
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
        return self._load(key, data)

    async def _set(self, key: str, value: dict[str, Any], data: str, ttl: float | None) -> None:
        command: tuple[Any, ...] = ("SET", self._key_prefix + key, data)
        if ttl is not None:
            command += ("PX", _milliseconds(ttl))
        await self._command("write", *command, alone=len(data) > _PIPELINE_VALUE_BYTES)

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
        return {k: self._load(k, v) for k, v in zip(keys, values, strict=True) if v is not None}

    async def _set_many(
        self, items: list[tuple[str, dict[str, Any], str]], ttl: float | None
    ) -> None:
        expiry: tuple[Any, ...] = () if ttl is None else ("PX", _milliseconds(ttl))
        prefix = self._key_prefix

        async def write(client: Any) -> None:
            # Standalone: one MULTI/EXEC, so the batch is applied all at once. A cluster
            # pipeline sends each node its share (no cross-slot command).
            pipe = client.pipeline(transaction=not self.cluster)
            for key, _value, data in items:
                pipe.execute_command("SET", prefix + key, data, *expiry)
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
        listing = self._listing_id(prefix)
        node_name, position, pending = (
            ("", 0, []) if cursor is None else _decode_cursor(cursor, listing)
        )
        page, pending = pending[:limit], pending[limit:]
        pattern = glob_escape(self._key_prefix + prefix) + "*"
        skip = len(self._key_prefix)

        async def fill_page(client: Any) -> str | None:
            """SCAN until the page is full (or the per-page budget is spent); the cursor."""
            seen = set(page)
            nodes = self._scan_nodes(client)
            index = len(nodes) if position == _SCAN_DONE else _node_index(nodes, node_name)
            at = position
            count = min(max(limit, _MIN_SCAN_COUNT), _MAX_SCAN_COUNT)
            scanned = matched = 0
            for _ in range(_MAX_SCANS_PER_PAGE):
                if len(page) >= limit or index >= len(nodes):
                    break
                at, batch = await self._scan(client, nodes[index], at, pattern, count)
                scanned += count
                for raw in batch:
                    key = _record_key(raw, skip)
                    if key is None or key in seen:
                        continue
                    seen.add(key)
                    matched += 1
                    (page if len(page) < limit else pending).append(key)
                if at == 0:  # this node is done; the next one starts at 0
                    index += 1
                count = _next_count(limit - len(page), matched, scanned, count)
            if index < len(nodes):
                return _encode_cursor(listing, nodes[index], at, pending)
            return _encode_cursor(listing, "", _SCAN_DONE, pending) if pending else None

        next_cursor = await self._run("list keys", fill_page)
        return KeyPage(page, next_cursor)

    def _listing_id(self, prefix: str) -> str:
        """Ties a cursor to the store and listing prefix that produced it."""
        digest = hashlib.blake2s((self._key_prefix + prefix).encode(), digest_size=6)
        return digest.hexdigest()

    def _scan_nodes(self, client: Any) -> list[str]:
        if not self.cluster:
            return [""]
        return sorted(node.name for node in client.get_primaries())

    async def _scan(
        self, client: Any, node: str, position: int, pattern: str, count: int
    ) -> tuple[int, list[bytes]]:
        if not self.cluster:
            next_position, batch = await client.scan(position, match=pattern, count=count)
            return int(next_position), batch
        target = client.get_node(node_name=node)
        if target is None:
            raise InvalidValueError(
                "The listing cursor refers to a Redis Cluster node that is gone; "
                "start the listing again."
            )
        positions, batch = await client.scan(
            position, match=pattern, count=count, target_nodes=target
        )
        return int(positions[node]), batch


# --------------------------------------------------------------------- module helpers

_ERRORS: tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...],
               type[BaseException]] | None = None


def _redis_errors() -> tuple[
    tuple[type[BaseException], ...], tuple[type[BaseException], ...], type[BaseException]
]:
    """(errors meaning "unavailable", errors meaning "refused", ResponseError), imported once."""
    global _ERRORS
    if _ERRORS is None:
        from redis import exceptions as e

        _ERRORS = (
            (e.RedisError, e.RedisClusterException),
            (e.AuthenticationError, e.AuthorizationError, e.NoPermissionError,
             e.AuthenticationWrongNumberOfArgsError),
            e.ResponseError,
        )
    return _ERRORS


class _Bound:
    """One event loop's client, and its pipeliner (standalone servers)."""

    __slots__ = ("client", "pipeliner")

    def __init__(self, client: Any, pipeliner: Pipeliner | None) -> None:
        self.client = client
        self.pipeliner = pipeliner


async def _close(bound: _Bound) -> None:
    if bound.pipeliner is not None:
        await bound.pipeliner.close()
    else:
        await bound.client.aclose()


def _milliseconds(ttl: float) -> int:
    return max(1, round(ttl * 1000))


def _scrub(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def _record_key(raw: bytes, skip: int) -> str | None:
    """The record key of a Redis key SCAN matched, or ``None`` for a foreign key."""
    try:
        return validate_key(raw.decode("utf-8")[skip:])
    except (UnicodeDecodeError, InvalidKeyError):
        return None


def _node_index(nodes: list[str], name: str) -> int:
    if not name:
        return 0
    try:
        return nodes.index(name)
    except ValueError:
        raise InvalidValueError(
            "The listing cursor refers to a Redis Cluster node that is gone; "
            "start the listing again."
        ) from None


def _next_count(needed: int, matched: int, scanned: int, count: int) -> int:
    """The next SCAN COUNT: aim at the keys still needed, given the density seen so far."""
    if needed <= 0:
        return count
    if matched == 0:
        return min(count * 4, _MAX_SCAN_COUNT)
    wanted = math.ceil(needed * scanned / matched)
    return min(max(wanted, _MIN_SCAN_COUNT), _MAX_SCAN_COUNT)


def _encode_cursor(listing: str, node: str, position: int, pending: list[str]) -> str:
    payload = json.dumps([_CURSOR_VERSION, listing, node, position, pending],
                         ensure_ascii=False, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, listing: str) -> tuple[str, int, list[str]]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        version, owner, node, position, pending = json.loads(raw)
        if (version != _CURSOR_VERSION or owner != listing or type(node) is not str
                or type(position) is not int or type(pending) is not list):
            raise ValueError("not a cursor of this listing")
        return node, position, [validate_key(k) for k in pending]
    except (ValueError, TypeError, InvalidKeyError) as exc:
        raise InvalidValueError(
            "cursor is not a cursor returned by keys() for this store and prefix."
        ) from exc
