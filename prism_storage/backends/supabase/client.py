"""The supabase-py client of one event loop, over an httpx client the backend owns.

Error answers are raised by an httpx response hook as :class:`HTTPStatusError`, so the
backend sees the HTTP status and PostgREST's error code whatever the request was.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

from ..clients import require

__all__ = ["DEFAULT_MAX_CONNECTIONS", "Connection", "HTTPStatusError", "connect", "disconnect"]

#: The default HTTP connection pool size per event loop. httpcore looks over every pooled
#: connection for each request it places, so a large pool costs CPU on every call: on
#: loopback, 64 concurrent calls spent ~6.5 ms of client CPU each with 100 connections and
#: ~2 ms with 16 (see docs/supabase.md).
DEFAULT_MAX_CONNECTIONS = 16


class HTTPStatusError(Exception):
    """An HTTP error answer, raised by the httpx response hook so its status is kept."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.code = str(body.get("code") or "")
        self.message = str(body.get("message") or "")
        self.hint = str(body.get("hint") or "")
        super().__init__(
            f"HTTP {status}"
            + (f" {self.code}" if self.code else "")
            + f": {self.message}"
            + (f" ({self.hint})" if self.hint else "")
        )


async def _raise_for_status(response: Any) -> None:
    """httpx response hook: turn an error answer into :class:`HTTPStatusError`."""
    if response.status_code < 400:
        return
    await response.aread()
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {"message": f"{response.reason_phrase} {response.text[:200]}".strip()}
    raise HTTPStatusError(response.status_code, body)


@dataclass
class Connection:
    client: Any  # supabase.AsyncClient
    http: Any  # httpx.AsyncClient, owned by the backend


def connect(url: str, key: str, timeout: float, max_connections: int) -> Connection:
    """A client of the project at ``url`` for the running event loop."""
    supabase = require("supabase", backend="supabase", extra="supabase")
    httpx = require("httpx", backend="supabase", extra="supabase")
    http = httpx.AsyncClient(
        timeout=httpx.Timeout(timeout),
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
        http2=importlib.util.find_spec("h2") is not None,
        event_hooks={"response": [_raise_for_status]},
    )
    options = supabase.AsyncClientOptions(
        httpx_client=http,
        # The client's own retries sleep 1, 2, 4... seconds: longer than our timeout.
        postgrest_client_retry=False,
        auto_refresh_token=False,
        persist_session=False,
    )
    return Connection(supabase.AsyncClient(url, key, options), http)


async def disconnect(connection: Connection) -> None:
    await connection.http.aclose()
