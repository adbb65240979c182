"""Reading a request: the JSON body within the size limit, and query parameters."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest

from ..backends.base import MAX_TTL
from ..codec import validate_key
from ..conf import api_max_body_size
from ..exceptions import InvalidKeyError
from .errors import ApiError

__all__ = ["int_parameter", "read_json_object", "ttl_parameter", "valid_key"]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON data")


def read_json_object(request: HttpRequest, *, optional: bool = False) -> dict[str, Any]:
    """The request body as a JSON object, within the configured size limit (``{}`` for
    an empty body when ``optional``)."""
    limit = api_max_body_size()
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise ApiError("invalid_body", "Content-Length must be an integer.") from None
    too_large = ApiError("payload_too_large", f"The request body exceeds {limit} bytes.")
    if declared > limit:
        raise too_large
    # The declared length may be absent or wrong (chunked bodies): measure the real one.
    data = request.read(limit + 1)
    if len(data) > limit:
        raise too_large
    if optional and not data:
        return {}
    try:
        # UTF-8 only (RFC 8259 §8.1), a leading byte order mark tolerated; json.loads would
        # otherwise guess UTF-16/32 from bytes and let UTF-8-encoded lone surrogates through.
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise ApiError(
            "malformed_json", f"The body is not UTF-8: {exc.reason} at byte {exc.start}."
        ) from None
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise ApiError("invalid_value", "The JSON body is nested too deeply.") from None
    except ValueError as exc:  # JSONDecodeError, NaN/Infinity, integers of over 4300 digits
        raise ApiError("malformed_json", f"The body is not valid JSON: {exc}") from None
    if type(value) is not dict:
        raise ApiError("invalid_body", "The body must be a JSON object.")
    return value


def int_parameter(raw: str | None, name: str, default: int, maximum: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        number = int(raw)
    except ValueError:
        number = 0
    if not 1 <= number <= maximum:
        raise ApiError("invalid_parameter", f"{name} must be an integer from 1 to {maximum}.")
    return number


def ttl_parameter(raw: str | None) -> float | None:
    if raw is None or raw == "":
        return None
    try:
        ttl = float(raw)
    except ValueError:
        ttl = -1.0
    if not 0 < ttl <= MAX_TTL:  # also refuses NaN
        raise ApiError(
            "invalid_parameter", f"ttl must be a positive number of seconds up to {MAX_TTL}."
        )
    return ttl


def valid_key(key: str) -> str:
    try:
        return validate_key(key)
    except InvalidKeyError as exc:
        raise ApiError("invalid_key", str(exc)) from None
