"""The OpenAPI 3.1 description of the JSON API (served at ``api/schema/``).

Built from the same constants the views use (error codes and their statuses, page and
search limits, the key and TTL bounds), so that the description cannot drift from them.
Paths are relative to where ``prism_storage.urls`` is included: the ``servers`` entry
names that prefix (the view fills in the real one).
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from ..backends.base import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, MAX_TTL
from ..backends.versions import DEFAULT_LIST_FIELD
from ..codec import MAX_KEY_LENGTH
from .errors import ERROR_STATUS
from .search import MAX_SEARCH_LIMIT

__all__ = ["OPENAPI_VERSION", "openapi_document"]

OPENAPI_VERSION = "3.1.0"

Schema = dict[str, Any]

_JSON = "application/json"


def _ref(kind: str, name: str) -> Schema:
    return {"$ref": f"#/components/{kind}/{name}"}


def _json(schema: Schema) -> Schema:
    return {_JSON: {"schema": schema}}


# ----------------------------------------------------------------------- parameters

_PARAMETERS: dict[str, Schema] = {
    "alias": {
        "name": "alias",
        "in": "path",
        "required": True,
        "description": "A store alias of PRISM_STORAGE. Unknown or hidden aliases: 404.",
        "schema": {"type": "string", "minLength": 1, "pattern": "^[^/]+$"},
    },
    "key": {
        "name": "key",
        "in": "path",
        "required": True,
        "description": (
            "The record key, percent-encoded (it may contain '/', encoded or not; encode "
            "'.' as %2E, since clients remove '.' and '..' path segments). Decoded once by "
            f"the server. At most {MAX_KEY_LENGTH} characters, no control characters "
            "(else 400 invalid_key)."
        ),
        "schema": {"type": "string", "minLength": 1},
    },
    "ttl": {
        "name": "ttl",
        "in": "query",
        "required": False,
        "description": (
            "Expiry in seconds (more than 0, at most 100 years), for stores whose 'ttl' "
            "capability is true (others: 400 unsupported_operation)."
        ),
        "schema": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_TTL},
    },
    "prefix": {
        "name": "prefix",
        "in": "query",
        "required": False,
        "description": "Only keys starting with this prefix (default: all keys).",
        "schema": {"type": "string", "default": ""},
    },
    "cursor": {
        "name": "cursor",
        "in": "query",
        "required": False,
        "description": (
            "The 'cursor' of the previous page; empty or absent for the first page. A "
            "cursor the store did not hand out may be refused (400 invalid_parameter)."
        ),
        "schema": {"type": "string"},
    },
    "limit": {
        "name": "limit",
        "in": "query",
        "required": False,
        "description": "The most keys on this page (a page may hold fewer before the end).",
        "schema": {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_PAGE_SIZE,
            "default": DEFAULT_PAGE_SIZE,
        },
    },
    "ifMatchWrite": {
        "name": "If-Match",
        "in": "header",
        "required": False,
        "description": (
            "Write only if the record is at one of these versions (strong comparison; "
            "'*': if it exists). 412 otherwise, 501 on a store without conditional writes."
        ),
        "schema": {"type": "string"},
    },
    "ifNoneMatchWrite": {
        "name": "If-None-Match",
        "in": "header",
        "required": False,
        "description": (
            "Only '*' (create only: 412 if the record exists). Any other value, or both "
            "If-Match and If-None-Match: 400 invalid_header."
        ),
        "schema": {"type": "string", "enum": ["*"]},
    },
    "ifNoneMatchRead": {
        "name": "If-None-Match",
        "in": "header",
        "required": False,
        "description": (
            "304 without a body when it names the record's current ETag (weak comparison) "
            "or is '*'. Taken only by stores whose 'versions' capability is true."
        ),
        "schema": {"type": "string"},
    },
}

# ------------------------------------------------------------------------- headers

_HEADERS: dict[str, Schema] = {
    "ETag": {
        "description": "The record's version as a strong entity tag (versioned stores only).",
        "schema": {"type": "string", "pattern": '^"[^"]*"$'},
    },
    "Last-Modified": {
        "description": "The record's updated_at as an HTTP date (versioned stores only).",
        "schema": {"type": "string"},
    },
    "Location": {
        "description": "The path of the record created.",
        "required": True,
        "schema": {"type": "string"},
    },
    "WWW-Authenticate": {
        "description": "The session scheme: log in (a Django session cookie) first.",
        "required": True,
        "schema": {"type": "string"},
    },
}

# ------------------------------------------------------------------------- schemas

_CAPABILITIES = [
    "ttl",
    "listing",
    "search",
    "sweep",
    "native_batch",
    "shared_across_processes",
    "versions",
    "conditional_writes",
    "atomic_lists",
    "text_search",
]


def _error_schema(codes: list[str]) -> Schema:
    return {
        "type": "object",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "additionalProperties": False,
                "properties": {
                    "code": {"type": "string", "enum": codes},
                    "message": {"type": "string"},
                },
            }
        },
    }


_SCHEMAS: dict[str, Schema] = {
    "Error": _error_schema(list(ERROR_STATUS)),
    "Value": {
        "type": "object",
        "description": (
            "A record's value: a JSON object. Strings may not hold NUL, nesting is "
            "limited, and numbers must be finite (400 invalid_value otherwise)."
        ),
    },
    "Record": {
        "type": "object",
        "required": ["key", "value"],
        "additionalProperties": False,
        "properties": {"key": {"type": "string"}, "value": _ref("schemas", "Value")},
    },
    "Store": {
        "oneOf": [
            {
                "type": "object",
                "required": ["alias", "backend", "capabilities"],
                "additionalProperties": False,
                "properties": {
                    "alias": {"type": "string"},
                    "backend": {"type": "string"},
                    "capabilities": {
                        "type": "object",
                        "required": _CAPABILITIES,
                        "additionalProperties": {"type": "boolean"},
                    },
                },
            },
            {
                "type": "object",
                "description": "A store whose configuration is broken.",
                "required": ["alias", "backend", "capabilities", "error"],
                "additionalProperties": False,
                "properties": {
                    "alias": {"type": "string"},
                    "backend": {"type": "null"},
                    "capabilities": {"type": "null"},
                    "error": {"const": "store_misconfigured"},
                },
            },
        ]
    },
    "StoreList": {
        "type": "object",
        "required": ["stores"],
        "additionalProperties": False,
        "properties": {"stores": {"type": "array", "items": _ref("schemas", "Store")}},
    },
    "KeyPage": {
        "type": "object",
        "required": ["keys", "cursor"],
        "additionalProperties": False,
        "properties": {
            "keys": {"type": "array", "items": {"type": "string"}},
            "cursor": {
                "type": ["string", "null"],
                "description": "Pass it back for the next page; null on the last page.",
            },
        },
    },
    "SearchRequest": {
        "type": "object",
        "additionalProperties": False,
        "description": "Exactly one of 'embedding' and 'text'.",
        "oneOf": [{"required": ["embedding"]}, {"required": ["text"]}],
        "properties": {
            "embedding": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "number"},
                "description": "Finite numbers, as many as the store's dimensions.",
            },
            "text": {
                "type": "string",
                "minLength": 1,
                "pattern": r"\S",
                "description": "For stores whose 'text_search' capability is true.",
            },
            "limit": {"type": "integer", "minimum": 1, "maximum": MAX_SEARCH_LIMIT, "default": 5},
            "filter": {
                "type": "object",
                "description": "In the vector backend's filter language.",
            },
        },
    },
    "SearchResults": {
        "type": "object",
        "required": ["results"],
        "additionalProperties": False,
        "properties": {
            "results": {
                "type": "array",
                "description": "Best first.",
                "items": {
                    "type": "object",
                    "required": ["key", "score", "value"],
                    "properties": {
                        "key": {"type": "string"},
                        "score": {"type": "number"},
                        "value": _ref("schemas", "Value"),
                    },
                },
            }
        },
    },
    "AppendRequest": {
        "type": "object",
        "required": ["items"],
        "additionalProperties": False,
        "properties": {
            "items": {"type": "array", "description": "The JSON values to append, in order."},
            "field": {"type": "string", "minLength": 1, "default": DEFAULT_LIST_FIELD},
            "max_items": {
                "type": "integer",
                "minimum": 1,
                "description": "Keep only the latest max_items items.",
            },
        },
    },
    "AppendResult": {
        "type": "object",
        "required": ["length"],
        "additionalProperties": False,
        "properties": {"length": {"type": "integer", "minimum": 0}},
    },
    "PopRequest": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"field": {"type": "string", "minLength": 1, "default": DEFAULT_LIST_FIELD}},
    },
    "PopResult": {
        "type": "object",
        "required": ["item"],
        "additionalProperties": False,
        "properties": {
            "item": {"description": "The last item; null when the record or the list is empty."}
        },
    },
}

# ----------------------------------------------------------------------- responses


def _error_response(status: int, *, csrf: bool = False) -> Schema:
    codes = [
        code
        for code, code_status in ERROR_STATUS.items()
        if code_status == status and (csrf or code != "csrf_failed")
    ]
    response: Schema = {
        "description": f"An error: {', '.join(codes)}.",
        "content": _json(_error_schema(codes)),
    }
    if status == 401:
        response["headers"] = {"WWW-Authenticate": _ref("headers", "WWW-Authenticate")}
    if csrf:
        # Django's own CSRF failure page, unless CSRF_FAILURE_VIEW is the API's.
        response["description"] += (
            " A CSRF failure answers Django's HTML page instead unless CSRF_FAILURE_VIEW "
            "is 'prism_storage.views.csrf_failure'."
        )
        response["content"]["text/html"] = {"schema": {"type": "string"}}
    return response


_STATUSES = sorted(set(ERROR_STATUS.values()))

_RESPONSES: dict[str, Schema] = {
    **{f"Error{status}": _error_response(status) for status in _STATUSES},
    # Unsafe methods (PUT, DELETE, POST) are checked for CSRF too.
    "Error403Unsafe": _error_response(403, csrf=True),
}


def _errors(*statuses: int, unsafe: bool = False) -> dict[str, Schema]:
    """The error responses of ``statuses`` (``unsafe``: a PUT, DELETE or POST)."""
    names = {status: f"Error{status}" for status in statuses}
    if unsafe and 403 in names:
        names[403] = "Error403Unsafe"
    return {str(status): _ref("responses", name) for status, name in names.items()}


#: What a request naming a store may meet besides its own errors: access, an unknown
#: store, and the store failing or being unreachable.
_STORE_ERRORS = (401, 403, 404, 502, 503)

_VALIDATORS = {
    "ETag": _ref("headers", "ETag"),
    "Last-Modified": _ref("headers", "Last-Modified"),
}


def _body(schema: Schema, *, required: bool = True, description: str = "") -> Schema:
    body: Schema = {"required": required, "content": _json(schema)}
    if description:
        body["description"] = description
    return body


#: What an unsafe method (PUT, DELETE, POST) needs: the session and the CSRF token.
_UNSAFE_SECURITY: list[dict[str, list[str]]] = [{"session": [], "csrf": []}]


def _ok(description: str, schema_name: str, **extra: Any) -> Schema:
    return {"description": description, "content": _json(_ref("schemas", schema_name)), **extra}


# --------------------------------------------------------------------------- paths


def _paths() -> dict[str, Schema]:
    alias, key = _ref("parameters", "alias"), _ref("parameters", "key")
    return {
        "/api/schema/": {
            "get": {
                "operationId": "schema",
                "summary": "This description of the API.",
                "security": [],
                "responses": {
                    "200": {
                        "description": "The OpenAPI document.",
                        "content": _json({"type": "object"}),
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
                    _ref("parameters", "prefix"),
                    _ref("parameters", "cursor"),
                    _ref("parameters", "limit"),
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
                "parameters": [_ref("parameters", "ifNoneMatchRead")],
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
                    _ref("parameters", "ttl"),
                    _ref("parameters", "ifMatchWrite"),
                    _ref("parameters", "ifNoneMatchWrite"),
                ],
                "requestBody": _body(_ref("schemas", "Value"), description="The value."),
                "responses": {
                    "200": _ok("Replaced.", "Record", headers={"ETag": _ref("headers", "ETag")}),
                    "201": _ok(
                        "Created.",
                        "Record",
                        headers={
                            "ETag": _ref("headers", "ETag"),
                            "Location": _ref("headers", "Location"),
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
                "parameters": [_ref("parameters", "ifMatchWrite")],
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
                "requestBody": _body(_ref("schemas", "SearchRequest")),
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
                "parameters": [alias, key, _ref("parameters", "ttl")],
                "requestBody": _body(_ref("schemas", "AppendRequest")),
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
                    _ref("schemas", "PopRequest"),
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
            "schemas": _SCHEMAS,
            "parameters": _PARAMETERS,
            "headers": _HEADERS,
            "responses": _RESPONSES,
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
