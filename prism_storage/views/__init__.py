"""The async JSON API over ``storages`` (mounted by ``include("prism_storage.urls")``).

Every answer is JSON. Errors share one shape, ``{"error": {"code": ..., "message": ...}}``,
with the status codes listed in :data:`ERROR_STATUS`. Requests are authorized before
anything else is read (see :mod:`prism_storage.access`), bodies are checked against
``PRISM_STORAGE_API_MAX_BODY`` before they are parsed, and nothing is written unless the
whole request is valid.

One module per concern: :mod:`.errors` (codes and the error shape), :mod:`.parsing`
(bodies and parameters), :mod:`.conditions` (ETags and preconditions), :mod:`.endpoint`
(method, CSRF, access and errors around every view), :mod:`.records`, :mod:`.lists` and
:mod:`.search` (the views), :mod:`.openapi` and :mod:`.openapi_components` (the OpenAPI
description) and :mod:`.schema` (the view serving it).
"""

from __future__ import annotations

from ..backends.base import BaseStorageBackend
from .errors import ERROR_STATUS, csrf_failure
from .lists import append, pop
from .records import record, record_list, store_list
from .schema import schema
from .search import search

__all__ = [
    "ERROR_STATUS",
    "append",
    "csrf_failure",
    "pop",
    "record",
    "record_list",
    "schema",
    "search",
    "store_list",
    "supports_text_search",
]


def supports_text_search(store: BaseStorageBackend) -> bool:
    """Whether ``store.search()`` takes a text (``store.supports_text_search``)."""
    return store.supports_text_search
