"""The reusable components of the OpenAPI description (:mod:`.openapi`).

The ``parameters``, ``headers``, ``schemas`` and ``responses`` that the operations refer
to by ``$ref``, built from the constants the views use (error codes and their statuses,
page and search limits, the key and TTL bounds), so that they cannot drift from them.
"""

from __future__ import annotations

from typing import Any

from ..backends.base import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, MAX_TTL
from ..backends.versions import DEFAULT_LIST_FIELD
from ..codec import MAX_KEY_LENGTH
from .errors import ERROR_STATUS
from .search import MAX_SEARCH_LIMIT

__all__ = [
    "HEADERS",
    "PARAMETERS",
    "RESPONSES",
    "SCHEMAS",
    "Schema",
    "json_content",
    "ref",
]

Schema = dict[str, Any]

_JSON = "application/json"


def ref(kind: str, name: str) -> Schema:
    """A reference to the component ``name`` of ``kind`` (``"schemas"``...)."""
    return {"$ref": f"#/components/{kind}/{name}"}


def json_content(schema: Schema) -> Schema:
    """A ``content`` map: ``schema`` as JSON."""
    return {_JSON: {"schema": schema}}


# ----------------------------------------------------------------------- parameters

PARAMETERS: dict[str, Schema] = {
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

HEADERS: dict[str, Schema] = {
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


SCHEMAS: dict[str, Schema] = {
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
        "properties": {"key": {"type": "string"}, "value": ref("schemas", "Value")},
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
        "properties": {"stores": {"type": "array", "items": ref("schemas", "Store")}},
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
                        "value": ref("schemas", "Value"),
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
        "content": json_content(_error_schema(codes)),
    }
    if status == 401:
        response["headers"] = {"WWW-Authenticate": ref("headers", "WWW-Authenticate")}
    if csrf:
        # Django's own CSRF failure page, unless CSRF_FAILURE_VIEW is the API's.
        response["description"] += (
            " A CSRF failure answers Django's HTML page instead unless CSRF_FAILURE_VIEW "
            "is 'prism_storage.views.csrf_failure'."
        )
        response["content"]["text/html"] = {"schema": {"type": "string"}}
    return response


_STATUSES = sorted(set(ERROR_STATUS.values()))

RESPONSES: dict[str, Schema] = {
    **{f"Error{status}": _error_response(status) for status in _STATUSES},
    # Unsafe methods (PUT, DELETE, POST) are checked for CSRF too.
    "Error403Unsafe": _error_response(403, csrf=True),
}
