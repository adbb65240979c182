"""URLs of the API benchmark's server: the prism API and the hand-written limit view."""

import json

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import include, path

from prism_storage import storages


async def raw_record(request: HttpRequest, alias: str, key: str) -> HttpResponse:
    """The limit: the same store call as the API, with no access checks nor validation
    beyond what the backend does itself."""
    store = storages[alias]
    if request.method == "PUT":
        value = json.loads(request.body)
        await store.set(key, value)
        return JsonResponse({"key": key, "value": value})
    value = await store.get(key)
    if value is None:
        return JsonResponse({"error": "not found"}, status=404)
    return JsonResponse({"key": key, "value": value})


urlpatterns = [
    path("prism/", include("prism_storage.urls")),
    path("raw/<str:alias>/<path:key>", raw_record),
]
