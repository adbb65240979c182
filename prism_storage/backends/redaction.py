"""Keeping secrets out of error messages: every backend's errors pass through here."""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["RedactedCause", "redact"]

_URL_PASSWORD = re.compile(r"(?<=://)([^/@\s:]*):([^/@\s]*)@")


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Remove passwords in URLs and each given secret from ``text``.

    Secrets shorter than 4 characters are left alone: replacing them would garble the
    message without protecting anything worth the name.
    """
    text = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}:***@", text)
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


class RedactedCause(Exception):
    """Stands in for a client exception whose message contained a secret."""
