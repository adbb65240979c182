"""The Django admin: the ``Record`` model of ``orm`` stores, and a browser of every store.

The store browser (:mod:`prism_storage.browser`) is added to the ``Record`` admin through
``get_urls()``; its pages are linked from the record list, and the admin index lists it as
“Stores” (the :class:`~prism_storage.models.Store` entry, whose list page is the browser).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.template.defaultfilters import filesizeformat
from django.urls import URLPattern, reverse
from django.utils import timezone
from django.utils.html import format_html

from .access import has_model_permission
from .backends.versions import new_version
from .browser import StoreBrowser
from .codec import encoded_size
from .forms import PrettyJSONField, clean_record_key, pretty_json
from .models import Record, Store

# PrettyJSONField is re-exported: it lived here before the forms module.
__all__ = ["PrettyJSONField", "RecordAdmin", "RecordForm", "StoreAdmin"]

# Django's classes are generic only in its type stubs; at run time they take no parameters.
if TYPE_CHECKING:
    _RecordModelForm = forms.ModelForm[Record]
    _RecordModelAdmin = admin.ModelAdmin[Record]
    _StoreModelAdmin = admin.ModelAdmin[Store]
else:
    _RecordModelForm = forms.ModelForm
    _RecordModelAdmin = admin.ModelAdmin
    _StoreModelAdmin = admin.ModelAdmin


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
        return filesizeformat(encoded_size(obj.value))

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


@admin.register(Store)
class StoreAdmin(_StoreModelAdmin):
    """“Stores” on the admin index: its list page is the store browser's.

    Who sees the entry follows the browser's rule (view or change permission on records);
    nothing is added, changed or deleted through this entry itself.
    """

    def has_module_permission(self, request: HttpRequest) -> bool:
        return has_model_permission(request.user, "view")

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return has_model_permission(request.user, "view")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponseRedirect:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return HttpResponseRedirect(reverse(f"{self.admin_site.name}:prism_storage_stores"))
