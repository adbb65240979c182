"""``GET api/schema/``: the API's OpenAPI 3.1 description (:mod:`.openapi`).

Public, like a login page: it describes the API's shapes only, never a store's alias,
options or records, and tools (code generators, test runners) load it without a session.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase, JsonResponse

from .errors import error_response
from .openapi import openapi_document

__all__ = ["schema"]

#: The path of this view below where ``prism_storage.urls`` is included.
SCHEMA_PATH = "api/schema/"

MEDIA_TYPE = "application/vnd.oai.openapi+json"


async def schema(request: HttpRequest) -> HttpResponseBase:
    if request.method not in ("GET", "HEAD"):
        response = error_response("method_not_allowed", f"{request.method} is not allowed here.")
        response["Allow"] = "GET, HEAD"
        return response
    # "/prism/api/schema/" -> "/prism": where this project includes the URLs.
    server = request.path.removesuffix(SCHEMA_PATH).rstrip("/")
    document = openapi_document(server=server, session_cookie=settings.SESSION_COOKIE_NAME)
    return JsonResponse(document, content_type=MEDIA_TYPE)


# Part of the API (a CSRF failure elsewhere would answer in its shape), and exempt from the
# CSRF check: it changes nothing, so every other method is a plain 405 in the JSON shape.
schema.prism_api = True  # type: ignore[attr-defined]
schema.csrf_exempt = True  # type: ignore[attr-defined]
