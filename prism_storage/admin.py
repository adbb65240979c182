"""The Django admin: the ``Record`` model of ``orm`` stores, and a browser of every store.

The store browser (:mod:`prism_storage.browser`) is added to the ``Record`` admin through
``get_urls()``; its pages are linked from the record list.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.template.defaultfilters import filesizeformat
from django.urls import URLPattern
from django.utils import timezone
from django.utils.html import format_html

from .backends.versions import new_version
from .browser import StoreBrowser
from .forms import PrettyJSONField, clean_record_key, pretty_json
from .models import Record

# PrettyJSONField is re-exported: it lived here before the forms module.
__all__ = ["PrettyJSONField", "RecordAdmin", "RecordForm"]

# Django's classes are generic only in its type stubs; at run time they take no parameters.
if TYPE_CHECKING:
    _RecordModelForm = forms.ModelForm[Record]
    _RecordModelAdmin = admin.ModelAdmin[Record]
else:
    _RecordModelForm = forms.ModelForm
    _RecordModelAdmin = admin.ModelAdmin


class RecordForm(_RecordModelForm):
    key = forms.CharField(max_length=512, strip=False)
    value = PrettyJSONField()

    class Meta:
        model = Record
        fields = ["namespace", "key", "value", "expires_at"]

    def clean_key(self) -> str:
        return clean_record_key(self.cleaned_data["key"])


class ExpiryFilter(admin.SimpleListFilter):
    title = "expiry"
    parameter_name = "expiry"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("never", "Never expires"), ("live", "Expires later"), ("expired", "Expired")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Record]) -> QuerySet[Record]:
        now = timezone.now()
        if self.value() == "never":
            return queryset.filter(expires_at__isnull=True)
        if self.value() == "live":
            return queryset.filter(expires_at__gt=now)
        if self.value() == "expired":
            return queryset.filter(Q(expires_at__lte=now))
        return queryset


@admin.register(Record)
class RecordAdmin(_RecordModelAdmin):
    form = RecordForm
    list_display = ("key", "namespace", "size", "updated_at", "expires_at")
    list_filter = ("namespace", ExpiryFilter)
    search_fields = ("key",)
    readonly_fields = ("pretty_value", "created_at", "updated_at")
    change_list_template = "admin/prism_storage/record/change_list.html"

    def __init__(self, model: type[Record], admin_site: admin.AdminSite) -> None:
        super().__init__(model, admin_site)
        self.browser = StoreBrowser(self)

    def get_urls(self) -> list[URLPattern]:
        # The browser's pages come first: the model admin ends with a catch-all pattern.
        return self.browser.get_urls() + super().get_urls()

    def get_fields(self, request: HttpRequest, obj: Record | None = None) -> list[Any]:
        if obj is not None and not self.has_change_permission(request, obj):
            return ["namespace", "key", "pretty_value", "created_at", "updated_at", "expires_at"]
        fields = ["namespace", "key", "value", "expires_at"]
        return fields if obj is None else [*fields, "created_at", "updated_at"]

    @admin.display(description="size")
    def size(self, obj: Record) -> str:
        encoded = json.dumps(obj.value, ensure_ascii=False, separators=(",", ":"))
        return filesizeformat(len(encoded.encode()))

    @admin.display(description="value")
    def pretty_value(self, obj: Record) -> str:
        return format_html('<pre class="prism-json">{}</pre>', pretty_json(obj.value))

    def save_model(self, request: HttpRequest, obj: Record, form: Any, change: bool) -> None:
        now = timezone.now()
        if not change:
            obj.created_at = now
        obj.updated_at = now
        obj.version = new_version()  # every write makes a new version, here as in the store
        super().save_model(request, obj, form, change)
