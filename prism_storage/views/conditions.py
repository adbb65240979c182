"""HTTP conditional requests over record versions: ``ETag``, ``If-Match``, ``If-None-Match``.

A record's version is its strong entity tag (``ETag: "<version>"``). A write's
precondition becomes a condition of the store's own conditional write, checked and
applied as one operation, never a read followed by a write. A store without conditional
writes cannot honour one, so a request carrying one is refused (501), not carried out
unconditionally.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.http import HttpRequest, HttpResponse
from django.utils.http import http_date

from ..backends.base import BaseStorageBackend
from ..backends.versions import Record
from .errors import ApiError

__all__ = [
    "Preconditions",
    "not_modified",
    "preconditions",
    "refuse_preconditions",
    "set_validators",
    "tag",
]

# One entity tag of RFC 9110 §8.8.3: optional W/ and a quoted string of etagc characters.
_ENTITY_TAG = re.compile(r'\s*(W/)?"([\x21\x23-\x7e\x80-\xff]*)"\s*(?:,|$)')
#: Preconditions on dates: refused, since a second-resolution date cannot tell apart two
#: writes within one second; the ETag conditions can.
_DATE_CONDITIONS = ("HTTP_IF_UNMODIFIED_SINCE",)


def tag(version: str) -> str:
    """The ``ETag`` header value of a record version."""
    return f'"{version}"'


def set_validators(response: HttpResponse, record: Record) -> HttpResponse:
    response["ETag"] = tag(record.version)
    response["Last-Modified"] = http_date(record.updated_at.timestamp())
    return response


def _entity_tags(header: str, name: str) -> list[tuple[bool, str]]:
    """``[(weak, opaque tag)]`` of a list header; ``[]`` stands for ``*``."""
    if header.strip() == "*":
        return []
    tags, position = [], 0
    while position < len(header):
        match = _ENTITY_TAG.match(header, position)
        if match is None or match.end() == position:
            raise ApiError("invalid_header", f"{name} must be * or a list of entity tags.")
        tags.append((match.group(1) is not None, match.group(2)))
        position = match.end()
    if not tags:
        raise ApiError("invalid_header", f"{name} must be * or a list of entity tags.")
    return tags


@dataclass(frozen=True)
class Preconditions:
    """What a write request asks of the record's current state."""

    #: ``If-Match``: ``None`` (no condition), ``"*"`` (any record), or the versions it
    #: accepts (weak tags never match: ``If-Match`` compares strongly).
    if_match: str | frozenset[str] | None = None
    #: ``If-None-Match: *``: only if there is no record.
    if_absent: bool = False

    @property
    def single_version(self) -> str | None:
        """The one version ``If-Match`` names, when it names exactly one."""
        if isinstance(self.if_match, frozenset) and len(self.if_match) == 1:
            return next(iter(self.if_match))
        return None

    def admits(self, record: Record | None) -> bool:
        """Whether ``If-Match`` holds for ``record`` (``None``: absent)."""
        if record is None:
            return self.if_match is None
        return self.if_match in (None, "*") or record.version in self.if_match


def preconditions(
    request: HttpRequest, store: BaseStorageBackend, *, absent_allowed: bool = True
) -> Preconditions:
    """The ``If-Match`` / ``If-None-Match: *`` of a write, checked before any I/O.

    501 ``precondition_unsupported`` when the store cannot write conditionally.
    """
    _refuse_date_conditions(request)
    if_match = request.headers.get("If-Match")
    if_none_match = request.headers.get("If-None-Match")
    if if_match is None and if_none_match is None:
        return Preconditions()
    if if_match is not None and if_none_match is not None:
        raise ApiError("invalid_header", "Send If-Match or If-None-Match, not both.")
    if if_none_match is not None and (not absent_allowed or if_none_match.strip() != "*"):
        raise ApiError(
            "invalid_header",
            "If-None-Match is only taken as 'If-None-Match: *' on PUT (create only).",
        )
    tags = [] if if_match is None else _entity_tags(if_match, "If-Match")
    if not store.supports_conditional_writes:
        raise ApiError(
            "precondition_unsupported",
            f"The {store.backend_name!r} backend cannot write conditionally; "
            "send the request without If-Match / If-None-Match to write unconditionally.",
        )
    if if_none_match is not None:
        return Preconditions(if_absent=True)
    strong = frozenset(opaque for weak, opaque in tags if not weak)
    return Preconditions(if_match="*" if not tags else strong)


def refuse_preconditions(request: HttpRequest, what: str) -> None:
    """Refuse any precondition on a request that takes none (400, never ignored)."""
    _refuse_date_conditions(request)
    for header in ("If-Match", "If-None-Match"):
        if header in request.headers:
            raise ApiError("invalid_header", f"{what} takes no {header}: it is atomic itself.")


def _refuse_date_conditions(request: HttpRequest) -> None:
    for meta in _DATE_CONDITIONS:
        if meta in request.META:
            raise ApiError(
                "invalid_header", "If-Unmodified-Since is not supported; send If-Match instead."
            )


def not_modified(request: HttpRequest, record: Record) -> bool:
    """Whether a GET's ``If-None-Match`` names the record's version (weak comparison)."""
    header = request.headers.get("If-None-Match")
    if header is None:
        return False
    tags = _entity_tags(header, "If-None-Match")
    return not tags or any(opaque == record.version for _, opaque in tags)
