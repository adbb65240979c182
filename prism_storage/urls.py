"""The JSON API: ``path("prism/", include("prism_storage.urls"))``."""

from django.urls import path, register_converter

from . import views


class AnyKeyConverter:
    """Like ``path`` but also matching control characters, so that a key containing one
    reaches the view and is refused there as an invalid key (400), not as an unknown URL."""

    regex = r"[\s\S]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(AnyKeyConverter, "prism_key")

app_name = "prism_storage"

urlpatterns = [
    path("api/schema/", views.schema, name="api-schema"),
    path("api/stores/", views.store_list, name="api-stores"),
    path("api/stores/<str:alias>/records/", views.record_list, name="api-records"),
    path("api/stores/<str:alias>/records/<prism_key:key>", views.record, name="api-record"),
    path("api/stores/<str:alias>/search", views.search, name="api-search"),
    # The operation comes before the key, so that a key may contain any "/".
    path("api/stores/<str:alias>/append/<prism_key:key>", views.append, name="api-append"),
    path("api/stores/<str:alias>/pop/<prism_key:key>", views.pop, name="api-pop"),
]
