"""The OpenAPI 3.1 description of the JSON API (served at ``api/schema/``).

Built from the same constants the views use (error codes and their statuses, page and
search limits, the key and TTL bounds), so that the description cannot drift from them.
This module builds the operations of every path and the document around them; the
components they refer to by ``$ref`` are in :mod:`.openapi_components`.

Paths are relative to where ``prism_storage.urls`` is included: the ``servers`` entry
names that prefix (the view fills in the real one).
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from .openapi_components import (
    HEADERS,
    PARAMETERS,
    RESPONSES,
    SCHEMAS,
    Schema,
    json_content,
    ref,
)

__all__ = ["OPENAPI_VERSION", "openapi_document"]

OPENAPI_VERSION = "3.1.0"

# ------------------------------------------------------------------ operation pieces


def _errors(*statuses: int, unsafe: bool = False) -> dict[str, Schema]:
    """The error responses of ``statuses`` (``unsafe``: a PUT, DELETE or POST)."""
    names = {status: f"Error{status}" for status in statuses}
    if unsafe and 403 in names:
        names[403] = "Error403Unsafe"
    return {str(status): ref("responses", name) for status, name in names.items()}


#: What a request naming a store may meet besides its own errors: access, an unknown
#: store, and the store failing or being unreachable.
_STORE_ERRORS = (401, 403, 404, 502, 503)

_VALIDATORS = {
    "ETag": ref("headers", "ETag"),
    "Last-Modified": ref("headers", "Last-Modified"),
}


def _body(schema: Schema, *, required: bool = True, description: str = "") -> Schema:
    body: Schema = {"required": required, "content": json_content(schema)}
    if description:
        body["description"] = description
    return body


#: What an unsafe method (PUT, DELETE, POST) needs: the session and the CSRF token.
_UNSAFE_SECURITY: list[dict[str, list[str]]] = [{"session": [], "csrf": []}]


def _ok(description: str, schema_name: str, **extra: Any) -> Schema:
    return {
        "description": description,
        "content": json_content(ref("schemas", schema_name)),
        **extra,
    }


# --------------------------------------------------------------------------- paths


def _paths() -> dict[str, Schema]:
    alias, key = ref("parameters", "alias"), ref("parameters", "key")
    return {
        "/api/schema/": {
            "get": {
                "operationId": "schema",
                "summary": "This description of the API.",
                "security": [],
                "responses": {
                    "200": {
                        "description": "The OpenAPI document.",
                        "content": json_content({"type": "object"}),
                    }
                },
            }
        },
        "/api/stores/": {
            "get": {
                "operationId": "listStores",
                "summary": "The stores this user may view, with backend and capabilities.",
                "responses": {
                    "200": _ok("The stores, in setting order; never their options.", "StoreList"),
                    **_errors(401, 403),
                },
            }
        },
        "/api/stores/{alias}/records/": {
            "get": {
                "operationId": "listKeys",
                "summary": "One page of keys (stores whose 'listing' capability is true).",
                "parameters": [
                    alias,
                    ref("parameters", "prefix"),
                    ref("parameters", "cursor"),
                    ref("parameters", "limit"),
                ],
                "responses": {"200": _ok("A page.", "KeyPage"), **_errors(400, *_STORE_ERRORS)},
            }
        },
        "/api/stores/{alias}/records/{key}": {
            "parameters": [alias, key],
            "get": {
                "operationId": "getRecord",
                "summary": "A record.",
                "description": "If-Modified-Since is not taken (send If-None-Match).",
                "parameters": [ref("parameters", "ifNoneMatchRead")],
                "responses": {
                    "200": _ok("The record.", "Record", headers=_VALIDATORS),
                    "304": {
                        "description": "If-None-Match named the current version.",
                        "headers": _VALIDATORS,
                    },
                    **_errors(400, *_STORE_ERRORS),
                },
            },
            "put": {
                "operationId": "putRecord",
                "security": _UNSAFE_SECURITY,
                "summary": "Create or replace a record.",
                "description": (
                    "Needs the change permission and, with a session, the X-CSRFToken "
                    "header. If-Unmodified-Since is refused (400 invalid_header)."
                ),
                "parameters": [
                    ref("parameters", "ttl"),
                    ref("parameters", "ifMatchWrite"),
                    ref("parameters", "ifNoneMatchWrite"),
                ],
                "requestBody": _body(ref("schemas", "Value"), description="The value."),
                "responses": {
                    "200": _ok("Replaced.", "Record", headers={"ETag": ref("headers", "ETag")}),
                    "201": _ok(
                        "Created.",
                        "Record",
                        headers={
                            "ETag": ref("headers", "ETag"),
                            "Location": ref("headers", "Location"),
                        },
                    ),
                    **_errors(400, *_STORE_ERRORS, 412, 413, 501, unsafe=True),
                },
            },
            "delete": {
                "operationId": "deleteRecord",
                "security": _UNSAFE_SECURITY,
                "summary": "Delete a record (204 whether or not it existed).",
                "description": (
                    "Needs the delete permission and, with a session, the X-CSRFToken "
                    "header. If-None-Match and If-Unmodified-Since are refused (400)."
                ),
                "parameters": [ref("parameters", "ifMatchWrite")],
                "responses": {
                    "204": {"description": "Deleted, or there was no record."},
                    **_errors(400, *_STORE_ERRORS, 412, 501, unsafe=True),
                },
            },
        },
        "/api/stores/{alias}/search": {
            "post": {
                "operationId": "search",
                "security": _UNSAFE_SECURITY,
                "summary": "Similarity search (stores whose 'search' capability is true).",
                "description": "Needs the view permission; with a session, X-CSRFToken.",
                "parameters": [alias],
                "requestBody": _body(ref("schemas", "SearchRequest")),
                "responses": {
                    "200": _ok("The results, best first.", "SearchResults"),
                    **_errors(400, *_STORE_ERRORS, 413, unsafe=True),
                },
            }
        },
        "/api/stores/{alias}/append/{key}": {
            "post": {
                "operationId": "append",
                "security": _UNSAFE_SECURITY,
                "summary": "Append items to a list field, atomically ('atomic_lists').",
                "description": (
                    "Needs the change permission; with a session, X-CSRFToken. Takes no "
                    "If-Match, If-None-Match or If-Unmodified-Since (400 invalid_header)."
                ),
                "parameters": [alias, key, ref("parameters", "ttl")],
                "requestBody": _body(ref("schemas", "AppendRequest")),
                "responses": {
                    "200": _ok("The list's new length.", "AppendResult"),
                    **_errors(400, *_STORE_ERRORS, 413, unsafe=True),
                },
            }
        },
        "/api/stores/{alias}/pop/{key}": {
            "post": {
                "operationId": "pop",
                "security": _UNSAFE_SECURITY,
                "summary": "Take the last item of a list field, atomically ('atomic_lists').",
                "description": (
                    "Needs the change permission; with a session, X-CSRFToken. Takes no "
                    "If-Match, If-None-Match or If-Unmodified-Since (400 invalid_header)."
                ),
                "parameters": [alias, key],
                "requestBody": _body(
                    ref("schemas", "PopRequest"),
                    required=False,
                    description="Optional: an empty body pops the default field.",
                ),
                "responses": {
                    "200": _ok("The item taken, or null.", "PopResult"),
                    **_errors(400, *_STORE_ERRORS, 413, unsafe=True),
                },
            }
        },
    }


@functools.cache
def _document() -> Schema:
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "prism-storage JSON API",
            "version": _package_version(),
            "description": (
                "Records of the stores configured in PRISM_STORAGE. Authentication: a "
                "Django session (log in first); writes and searches send the csrftoken "
                "cookie's value as X-CSRFToken. Every error is "
                '{"error": {"code", "message"}}. A method a path does not list answers '
                "405 method_not_allowed with an Allow header. See docs/api.md."
            ),
        },
        "servers": [{"url": "/prism"}],
        "security": [{"session": []}],
        "paths": _paths(),
        "components": {
            "schemas": SCHEMAS,
            "parameters": PARAMETERS,
            "headers": HEADERS,
            "responses": RESPONSES,
            "securitySchemes": {
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "sessionid",
                    "description": "Django's session cookie: log in (the admin's login page).",
                },
                "csrf": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-CSRFToken",
                    "description": (
                        "The csrftoken cookie's value, on PUT, DELETE and POST with a session "
                        "(else 403 csrf_failed)."
                    ),
                },
            },
        },
    }


def _package_version() -> str:
    from .. import __version__

    return __version__


def openapi_document(server: str | None = None, session_cookie: str | None = None) -> Schema:
    """The OpenAPI document; ``server`` is the path the URLs are included under
    (``"/prism"``), named in ``servers``, and ``session_cookie`` the name of Django's
    session cookie (``SESSION_COOKIE_NAME``). A fresh copy: callers may change it."""
    document = copy.deepcopy(_document())
    if server is not None:
        document["servers"] = [{"url": server}]
    if session_cookie is not None:
        document["components"]["securitySchemes"]["session"]["name"] = session_cookie
    return document
