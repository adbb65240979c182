"""A TEST STAND-IN for the Pinecone cloud: a small HTTP server, not a product.

Pinecone cannot run on these machines, so tests point the real ``pinecone`` SDK (v10, API
version ``2026-07``) at this loopback server instead. It speaks the subset of Pinecone's
REST wire protocol the project uses, with the JSON shapes the SDK's response models
require::

    with PineconeStandIn(api_key="pcsk-test-key") as server:
        pc = Pinecone(api_key=server.api_key, host=server.url)
        pc.create_index("docs", dimension=384, metric="cosine",
                        spec=ServerlessSpec(cloud="aws", region="us-east-1"))
        index = pc.Index(host=server.index_host("docs"))  # or pc.IndexAsyncio(host=...)

Control plane (at ``server.url``): create (201; 409 ``ALREADY_EXISTS`` if the name is
taken), describe, list, delete (202) of dense serverless indexes; each is ready at once.
Errors there are ``{"error": {"code", "message"}, "status"}``.

Data plane (at ``server.index_host(name)``, which is ``server.url + "/data/<name>"``; the
SDK's sync and asyncio clients both accept a host with a path): upsert, fetch, query,
delete (by ids, filter or ``deleteAll``), ``describe_index_stats`` and ``vectors/list``.
Errors there are ``{"code": <gRPC code>, "message", "details": []}``.

Every request needs the ``Api-Key`` header (401 otherwise). Scores are exact, brute force,
with Pinecone's conventions: ``cosine`` -> cosine similarity and ``dotproduct`` -> dot
product (higher is more similar); ``euclidean`` -> the SQUARED Euclidean distance (lower
is more similar), as Pinecone's documentation states. Matches come best first, equal
scores in id order.

Limits enforced as Pinecone documents them: metadata at most 40 KB (40,960 bytes of
compact JSON) per vector and only string, number, boolean or list-of-strings values;
vector dimension must match the index and a vector must have a non-zero value; ids 1-512
characters; upsert at most 1000 vectors (400) and 2 MB (413); fetch/delete at most 1000
ids; ``topK`` 1-10,000; list ``limit`` 1-100. Namespaces are isolated; ``""`` (or none)
is the default namespace, reported by ``describe_index_stats`` as ``"__default__"`` like
Pinecone's 2026-07 API, and a namespace disappears when its last vector is deleted. As on
serverless Pinecone, a delete in a namespace that does not exist is a 404.

``fail_next(status, count)`` makes the next data-plane requests fail; those answers carry
``Retry-After: 0`` so the SDK's own retries (4 attempts in all on 408, 429, 500, 502, 503
and 504) happen at once.
Note the SDK keeps a process-wide retry budget per host name: each retryable failure
spends a token, and after about 50 unrefunded failures against ``127.0.0.1`` it stops
retrying until successes refill it.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.standins._pinecone_data import DataPlaneError, IndexData

_DATA_PREFIX = "/data/"
_INDEX_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,43}[a-z0-9])?$")
_METRICS = ("cosine", "dotproduct", "euclidean")
_MAX_DIMENSION = 20_000
_GRPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 429: 8, 500: 13, 503: 14, 504: 4}


class _ControlPlaneError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"code": code, "message": message}, "status": status}


class _Index:
    def __init__(self, spec: dict[str, Any], host: str) -> None:
        self.spec = spec
        self.host = host
        self.data = IndexData(spec["dimension"], spec["metric"])

    def model(self) -> dict[str, Any]:
        """The index as the 2026-07 API describes it (the SDK's ``IndexModel``)."""
        spec = self.spec
        field = {"type": "dense_vector", "dimension": spec["dimension"], "metric": spec["metric"]}
        return {
            "name": spec["name"],
            "status": {"ready": True, "state": "Ready"},
            "schema": {"fields": {spec["field"]: field}},
            "deployment": {
                "deployment_type": "managed",
                "cloud": spec["cloud"],
                "region": spec["region"],
            },
            "deletion_protection": spec["deletion_protection"],
            "host": self.host,
            "tags": spec["tags"],
        }


def _create_spec(body: Any) -> dict[str, Any]:
    """Validate a create-index body (2026-07 ``schema`` form, or the older flat form)."""
    if not isinstance(body, dict):
        raise _ControlPlaneError(400, "INVALID_ARGUMENT", "request body must be a JSON object")
    name = body.get("name")
    if not isinstance(name, str) or not _INDEX_NAME.match(name):
        raise _ControlPlaneError(
            400,
            "INVALID_ARGUMENT",
            "Index name must be 1-45 lowercase alphanumeric characters or '-', "
            "starting and ending with an alphanumeric character",
        )
    if "schema" in body:
        fields = (body.get("schema") or {}).get("fields") or {}
        dense = {
            k: v
            for k, v in fields.items()
            if isinstance(v, dict) and v.get("type") == "dense_vector"
        }
        if len(dense) != 1 or len(fields) != 1:
            raise _ControlPlaneError(
                400, "INVALID_ARGUMENT", "this stand-in supports one dense_vector field only"
            )
        [(field, config)] = dense.items()
        dimension, metric = config.get("dimension"), config.get("metric", "cosine")
        deployment = body.get("deployment") or {}
    else:
        field = "_values"
        dimension, metric = body.get("dimension"), body.get("metric", "cosine")
        deployment = (body.get("spec") or {}).get("serverless") or {}
    if not isinstance(dimension, int) or not 1 <= dimension <= _MAX_DIMENSION:
        raise _ControlPlaneError(
            400, "INVALID_ARGUMENT", f"dimension must be an integer from 1 to {_MAX_DIMENSION}"
        )
    if metric not in _METRICS:
        raise _ControlPlaneError(
            400, "INVALID_ARGUMENT", f"metric must be one of {', '.join(_METRICS)}"
        )
    return {
        "name": name,
        "field": field,
        "dimension": dimension,
        "metric": metric,
        "cloud": deployment.get("cloud", "aws"),
        "region": deployment.get("region", "us-east-1"),
        "deletion_protection": body.get("deletion_protection", "disabled"),
        "tags": body.get("tags"),
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        # Headers and body go out in separate writes: without this, Nagle + delayed ACK
        # cost ~48 ms per request on loopback.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().setup()
        self.server.track(self.request, True)

    def finish(self) -> None:
        self.server.track(self.request, False)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        stand_in = self.server.stand_in
        stand_in.requests.append((self.command, self.path))
        url = urlsplit(self.path)
        try:
            if url.path.startswith(_DATA_PREFIX):
                self._data_plane(url.path, url.query, raw)
            else:
                self._control_plane(url.path, raw)
        except Exception as exc:
            # A bug in the stand-in must reach the test as an answer, not a dropped connection.
            message = f"Pinecone stand-in failed: {exc!r}"
            self._send(500, {"code": 13, "message": message, "details": []})

    do_GET = do_POST = do_DELETE = do_PATCH = do_PUT = _handle

    def _send(self, status: int, body: Any, extra_headers: dict[str, str] | None = None) -> None:
        payload = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (extra_headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _authorized(self) -> bool:
        return self.headers.get("Api-Key") == self.server.stand_in.api_key

    def _control_plane(self, path: str, raw: bytes) -> None:
        try:
            if not self._authorized():
                raise _ControlPlaneError(401, "UNAUTHENTICATED", "Invalid API Key")
            status, body = self._route_control(path, raw)
        except _ControlPlaneError as exc:
            status, body = exc.status, exc.body
        self._send(status, body)

    def _route_control(self, path: str, raw: bytes) -> tuple[int, Any]:
        stand_in = self.server.stand_in
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if parts == ["indexes"] and self.command == "GET":
            return 200, {"indexes": stand_in.index_models()}
        if parts == ["indexes"] and self.command == "POST":
            try:
                body = json.loads(raw or b"null")
            except ValueError:
                body = None
            return 201, stand_in.create_index(_create_spec(body))
        if len(parts) == 2 and parts[0] == "indexes" and self.command in ("GET", "DELETE"):
            index = stand_in.get_index(parts[1])
            if index is None:
                raise _ControlPlaneError(404, "NOT_FOUND", f"Resource {parts[1]} not found")
            if self.command == "GET":
                return 200, index.model()
            if index.spec["deletion_protection"] == "enabled":
                raise _ControlPlaneError(
                    403, "FORBIDDEN", "Deletion protection is enabled for this index"
                )
            stand_in.drop_index(parts[1])
            return 202, None
        raise _ControlPlaneError(
            404, "NOT_FOUND", f"{self.command} {path} is not served by the Pinecone stand-in"
        )

    def _data_plane(self, path: str, query: str, raw: bytes) -> None:
        stand_in = self.server.stand_in
        injected = stand_in.take_failure()
        if injected is not None:
            message = f"injected failure ({injected})"
            body = {"code": _GRPC_CODES.get(injected, 2), "message": message, "details": []}
            self._send(injected, body, {"Retry-After": "0"})
            return
        try:
            if not self._authorized():
                raise DataPlaneError(401, 16, "Invalid API Key")
            name, _, operation = path[len(_DATA_PREFIX) :].partition("/")
            index = stand_in.get_index(unquote(name))
            if index is None:
                raise DataPlaneError(404, 5, f"Index {unquote(name)} not found")
            body = self._dispatch(index.data, "/" + operation, query, raw)
            status = 200
        except DataPlaneError as exc:
            status, body = exc.status, {"code": exc.code, "message": exc.message, "details": []}
        self._send(status, body)

    def _dispatch(self, data: IndexData, operation: str, query: str, raw: bytes) -> Any:
        route = (self.command, operation)
        if route == ("GET", "/vectors/fetch"):
            return data.fetch(parse_qs(query, keep_blank_values=True))
        if route == ("GET", "/vectors/list"):
            return data.list_ids(parse_qs(query, keep_blank_values=True))
        if route == ("GET", "/describe_index_stats"):
            return data.stats({})
        if self.command != "POST":
            raise DataPlaneError(404, 5, f"{self.command} {operation} is not served here")
        try:
            body = json.loads(raw or b"{}")
        except ValueError as exc:
            raise DataPlaneError(400, 3, "request body is not valid JSON") from exc
        if not isinstance(body, dict):
            raise DataPlaneError(400, 3, "request body must be a JSON object")
        if operation == "/vectors/upsert":
            return data.upsert(body, len(raw))
        if operation == "/query":
            return data.query(body)
        if operation == "/vectors/delete":
            return data.delete(body)
        if operation == "/describe_index_stats":
            return data.stats(body)
        raise DataPlaneError(404, 5, f"POST {operation} is not served by the Pinecone stand-in")


class _Server(ThreadingHTTPServer):
    # Handler threads are joined on close, so a stopped stand-in leaves nothing running.
    daemon_threads = False
    block_on_close = True
    # socketserver's default backlog of 5 drops SYNs under a burst of concurrent clients,
    # and each dropped SYN costs the client a one-second retransmit.
    request_queue_size = 128

    def __init__(self, stand_in: PineconeStandIn) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.stand_in = stand_in
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def track(self, connection: socket.socket, open_: bool) -> None:
        with self._connections_lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client dropping an idle keep-alive connection is routine, not a server fault.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def drop_connections(self) -> None:
        """Wake handler threads idling on keep-alive connections so they can end."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class PineconeStandIn:
    """A Pinecone-compatible test server on a free 127.0.0.1 port, in a background thread.

    Use as a context manager, or ``start()`` / ``stop()``. ``url`` is the control-plane host
    for ``Pinecone(api_key=..., host=url)``; ``index_host(name)`` is an index's data-plane
    host; ``requests`` lists every ``(method, path)`` received (path with its query
    string); ``fail_next(status, count)`` makes the next ``count`` data-plane requests fail.
    """

    def __init__(self, api_key: str = "pcsk-test-key") -> None:
        self.api_key = api_key
        self.requests: list[tuple[str, str]] = []
        self._indexes: dict[str, _Index] = {}
        self._lock = threading.Lock()
        self._failures: list[int] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "stopped"
        return f"<PineconeStandIn {where}>"

    def __enter__(self) -> PineconeStandIn:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> PineconeStandIn:
        """Bind a free loopback port and serve in a background thread; returns self."""
        if self._server is not None:
            raise RuntimeError("the Pinecone stand-in is already running")
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="pinecone-stand-in",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close every connection and join all server threads."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.shutdown()
        thread.join()
        server.drop_connections()
        server.server_close()
        self._server = self._thread = None

    @property
    def url(self) -> str:
        """The control-plane host, e.g. ``http://127.0.0.1:41234``."""
        if self._server is None:
            raise RuntimeError("the Pinecone stand-in is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def index_host(self, name: str) -> str:
        """The data-plane host of an existing index (what ``describe_index`` reports)."""
        with self._lock:
            index = self._indexes.get(name)
        if index is None:
            raise KeyError(f"no index named {name!r}")
        return index.host

    def fail_next(self, status: int = 500, count: int = 1) -> None:
        """Answer the next ``count`` data-plane requests with HTTP ``status``."""
        if not 400 <= status <= 599 or count < 1:
            raise ValueError("status must be 4xx/5xx and count at least 1")
        with self._lock:
            self._failures.extend([status] * count)

    def take_failure(self) -> int | None:
        with self._lock:
            return self._failures.pop(0) if self._failures else None

    def create_index(self, spec: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            if spec["name"] in self._indexes:
                raise _ControlPlaneError(
                    409, "ALREADY_EXISTS", f"Resource {spec['name']} already exists"
                )
            index = _Index(spec, f"{self.url}{_DATA_PREFIX}{spec['name']}")
            self._indexes[spec["name"]] = index
        return index.model()

    def get_index(self, name: str) -> _Index | None:
        with self._lock:
            return self._indexes.get(name)

    def drop_index(self, name: str) -> None:
        with self._lock:
            self._indexes.pop(name, None)

    def index_models(self) -> list[dict[str, Any]]:
        with self._lock:
            return [index.model() for _, index in sorted(self._indexes.items())]


__all__ = ["PineconeStandIn"]
