"""What a page of the store browser says when a store fails."""

from __future__ import annotations

from ..backends.base import BaseStorageBackend
from ..exceptions import ConfigurationError, InvalidKeyError, InvalidValueError

__all__ = ["failure_message"]


def failure_message(exc: BaseException, store: BaseStorageBackend | None = None) -> str:
    """A message for the page: what went wrong, without the driver's details.

    The backends' errors are redacted already; ``store``'s secrets are taken out once more
    here because a page is the last place a leaked password could still be stopped (an
    error raised by a third-party backend, say).
    """
    if isinstance(exc, ConfigurationError):
        return "This store is not configured correctly (run manage.py check)."
    if isinstance(exc, InvalidKeyError | InvalidValueError):
        return str(exc)
    message = f"The store failed: {type(exc).__name__}. {exc}"
    return message if store is None else store._redact(message)
