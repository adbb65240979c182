"""The store browser's pages: the :class:`StoreBrowser` views and their URLs.

Pages (all under the ``Record`` admin, each wrapped in ``admin_site.admin_view``):
the store list with health, a store's keys (cursor pages, prefix search, bulk delete),
a record, its edit form, a delete confirmation, and similarity search. Access follows
:mod:`prism_storage.access`, as in the JSON API. The views are synchronous and reach the
async backends through :class:`~prism_storage.sync.SyncStore`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.http import urlencode

from ..access import (
    Operation,
    check_store_access,
    has_model_permission,
    key_allowed,
    visible_aliases,
    visible_keys,
)
from ..backends.base import BaseStorageBackend
from ..codec import encoded_size
from ..exceptions import ConfigurationError, InvalidValueError, PrismStorageError
from ..forms import RecordValueForm, SearchForm, pretty_json
from ..handler import storages
from ..sync import SyncStore
from .editing import read_for_edit, save_record
from .failures import failure_message
from .health import ping_all

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

__all__ = ["StoreBrowser"]

PAGE_SIZE = 50
PREVIEW_CHARS = 120
TEMPLATES = "admin/prism_storage/"


class StoreBrowser:
    """The browser's views, bound to the ``Record`` model admin."""

    def __init__(self, model_admin: ModelAdmin[Any]) -> None:
        self.model_admin = model_admin
        self.admin_site = model_admin.admin_site

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        return [
            path("stores/", wrap(self.stores_view), name="prism_storage_stores"),
            path(
                "stores/<str:alias>/", wrap(self.records_view), name="prism_storage_store_records"
            ),
            path(
                "stores/<str:alias>/record/",
                wrap(self.record_view),
                name="prism_storage_store_record",
            ),
            path(
                "stores/<str:alias>/record/edit/",
                wrap(self.edit_view),
                name="prism_storage_store_record_edit",
            ),
            path(
                "stores/<str:alias>/delete/",
                wrap(self.delete_view),
                name="prism_storage_store_delete",
            ),
            path(
                "stores/<str:alias>/search/",
                wrap(self.search_view),
                name="prism_storage_store_search",
            ),
        ]

    # ------------------------------------------------------------------ helpers

    def _context(self, request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
        return {
            **self.admin_site.each_context(request),
            "opts": self.model_admin.model._meta,
            "title": title,
            **extra,
        }

    def _open(self, request: HttpRequest, alias: str, operation: Operation) -> BaseStorageBackend:
        """The store ``alias`` if the user may do ``operation`` on it (else 404 / 403)."""
        problem = check_store_access(request.user, alias, operation)
        if problem == "unknown_store":
            raise Http404(f"No store {alias!r} is configured.")
        if problem is not None:
            raise PermissionDenied
        try:
            return storages[alias]
        except ConfigurationError as exc:
            raise Http404(failure_message(exc)) from exc

    def _store_context(
        self, request: HttpRequest, alias: str, store: BaseStorageBackend
    ) -> dict[str, Any]:
        user = request.user
        return {
            "alias": alias,
            "store": store,
            "backend": store.backend_name,
            "can_change": check_store_access(user, alias, "change") is None,
            "can_delete": check_store_access(user, alias, "delete") is None,
            "records_url": self._url("prism_storage_store_records", alias),
        }

    @staticmethod
    def _url(name: str, alias: str, **query: Any) -> str:
        url = reverse(f"admin:{name}", kwargs={"alias": alias})
        query = {k: v for k, v in query.items() if v not in (None, "")}
        return f"{url}?{urlencode(query, doseq=True)}" if query else url

    def _key_param(self, request: HttpRequest, alias: str) -> str:
        """The record ``?key=`` the user may view (a hidden key is a 404, like a missing one)."""
        key = request.GET.get("key", "")
        if not key or not key_allowed(request.user, alias, "view", key):
            raise Http404("No record has this key." if key else "No key given.")
        return key

    @staticmethod
    def _require_key(request: HttpRequest, alias: str, operation: Operation, key: str) -> None:
        """Refuse (403) ``operation`` on a key a per-key access policy does not allow."""
        if not key_allowed(request.user, alias, operation, key):
            raise PermissionDenied

    # -------------------------------------------------------------------- pages

    def stores_view(self, request: HttpRequest) -> HttpResponse:
        if not has_model_permission(request.user, "view"):
            raise PermissionDenied
        rows: list[dict[str, Any]] = []
        healthy: dict[str, BaseStorageBackend] = {}
        for alias in visible_aliases(request.user):
            row: dict[str, Any] = {
                "alias": alias,
                "url": self._url("prism_storage_store_records", alias),
            }
            try:
                store = storages[alias]
            except ConfigurationError as exc:
                row.update(backend="?", health=failure_message(exc), ok=False)
            else:
                healthy[alias] = store
                row.update(
                    backend=store.backend_name,
                    description=store.describe(),
                    capabilities=[k for k, v in store.capabilities.items() if v],
                )
            rows.append(row)
        health = ping_all(healthy)
        for row in rows:
            if row["alias"] in health:
                found = health[row["alias"]]
                row.update(ok=found.ok, health=found.label)
        return TemplateResponse(
            request, TEMPLATES + "stores.html", self._context(request, "Stores", rows=rows)
        )

    def records_view(self, request: HttpRequest, alias: str) -> HttpResponse:
        store = self._open(request, alias, "view")
        context = self._context(
            request, f"Store “{alias}”", **self._store_context(request, alias, store)
        )
        prefix = request.GET.get("q", "")
        cursor = request.GET.get("cursor") or None
        context.update(
            capabilities=sorted(store.capabilities.items()),
            health=ping_all({alias: store})[alias],
            prefix=prefix,
            listing=store.supports_listing,
            search_url=self._url("prism_storage_store_search", alias),
            record_url=self._url("prism_storage_store_record", alias),
            edit_url=self._url("prism_storage_store_record_edit", alias),
            delete_url=self._url("prism_storage_store_delete", alias),
        )
        if store.supports_listing:
            try:
                sync = SyncStore(store)
                page = sync.keys(prefix, PAGE_SIZE, cursor)
                # Hidden keys are left out (the page may be short; its cursor still holds).
                shown = visible_keys(request.user, alias, page.keys)
                values = sync.get_many(shown)
            except (PrismStorageError, ConfigurationError) as exc:
                context["error"] = failure_message(exc)
            else:
                context["rows"] = [self._row(alias, key, values.get(key)) for key in shown]
                context["next_url"] = page.cursor and self._url(
                    "prism_storage_store_records", alias, q=prefix, cursor=page.cursor
                )
                context["first_url"] = cursor and self._url(
                    "prism_storage_store_records", alias, q=prefix
                )
        return TemplateResponse(request, TEMPLATES + "store_records.html", context)

    def _row(self, alias: str, key: str, value: dict[str, Any] | None) -> dict[str, Any]:
        text = "" if value is None else json.dumps(value, ensure_ascii=False)
        return {
            "key": key,
            "url": self._url("prism_storage_store_record", alias, key=key),
            "size": 0 if value is None else encoded_size(value),
            "preview": text[:PREVIEW_CHARS] + ("…" if len(text) > PREVIEW_CHARS else ""),
        }

    def record_view(self, request: HttpRequest, alias: str) -> HttpResponse:
        store = self._open(request, alias, "view")
        key = self._key_param(request, alias)
        context = self._context(request, key, **self._store_context(request, alias, store))
        try:
            found = read_for_edit(SyncStore(store), key)
        except (PrismStorageError, ConfigurationError) as exc:
            context["error"] = failure_message(exc)
        else:
            context["value_json"] = pretty_json(found["value"])
            context["record"] = found.get("record")
        context.update(
            key=key,
            edit_url=self._url("prism_storage_store_record_edit", alias, key=key),
            delete_url=self._url("prism_storage_store_delete", alias, key=key),
        )
        return TemplateResponse(request, TEMPLATES + "record_detail.html", context)

    def edit_view(self, request: HttpRequest, alias: str) -> HttpResponse:
        """Edit the record ``?key=``, or add a record when no key is given."""
        store = self._open(request, alias, "change")
        sync = SyncStore(store)
        key = request.GET.get("key", "")
        adding = not key
        if not adding:
            self._key_param(request, alias)  # a hidden record is a 404 here too
            self._require_key(request, alias, "change", key)
        context = self._context(
            request,
            "Add record" if adding else f"Change {key}",
            **self._store_context(request, alias, store),
        )
        initial: dict[str, Any] = {"key": key, "value": {}, "version": ""}
        if not adding and request.method != "POST":
            try:
                found = read_for_edit(sync, key)
                initial.update(value=found["value"], version=found.get("version", ""))
            except (PrismStorageError, ConfigurationError) as exc:
                initial["value"] = None
                context["error"] = failure_message(exc)
        form = RecordValueForm(
            request.POST if request.method == "POST" else None, initial=initial, adding=adding
        )
        if request.method == "POST" and form.is_valid():
            key = form.cleaned_data["key"]
            self._require_key(request, alias, "change", key)
            try:
                save_record(sync, form, adding)
            except InvalidValueError as exc:
                form.add_error("value", str(exc))
            except (PrismStorageError, ConfigurationError) as exc:
                context["error"] = failure_message(exc)
            else:
                if not form.errors:
                    messages.success(request, f"Saved the record “{key}”.")
                    return HttpResponseRedirect(
                        self._url("prism_storage_store_record", alias, key=key)
                    )
        cancel_url = (
            context["records_url"]
            if adding
            else self._url("prism_storage_store_record", alias, key=key)
        )
        context.update(form=form, key=key, adding=adding, cancel_url=cancel_url)
        return TemplateResponse(request, TEMPLATES + "record_form.html", context)

    def delete_view(self, request: HttpRequest, alias: str) -> HttpResponse:
        """Confirm, then delete, the records named by ``key`` (GET or POST, repeatable)."""
        store = self._open(request, alias, "delete")
        data = request.POST if request.method == "POST" else request.GET
        keys = list(dict.fromkeys(k for k in data.getlist("key") if k))
        records_url = self._url("prism_storage_store_records", alias)
        if not keys:
            messages.warning(request, "Select the records to delete first.")
            return HttpResponseRedirect(records_url)
        for key in keys:  # every key of a bulk delete, or none is deleted
            self._require_key(request, alias, "delete", key)
        context = self._context(
            request, "Are you sure?", **self._store_context(request, alias, store), keys=keys
        )
        if request.method == "POST" and request.POST.get("confirm") == "yes":
            try:
                SyncStore(store).delete_many(keys)
            except (PrismStorageError, ConfigurationError) as exc:
                context["error"] = failure_message(exc)
            else:
                messages.success(request, f"Deleted {len(keys)} record(s) from “{alias}”.")
                return HttpResponseRedirect(records_url)
        return TemplateResponse(request, TEMPLATES + "delete_confirmation.html", context)

    def search_view(self, request: HttpRequest, alias: str) -> HttpResponse:
        store = self._open(request, alias, "view")
        context = self._context(
            request, f"Search “{alias}”", **self._store_context(request, alias, store)
        )
        text_search = store.supports_text_search
        form = SearchForm(request.GET or None, text_search=text_search)
        context.update(form=form, searchable=store.supports_search)
        if store.supports_search and form.is_valid():
            data = form.cleaned_data
            query = data.get("text") or data["embedding"]
            try:
                results = SyncStore(store).search(query, data["limit"], filter=data["filter"])
            except (PrismStorageError, ConfigurationError) as exc:
                context["error"] = failure_message(exc)
            else:
                shown = set(visible_keys(request.user, alias, [r["key"] for r in results]))
                context["results"] = [
                    {**self._row(alias, r["key"], r.get("value")), "score": r["score"]}
                    for r in results
                    if r["key"] in shown
                ]
        return TemplateResponse(request, TEMPLATES + "search.html", context)
