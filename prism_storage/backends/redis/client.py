"""The redis-py client of one event loop, and the client library's exceptions.

redis-py is imported only when a store first talks to Redis, never at import of
``prism_storage``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ...exceptions import InvalidOptionError
from ..clients import require
from ..redaction import redact
from .connection_url import RedisURL
from .pipeline import Pipeliner

__all__ = ["BoundClient", "ClientErrors", "bind_client", "client_errors", "close_client"]


class BoundClient:
    """One event loop's client, and its pipeliner (standalone servers)."""

    __slots__ = ("client", "pipeliner")

    def __init__(self, client: Any, pipeliner: Pipeliner | None) -> None:
        self.client = client
        self.pipeliner = pipeliner


def create_client(url: RedisURL, *, timeout: float, max_connections: int | None) -> Any:
    """A ``redis.asyncio`` client (``RedisCluster`` for a cluster URL) for ``url``."""
    if url.problem is not None:
        raise InvalidOptionError(
            f"The redis store's url {url.redacted!r} is not usable: {url.problem}."
        )
    require("redis", backend="redis", extra="redis")
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    # Every call runs under one deadline (the store's guard) that cancels the command, and
    # a cancelled command drops its connection; a socket read timeout on top would only
    # add a timer per read. One immediate retry: a pooled connection may be stale after a
    # server restart.
    options: dict[str, Any] = {
        "socket_timeout": None,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 1),
    }
    if max_connections is not None:
        options["max_connections"] = max_connections
    try:
        if url.cluster:
            return RedisCluster.from_url(url.client_url, **options)
        client = Redis.from_url(url.client_url, **options)
        pool = client.connection_pool
        pool.connection_class(**pool.connection_kwargs)  # unknown URL options fail here
        return client
    except (TypeError, ValueError) as exc:
        raise InvalidOptionError(
            f"The redis store's url {url.redacted!r} is not usable: {redact(str(exc), url.secrets)}"
        ) from None


def bind_client(url: RedisURL, *, timeout: float, max_connections: int | None) -> BoundClient:
    """The client for the running event loop."""
    client = create_client(url, timeout=timeout, max_connections=max_connections)
    # Single-key commands are pipelined on a standalone server; a cluster client routes
    # each command to its node itself.
    return BoundClient(client, None if url.cluster else Pipeliner(client, timeout))


async def close_client(bound: BoundClient) -> None:
    if bound.pipeliner is not None:
        await bound.pipeliner.close()
    else:
        await bound.client.aclose()


class ClientErrors(NamedTuple):
    """redis-py's exceptions, by what they mean for the store."""

    #: The server cannot be reached or does not answer.
    unavailable: tuple[type[Exception], ...]
    #: The server refused the credentials or the command (ACL).
    denied: tuple[type[Exception], ...]
    #: An error reply (``WRONGTYPE``...).
    response: type[Exception]
    #: ``NOSCRIPT``: the server does not know a script (restarted, or ``SCRIPT FLUSH``).
    no_script: type[Exception]


_ERRORS: ClientErrors | None = None


def client_errors() -> ClientErrors:
    """redis-py's exceptions, imported once (the first time a call fails)."""
    global _ERRORS
    if _ERRORS is None:
        from redis import exceptions as e

        _ERRORS = ClientErrors(
            unavailable=(e.RedisError, e.RedisClusterException),
            denied=(
                e.AuthenticationError,
                e.AuthorizationError,
                e.NoPermissionError,
                e.AuthenticationWrongNumberOfArgsError,
            ),
            response=e.ResponseError,
            no_script=e.NoScriptError,
        )
    return _ERRORS
