"""Checking the ``supabase`` backend's options: when the store is built (InvalidOptionError),
and in the system checks (an API key sent over plain http, a public key that the table's
policy refuses)."""

from __future__ import annotations

import base64
import binascii
import json
import re
from urllib.parse import urlsplit

from django.core.checks import CheckMessage, Warning

from ...exceptions import InvalidOptionError
from ..redaction import redact

__all__ = ["check_key", "check_namespace", "check_url", "connection_warnings", "jwt_role"]

_NAMESPACE = re.compile(r"[^\x00-\x1f\x7f-\x9f:]{1,64}")
_LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}


def check_url(url: object) -> str:
    """``url`` without a trailing ``/`` if it is an http(s) URL, else InvalidOptionError."""
    if (
        not isinstance(url, str)
        or urlsplit(url).scheme not in ("http", "https")
        or not urlsplit(url).hostname
    ):
        raise InvalidOptionError(
            "url must be the project's http(s) URL, e.g. https://<ref>.supabase.co."
        )
    return url.rstrip("/")


def check_key(key: object) -> str:
    """``key`` if it can be an API key (no spaces), else InvalidOptionError."""
    if not isinstance(key, str) or not key.strip() or any(c.isspace() for c in key):
        raise InvalidOptionError("key must be a Supabase API key (a non-empty str).")
    return key


def check_namespace(namespace: object) -> str | None:
    """``namespace`` if it is ``None`` or a usable namespace, else InvalidOptionError."""
    if namespace is not None and (
        not isinstance(namespace, str) or not _NAMESPACE.fullmatch(namespace)
    ):
        raise InvalidOptionError(
            "namespace must be 1 to 64 characters without ':' or control characters."
        )
    return namespace


def jwt_role(key: str) -> str | None:
    """The ``role`` claim of a legacy JWT API key (read, not verified), if any."""
    parts = key.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    role = claims.get("role") if isinstance(claims, dict) else None
    return role if isinstance(role, str) else None


def connection_warnings(url: str, key: str) -> list[CheckMessage]:
    """Warnings about reaching the project at ``url`` with the API key ``key``."""
    messages: list[CheckMessage] = []
    parts = urlsplit(url)
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK_HOSTS:
        messages.append(
            Warning(
                f"url {redact(url)!r} is plain http: the API key travels unencrypted.",
                hint="Use the project's https:// URL.",
                id="prism_storage.W030",
            )
        )
    if jwt_role(key) in ("anon", "authenticated") or key.startswith("sb_publishable_"):
        messages.append(
            Warning(
                "key is a public (anon/publishable) key: the shipped table policy lets only "
                "the service role read or write, so every request will be refused.",
                hint="Use the project's service-role (secret) key, kept on the server.",
                id="prism_storage.W031",
            )
        )
    return messages
