"""Error translation: how a store turns its client's failures into typed errors.

The half of :class:`~prism_storage.backends.base.BaseStorageBackend` that a backend
calls around its client (``_guard``, ``_unavailable``, ``_caused_by``, ``_redact``) and
the two hooks it overrides (``_translate_error`` for its client's exceptions, ``_secrets``
for what must never be quoted). No secret reaches a typed error, its cause or a log.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import ClassVar, TypeVar

from ..exceptions import BackendUnavailableError, PrismStorageError
from ..observability import logger
from .redaction import RedactedCause, redact

__all__ = ["ErrorTranslation"]

T = TypeVar("T")
E = TypeVar("E", bound=BaseException)


class ErrorTranslation:
    """Typed errors with secrets scrubbed, and the store's timeout on every client call."""

    # These come from BaseStorageBackend.
    backend_name: ClassVar[str]
    alias: str | None
    timeout: float

    def _secrets(self) -> list[str]:
        """Secret strings to scrub from error messages (API keys, URL passwords)."""
        return []

    def _redact(self, text: str) -> str:
        """``text`` without this store's secrets or any password in a URL."""
        return redact(text, self._secrets())

    def _caused_by(self, error: E, exc: BaseException) -> E:
        """Chain ``exc`` to ``error`` as its cause, or, when ``exc`` quotes a secret, a
        stand-in that carries its redacted text (the client's exception is dropped)."""
        raw = f"{exc!r} {exc}"
        if self._redact(raw) != raw:
            error.__cause__ = RedactedCause(self._redact(f"{type(exc).__name__}: {exc}"))
            error.__suppress_context__ = True
        else:
            error.__cause__ = exc
        return error

    def _unavailable(self, exc: BaseException, action: str) -> BackendUnavailableError:
        """Build the BackendUnavailableError for ``exc``, with secrets scrubbed."""
        detail = self._redact(f"{type(exc).__name__}: {exc}")
        error = BackendUnavailableError(
            f"The {self.backend_name!r} store could not {action}: {detail}"
        )
        # An outage is worth a warning wherever the error ends up; the text is redacted.
        logger.warning("Store %r is unavailable: %s", self.alias, error)
        return self._caused_by(error, exc)

    def _translate_error(self, exc: Exception, action: str) -> Exception | None:
        """The typed error standing for ``exc`` (raised by the client while trying to
        ``action``), or ``None`` to let ``exc`` through unchanged.

        Backends override this to map their client library's exceptions, building the
        typed error with :meth:`_redact` and :meth:`_caused_by` so no secret reaches it,
        and end with ``super()._translate_error(exc, action)``: timeouts and ``OSError``
        mean the store cannot be reached.
        """
        if isinstance(exc, TimeoutError | OSError):
            return self._unavailable(exc, action)
        return None

    def _error_for(
        self, exc: Exception, action: str, errors: tuple[type[BaseException], ...] = ()
    ) -> Exception | None:
        """The error to raise instead of ``exc``, or ``None`` to let ``exc`` through:
        typed errors pass; ``errors`` (connection-level exceptions of the client) mean
        the store is unavailable; anything else goes through :meth:`_translate_error`.

        Raise the result outside the ``except`` block that caught ``exc``, as
        ``raise error from error.__cause__``, so the client's exception (which may quote
        a secret) is not attached as its ``__context__``.
        """
        if isinstance(exc, PrismStorageError):
            return None  # already typed (BackendPermissionError is an OSError too)
        if isinstance(exc, errors):
            return self._unavailable(exc, action)
        return self._translate_error(exc, action)

    async def _guard(
        self,
        action: str,
        awaitable: Awaitable[T],
        errors: tuple[type[BaseException], ...] = (),
        *,
        seconds: float | None = None,
    ) -> T:
        """Await ``awaitable`` within ``seconds`` (default ``self.timeout``), mapping
        failures to typed errors (see :meth:`_error_for`); a call that outlasts the timeout
        is unavailable."""
        try:
            async with asyncio.timeout(self.timeout if seconds is None else seconds):
                return await awaitable
        except Exception as exc:
            error = self._error_for(exc, action, errors)
            if error is None:
                raise
        # Raised here, after the except block, so the client's exception (which may quote a
        # secret) is not attached as __context__.
        raise error from error.__cause__
