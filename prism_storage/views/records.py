"""The store list and the record views."""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, HttpResponseNotModified, JsonResponse

from ..access import visible_aliases, visible_keys
from ..backends.base import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, BaseStorageBackend
from ..backends.versions import WriteResult
from ..codec import encode_value
from ..exceptions import ConfigurationError, InvalidKeyError, InvalidValueError
from ..handler import storages
from .conditions import Preconditions, not_modified, preconditions, set_validators, tag
from .endpoint import endpoint, request_alias
from .errors import ApiError
from .parsing import int_parameter, read_json_object, ttl_parameter, valid_key

__all__ = ["capabilities", "record", "record_list", "store_list"]


def capabilities(store: BaseStorageBackend) -> dict[str, bool]:
    """The store's capability flags, with ``text_search``."""
    flags = dict(store.capabilities)
    flags.setdefault("text_search", store.supports_text_search)
    return flags


@endpoint(GET="view")
async def store_list(request: HttpRequest, store: None) -> HttpResponse:
    """``GET stores/``: the stores this user may view, with backend name and capabilities."""
    aliases = await sync_to_async(visible_aliases)(request.user)
    stores: list[dict[str, Any]] = []
    for alias in aliases:
        try:
            instance = storages[alias]
        except ConfigurationError:
            stores.append(
                {
                    "alias": alias,
                    "backend": None,
                    "capabilities": None,
                    "error": "store_misconfigured",
                }
            )
            continue
        stores.append(
            {
                "alias": alias,
                "backend": instance.backend_name,
                "capabilities": capabilities(instance),
            }
        )
    return JsonResponse({"stores": stores})


@endpoint(GET="view", PUT="change", DELETE="delete")
async def record(request: HttpRequest, store: BaseStorageBackend, key: str) -> HttpResponse:
    """``GET | PUT | DELETE stores/<alias>/records/<key>``.

    GET answers ``{"key", "value"}`` or 404. PUT stores the JSON object body as the value
    (``?ttl=seconds`` for stores that support expiry): 201 if the key was new, else 200.
    DELETE answers 204 whether or not the key existed. Where the store keeps versions,
    answers carry the record's ``ETag`` and writes honour ``If-Match`` and
    ``If-None-Match: *`` (see :mod:`.conditions`).
    """
    key = valid_key(key)
    if request.method == "GET":
        return await _read(request, store, key)
    if request.method == "DELETE":
        return await _delete(request, store, key)
    return await _replace(request, store, key)


async def _read(request: HttpRequest, store: BaseStorageBackend, key: str) -> HttpResponse:
    if not store.supports_versions:
        value = await store.get(key)
        if value is None:
            raise ApiError("record_not_found", "No record has this key.")
        return JsonResponse({"key": key, "value": value})
    found = await store.get_record(key)
    if found is None:
        raise ApiError("record_not_found", "No record has this key.")
    if not_modified(request, found):
        return set_validators(HttpResponseNotModified(), found)
    return set_validators(JsonResponse({"key": key, "value": found.value}), found)


async def _delete(request: HttpRequest, store: BaseStorageBackend, key: str) -> HttpResponse:
    conditions = preconditions(request, store, absent_allowed=False)
    if conditions.if_match is None:
        await store.delete(key)
    else:
        await store.remove(key, if_version=await _expected_version(store, key, conditions))
    return HttpResponse(status=204)


async def _replace(request: HttpRequest, store: BaseStorageBackend, key: str) -> HttpResponse:
    conditions = preconditions(request, store)
    ttl = ttl_parameter(request.GET.get("ttl"))
    value = read_json_object(request)
    try:
        encode_value(value)
    except InvalidValueError as exc:
        raise ApiError("invalid_value", str(exc)) from None
    version = None
    if store.supports_versions:
        result = await _write(store, key, value, ttl, conditions)
        created, version = result.created, result.version
    else:
        # No atomic create-or-replace to ask: two creates at once may both answer 201.
        created = not await store.exists(key)
        await store.set(key, value, ttl=ttl)
    response = JsonResponse({"key": key, "value": value}, status=201 if created else 200)
    if created:
        response["Location"] = request.path
    if version is not None:
        response["ETag"] = tag(version)
    return response


async def _write(
    store: BaseStorageBackend,
    key: str,
    value: dict[str, Any],
    ttl: float | None,
    conditions: Preconditions,
) -> WriteResult:
    """One conditional write of the store; a condition that fails raises
    VersionConflictError (412) and nothing is written."""
    if conditions.if_absent:
        return await store.put(key, value, ttl=ttl, if_absent=True)
    if conditions.if_match is None:
        return await store.put(key, value, ttl=ttl)
    version = await _expected_version(store, key, conditions)
    return await store.put(key, value, ttl=ttl, if_version=version)


async def _expected_version(store: BaseStorageBackend, key: str, conditions: Preconditions) -> str:
    """The version to write at for ``If-Match``: the one it names, or, for ``*`` or a
    list, the current version if it is admitted. The write itself checks it again, so a
    change after this read still fails with 412 rather than being overwritten."""
    version = conditions.single_version
    if version is not None:
        return version
    current = await store.get_record(key)
    if current is None or not conditions.admits(current):
        raise ApiError("precondition_failed", "Precondition failed: If-Match does not hold.")
    return current.version


@endpoint(GET="view")
async def record_list(request: HttpRequest, store: BaseStorageBackend) -> HttpResponse:
    """``GET stores/<alias>/records/?prefix=&cursor=&limit=``: one page of keys.

    Pass the returned ``cursor`` back for the next page; it is ``null`` on the last one.
    Under a per-key access policy the page holds only the keys the user may view, so it
    may be shorter than ``limit`` (even empty) while a cursor still follows.
    """
    if not store.supports_listing:
        raise ApiError(
            "unsupported_operation",
            f"Listing is not supported by the {store.backend_name!r} backend.",
        )
    prefix = request.GET.get("prefix", "")
    limit = int_parameter(request.GET.get("limit"), "limit", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    cursor = request.GET.get("cursor") or None
    try:
        page = await store.keys(prefix, limit=limit, cursor=cursor)
    except InvalidKeyError as exc:
        raise ApiError("invalid_parameter", f"prefix: {exc}") from None
    except InvalidValueError as exc:
        raise ApiError("invalid_parameter", str(exc)) from None
    keys = await sync_to_async(visible_keys)(request.user, request_alias(request), page.keys)
    return JsonResponse({"keys": keys, "cursor": page.cursor})
