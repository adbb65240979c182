"""Reading and checking a Redis connection URL without importing the client library.

Understood schemes: ``redis://`` and ``rediss://`` (TLS) for one server, ``unix://`` for a
Unix socket, and ``redis+cluster://`` / ``rediss+cluster://`` for a Redis Cluster (any
node of the cluster as the seed). User name, password and database number come from the
URL; query-string options are handed to redis-py as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import (
    SplitResult,
    parse_qsl,
    quote,
    unquote,
    urlencode,
    urlsplit,
)

__all__ = ["RedisURL", "parse_redis_url"]

SCHEMES = ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster")
URL_FORMS = (
    "redis://[[user]:password@]host[:port][/db], rediss://... for TLS, "
    "unix:///path/to/redis.sock[?db=N], redis+cluster://host:port (any cluster node)"
)
_REDACTED = "***"


@dataclass(frozen=True)
class RedisURL:
    """The parts of a Redis URL this backend needs; ``problem`` says what is wrong, if any."""

    raw: str
    cluster: bool = False
    tls: bool = False
    #: The URL handed to redis-py (``+cluster`` removed from the scheme).
    client_url: str = ""
    problem: str | None = None
    secrets: tuple[str, ...] = ()
    #: The URL with every password replaced by ``***`` (for repr, checks and logs).
    redacted: str = ""
    insecure_tls: bool = False


def parse_redis_url(url: str, *, cluster: bool = False) -> RedisURL:
    """Parse ``url``; never raises (a malformed URL comes back with ``problem`` set)."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        return RedisURL(raw=url, redacted="(unparsable URL)", problem=f"malformed URL: {exc}")
    secrets = _secrets(parts.password, parts.query)
    redacted = _redact(parts)
    scheme = parts.scheme.lower()
    wants_cluster = cluster or scheme.endswith("+cluster")
    base_scheme = scheme.removesuffix("+cluster")
    return RedisURL(
        raw=url,
        cluster=wants_cluster,
        tls=base_scheme == "rediss",
        client_url=_unsplit(base_scheme, parts.netloc, parts.path, parts.query),
        problem=_problem(parts, scheme, wants_cluster),
        secrets=secrets,
        redacted=redacted,
        insecure_tls=any(
            k == "ssl_cert_reqs" and v.lower() in ("none", "optional")
            for k, v in parse_qsl(parts.query)
        ),
    )


def _problem(parts: SplitResult, scheme: str, cluster: bool) -> str | None:
    if scheme not in SCHEMES:
        shown = f"{scheme!r}" if scheme else "no scheme"
        return f"the URL has {shown}; expected one of {', '.join(s + '://' for s in SCHEMES)}"
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    if scheme == "unix":
        if cluster:
            return "a Redis Cluster cannot be reached through a unix:// socket URL"
        if not parts.path:
            return "a unix:// URL needs the socket path, e.g. unix:///run/redis/redis.sock"
    else:
        if not parts.hostname:
            return "the URL names no host"
        try:
            parts.port  # noqa: B018 - parsing the port validates it
        except ValueError:
            return "the URL's port is not a number from 1 to 65535"
    db_text = query.get("db")
    if db_text is None and scheme != "unix" and parts.path.strip("/"):
        db_text = unquote(parts.path.strip("/"))
    if db_text is not None:
        if not db_text.isdigit():
            return f"the database number {db_text!r} is not a non-negative integer"
        if cluster and int(db_text) != 0:
            return "a Redis Cluster has only database 0"
    return None


def _secrets(password: str | None, query: str) -> tuple[str, ...]:
    found: list[str] = []
    if password:
        found += [password, unquote(password)]
    for name, value in parse_qsl(query):
        if name == "password" and value:
            found += [value, quote(value)]
    return tuple(dict.fromkeys(s for s in found if s))


def _redact(parts: SplitResult) -> str:
    netloc = parts.netloc
    if parts.password is not None:
        userinfo, _, host = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{_REDACTED}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, _REDACTED if k == "password" else v) for k, v in pairs], safe="*/")
    return _unsplit(parts.scheme, netloc, parts.path, query)


def _unsplit(scheme: str, netloc: str, path: str, query: str) -> str:
    # urllib.parse.urlunsplit drops the "//" of "unix:///path"; Redis URLs always have it.
    return f"{scheme}://{netloc}{path}{'?' + query if query else ''}"
