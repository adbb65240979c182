"""The values and expiry a store writes: how a value is validated and encoded (within the
store's own limits) and read back, and which expiry a write gets."""

from __future__ import annotations

from typing import Any, ClassVar

from ..codec import MAX_DEPTH, decode_value, encode_value
from ..exceptions import InvalidValueError, UnsupportedOperationError
from .ttl import check_ttl

__all__ = ["ValueRules"]


class ValueRules:
    """Encoding, decoding and TTL resolution shared by the plain and versioned halves of
    :class:`~prism_storage.backends.base.BaseStorageBackend`. A backend narrows the codec's
    rules with ``_max_depth`` and ``_keeps_numbers_as_decimals``."""

    # These come from BaseStorageBackend.
    backend_name: ClassVar[str]
    supports_ttl: ClassVar[bool]
    max_value_bytes: ClassVar[int | None]

    #: The expiry (seconds) of a write that names none; ``None``: records never expire.
    default_ttl: float | None = None

    def _resolve_ttl(self, ttl: float | None) -> float | None:
        if ttl is None:
            return self.default_ttl
        if not self.supports_ttl:
            raise UnsupportedOperationError(
                f"The {self.backend_name!r} backend does not support expiry (ttl)."
            )
        return check_ttl(ttl)

    @staticmethod
    def _decode(data: str | bytes) -> dict[str, Any]:
        return decode_value(data)

    def _encode(self, value: dict[str, Any]) -> str:
        """Validate and encode a value; enforces ``max_value_bytes``."""
        data = encode_value(
            value, decimal_exact=self._keeps_numbers_as_decimals(), max_depth=self._max_depth()
        )
        limit = self.max_value_bytes
        if limit is not None and len(data) > limit // 4 and len(data.encode()) > limit:
            raise InvalidValueError(
                f"The value is {len(data.encode())} bytes as JSON; the {self.backend_name!r} "
                f"store accepts at most {limit}.",
                "$",
            )
        return data

    def _keeps_numbers_as_decimals(self) -> bool:
        """Whether the store hands JSON numbers back from decimals (PostgreSQL ``jsonb``):
        then floats that print as whole numbers are refused (see ``encode_value``)."""
        return False

    def _max_depth(self) -> int:
        """How deep the store lets dicts and lists nest (the codec's own limit unless the
        database behind it allows fewer levels)."""
        return MAX_DEPTH
