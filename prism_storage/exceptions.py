"""The exceptions raised by prism_storage.

Runtime errors share one base, :class:`PrismStorageError`, and mix in the stdlib type a
caller would naturally catch (``ValueError`` for bad input, ``ConnectionError`` for an
unreachable store). Configuration mistakes are :class:`ConfigurationError`, a subclass of
Django's ``ImproperlyConfigured`` that deliberately sits *outside* ``PrismStorageError`` so
that no ``except PrismStorageError`` fallback path can swallow a misconfiguration.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

__all__ = [
    "BackendPermissionError",
    "BackendUnavailableError",
    "ConfigurationError",
    "CorruptRecordError",
    "InvalidKeyError",
    "InvalidOptionError",
    "InvalidStoreAliasError",
    "InvalidValueError",
    "MissingDependencyError",
    "PrismStorageError",
    "SchemaMismatchError",
    "UnknownBackendError",
    "UnsupportedOperationError",
    "VersionConflictError",
]


class PrismStorageError(Exception):
    """Base class of every runtime error raised by a storage backend."""


class InvalidKeyError(PrismStorageError, ValueError):
    """The key is not a non-empty string of at most 512 characters without control characters."""


class InvalidValueError(PrismStorageError, ValueError):
    """The value is not a dict of JSON data (or is otherwise unacceptable to this store)."""

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        #: Where in the value the problem is, as ``$.messages[0].content``; ``None`` if global.
        self.path = path


class BackendUnavailableError(PrismStorageError, ConnectionError):
    """The store could not be reached, or did not answer within its timeout.

    The underlying exception is chained as ``__cause__`` (with any secret redacted).
    """


class BackendPermissionError(PrismStorageError, PermissionError):
    """The store was reached but refused the credentials or the operation."""


class CorruptRecordError(PrismStorageError):
    """A stored record exists but cannot be decoded (truncated, foreign or tampered data)."""


class UnsupportedOperationError(PrismStorageError, NotImplementedError):
    """The backend cannot perform this operation (see its ``supports_*`` flags)."""


class VersionConflictError(PrismStorageError):
    """A conditional write found the record at another version (or absent, or present)
    than the caller expected; nothing was written.

    ``current_version`` is the record's version now, ``None`` when there is no record.
    """

    def __init__(self, message: str, current_version: str | None) -> None:
        super().__init__(message)
        self.current_version = current_version


class ConfigurationError(ImproperlyConfigured):
    """A configuration mistake: settings, options, or the shape of an existing store."""


class UnknownBackendError(ConfigurationError, LookupError):
    """``BACKEND`` / ``provider_type`` names no registered backend."""


class InvalidStoreAliasError(ConfigurationError, KeyError):
    """``storages[alias]`` names no store configured in ``PRISM_STORAGE``."""

    def __str__(self) -> str:  # KeyError would quote the whole message.
        return str(self.args[0]) if self.args else ""


class InvalidOptionError(ConfigurationError, TypeError):
    """An option is unknown to the backend, or its value is unacceptable."""


class MissingDependencyError(ConfigurationError, ImportError):
    """An optional package needed by a backend is not installed."""

    def __init__(self, backend: str, package: str, extra: str) -> None:
        self.backend = backend
        self.package = package
        self.extra = extra
        super().__init__(
            f"The {backend!r} storage backend needs the {package!r} package. "
            f"Install it with: pip install 'prism-storage[{extra}]'"
        )


class SchemaMismatchError(ConfigurationError):
    """An existing table, collection or index does not match the configuration."""
