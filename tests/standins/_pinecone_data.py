"""The records of one index of the Pinecone test stand-in, and its data-plane operations.

Each operation takes the decoded request (JSON body or query parameters) and returns the
JSON body Pinecone answers with, or raises :class:`DataPlaneError` carrying the status and
gRPC code real Pinecone uses. Search is exact brute force with numpy; scores follow
Pinecone's conventions (see the ``pinecone_server`` module docstring).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tests.standins._pinecone_filter import FilterError, Predicate, compile_filter

DEFAULT_NAMESPACE = "__default__"
MAX_METADATA_BYTES = 40 * 1024
MAX_ID_LENGTH = 512
MAX_NAMESPACE_LENGTH = 512
MAX_UPSERT_VECTORS = 1000
MAX_UPSERT_BYTES = 2 * 1024 * 1024
MAX_IDS_PER_REQUEST = 1000
MAX_TOP_K = 10_000
MAX_LIST_LIMIT = 100

# gRPC status codes, which Pinecone's data plane puts in the "code" of its error bodies.
INVALID_ARGUMENT = 3
NOT_FOUND = 5


class DataPlaneError(Exception):
    """A request the data plane refuses: answered as ``{"code","message","details"}``."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _invalid(message: str) -> DataPlaneError:
    return DataPlaneError(400, INVALID_ARGUMENT, message)


def namespace_key(raw: Any) -> str:
    """The stored name of a request's namespace: "" and a missing one are the default."""
    if raw is None or raw == "":
        return DEFAULT_NAMESPACE
    if not isinstance(raw, str) or len(raw) > MAX_NAMESPACE_LENGTH or "\x00" in raw:
        raise _invalid(f"Namespace must be a string of at most {MAX_NAMESPACE_LENGTH} characters")
    return raw


def _check_id(raw: Any) -> str:
    if not isinstance(raw, str) or not raw or len(raw) > MAX_ID_LENGTH or "\x00" in raw:
        raise _invalid(f"Vector ID must be a string of 1 to {MAX_ID_LENGTH} characters")
    return raw


def _check_metadata(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise _invalid("Metadata must be a JSON object")
    for key, value in raw.items():
        scalar = isinstance(value, str | bool) or (
            isinstance(value, int | float) and math.isfinite(value)
        )
        strings = isinstance(value, list) and all(isinstance(v, str) for v in value)
        if not (scalar or strings):
            raise _invalid(
                f"Metadata value for field {key!r} must be a string, number, boolean or "
                f"list of strings, got {json.dumps(value)[:40]}"
            )
    size = len(json.dumps(raw, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_METADATA_BYTES:
        raise _invalid(
            f"Metadata size is {size} bytes, which exceeds the limit of "
            f"{MAX_METADATA_BYTES} bytes per vector"
        )
    return raw


def _f32_to_json(values: np.ndarray) -> list[float]:
    # Pinecone stores float32 and answers with each value's shortest float32 spelling.
    return [float(str(v)) for v in values]


@dataclass
class _Namespace:
    records: dict[str, tuple[np.ndarray, dict[str, Any] | None]] = field(default_factory=dict)
    _ids: list[str] | None = None
    _matrix: np.ndarray | None = None

    def changed(self) -> None:
        self._ids = None
        self._matrix = None

    def sorted_ids(self) -> list[str]:
        if self._ids is None:
            # Python orders str by code point, which is Pinecone's bitwise UTF-8 order.
            self._ids = sorted(self.records)
        return self._ids

    def matrix(self, dimension: int) -> np.ndarray:
        if self._matrix is None:
            rows = [self.records[i][0] for i in self.sorted_ids()]
            self._matrix = np.stack(rows) if rows else np.empty((0, dimension), np.float32)
        return self._matrix


class IndexData:
    """All namespaces of one index; every public method is safe to call from any thread."""

    def __init__(self, dimension: int, metric: str) -> None:
        self.dimension = dimension
        self.metric = metric
        self._namespaces: dict[str, _Namespace] = {}
        self._lock = threading.Lock()

    def _check_values(self, raw: Any, what: str) -> np.ndarray:
        if not isinstance(raw, list) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in raw
        ):
            raise _invalid(f"{what} values must be a list of numbers")
        if len(raw) != self.dimension:
            raise _invalid(
                f"{what} dimension {len(raw)} does not match the dimension of the index "
                f"{self.dimension}"
            )
        values = np.asarray(raw, dtype=np.float32)
        if not np.all(np.isfinite(values)):
            raise _invalid(f"{what} values must be finite numbers")
        if not np.any(values):
            raise _invalid("Dense vectors must contain at least one non-zero value")
        return values

    def upsert(self, body: dict[str, Any], body_size: int) -> dict[str, Any]:
        if body_size > MAX_UPSERT_BYTES:
            raise DataPlaneError(
                413,
                INVALID_ARGUMENT,
                f"Request size {body_size} bytes exceeds the limit of {MAX_UPSERT_BYTES} bytes",
            )
        vectors = body.get("vectors")
        if not isinstance(vectors, list) or not vectors:
            raise _invalid("vectors must be a non-empty list")
        if len(vectors) > MAX_UPSERT_VECTORS:
            raise _invalid(
                f"Upsert request contains {len(vectors)} vectors, more than the limit of "
                f"{MAX_UPSERT_VECTORS}"
            )
        ns_name = namespace_key(body.get("namespace"))
        checked = []
        for vector in vectors:
            if not isinstance(vector, dict):
                raise _invalid("each vector must be a JSON object")
            if vector.get("sparseValues") is not None:
                raise _invalid("sparse values are not supported by this stand-in")
            checked.append(
                (
                    _check_id(vector.get("id")),
                    self._check_values(vector.get("values"), "Vector"),
                    _check_metadata(vector.get("metadata")),
                )
            )
        with self._lock:
            namespace = self._namespaces.setdefault(ns_name, _Namespace())
            for vector_id, values, metadata in checked:
                namespace.records[vector_id] = (values, metadata)
            namespace.changed()
        return {"upsertedCount": len(checked)}

    def fetch(self, query: dict[str, list[str]]) -> dict[str, Any]:
        ids = [_check_id(i) for i in query.get("ids", [])]
        if not ids:
            raise _invalid("ids must name at least one vector")
        if len(ids) > MAX_IDS_PER_REQUEST:
            raise _invalid(f"fetch accepts at most {MAX_IDS_PER_REQUEST} ids")
        raw_namespace = query.get("namespace", [""])[0]
        ns_name = namespace_key(raw_namespace)
        found: dict[str, Any] = {}
        with self._lock:
            namespace = self._namespaces.get(ns_name, _Namespace())
            for vector_id in ids:
                if vector_id in namespace.records:
                    values, metadata = namespace.records[vector_id]
                    found[vector_id] = {"id": vector_id, "values": _f32_to_json(values)}
                    if metadata is not None:
                        found[vector_id]["metadata"] = metadata
        return {"vectors": found, "namespace": raw_namespace}

    def _scores(self, matrix: np.ndarray, query: np.ndarray) -> np.ndarray:
        rows = matrix.astype(np.float64)
        vector = query.astype(np.float64)
        if self.metric == "euclidean":
            return np.sum((rows - vector) ** 2, axis=1)
        dots = rows @ vector
        if self.metric == "dotproduct":
            return dots
        return dots / (np.linalg.norm(rows, axis=1) * np.linalg.norm(vector))

    def query(self, body: dict[str, Any]) -> dict[str, Any]:
        top_k = body.get("topK")
        if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= MAX_TOP_K:
            raise _invalid(f"topK must be an integer from 1 to {MAX_TOP_K}")
        if ("vector" in body) == ("id" in body):
            raise _invalid("exactly one of vector or id must be given")
        if body.get("sparseVector") is not None:
            raise _invalid("sparse vectors are not supported by this stand-in")
        predicate = self._predicate(body.get("filter"))
        ns_name = namespace_key(body.get("namespace"))
        by_id = _check_id(body["id"]) if "id" in body else None
        vector = None if by_id else self._check_values(body.get("vector"), "Query vector")
        matches = []
        with self._lock:
            namespace = self._namespaces.get(ns_name, _Namespace())
            if by_id is not None and by_id in namespace.records:
                vector = namespace.records[by_id][0]
            ranked = self._rank(namespace, vector, predicate, top_k) if vector is not None else []
            for vector_id, score in ranked:
                values, metadata = namespace.records[vector_id]
                match: dict[str, Any] = {"id": vector_id, "score": score}
                match["values"] = _f32_to_json(values) if body.get("includeValues") else []
                if body.get("includeMetadata") and metadata is not None:
                    match["metadata"] = metadata
                matches.append(match)
        return {"matches": matches, "namespace": body.get("namespace") or ""}

    def _rank(
        self, namespace: _Namespace, vector: np.ndarray, predicate: Predicate | None, top_k: int
    ) -> list[tuple[str, float]]:
        """The ``top_k`` best (id, score) pairs of a namespace; the caller holds the lock."""
        ids = namespace.sorted_ids()
        if predicate is None:
            selected = list(range(len(ids)))
        else:
            selected = [n for n, i in enumerate(ids) if predicate(namespace.records[i][1] or {})]
        if not selected:
            return []
        scores = self._scores(namespace.matrix(self.dimension)[selected], vector)
        # A stable sort over id-ordered rows: equal scores come back in id order.
        order = np.argsort(scores if self.metric == "euclidean" else -scores, kind="stable")
        # Pinecone computes in float32 and answers with float32 scores.
        return [(ids[selected[n]], float(str(np.float32(scores[n])))) for n in order[:top_k]]

    @staticmethod
    def _predicate(expression: Any) -> Predicate | None:
        if expression is None or expression == {}:
            return None
        try:
            return compile_filter(expression)
        except FilterError as exc:
            raise _invalid(f"Invalid filter: {exc}") from exc

    def delete(self, body: dict[str, Any]) -> dict[str, Any]:
        modes = [m for m in ("ids", "filter", "deleteAll") if body.get(m) not in (None, False)]
        if len(modes) != 1:
            raise _invalid("delete needs exactly one of ids, filter or deleteAll")
        ids = body.get("ids")
        if ids is not None:
            if not isinstance(ids, list) or len(ids) > MAX_IDS_PER_REQUEST:
                raise _invalid(f"ids must be a list of at most {MAX_IDS_PER_REQUEST} ids")
            ids = [_check_id(i) for i in ids]
        if modes == ["filter"] and not body["filter"]:
            raise _invalid("Delete with empty metadata filter is not allowed")
        predicate = self._predicate(body.get("filter"))
        ns_name = namespace_key(body.get("namespace"))
        with self._lock:
            namespace = self._namespaces.get(ns_name)
            if namespace is None:
                # Serverless Pinecone answers a delete in a namespace it has never seen with 404.
                raise DataPlaneError(404, NOT_FOUND, "Namespace not found")
            if ids is not None:
                doomed = [i for i in ids if i in namespace.records]
            elif predicate is not None:
                doomed = [i for i, (_, md) in namespace.records.items() if predicate(md or {})]
            else:
                doomed = list(namespace.records)
            for vector_id in doomed:
                del namespace.records[vector_id]
            namespace.changed()
            if not namespace.records:
                del self._namespaces[ns_name]
        return {}

    def list_ids(self, query: dict[str, list[str]]) -> dict[str, Any]:
        raw_namespace = query.get("namespace", [""])[0]
        ns_name = namespace_key(raw_namespace)
        prefix = query.get("prefix", [""])[0]
        try:
            limit = int(query.get("limit", [str(MAX_LIST_LIMIT)])[0])
        except ValueError:
            limit = 0
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise _invalid(f"limit must be an integer from 1 to {MAX_LIST_LIMIT}")
        after = _decode_token(query["paginationToken"][0]) if "paginationToken" in query else None
        with self._lock:
            ids = self._namespaces.get(ns_name, _Namespace()).sorted_ids()
            candidates = [i for i in ids if i.startswith(prefix) and (after is None or i > after)]
        page = candidates[:limit]
        response: dict[str, Any] = {"vectors": [{"id": i} for i in page]}
        if len(candidates) > limit:
            response["pagination"] = {"next": _encode_token(page[-1])}
        response["namespace"] = raw_namespace
        return response

    def stats(self, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("filter"):
            raise _invalid("describe_index_stats does not support a filter on serverless indexes")
        with self._lock:
            counts = {name: len(ns.records) for name, ns in self._namespaces.items()}
        return {
            "namespaces": {name: {"vectorCount": n} for name, n in sorted(counts.items())},
            "dimension": self.dimension,
            "indexFullness": 0.0,
            "totalVectorCount": sum(counts.values()),
            "metric": self.metric,
            "vectorType": "dense",
        }


def _encode_token(last_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": last_id}).encode()).decode()


def _decode_token(token: str) -> str:
    try:
        after = json.loads(base64.urlsafe_b64decode(token.encode()))["after"]
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise _invalid("paginationToken is not valid") from exc
    if not isinstance(after, str):
        raise _invalid("paginationToken is not valid")
    return after
