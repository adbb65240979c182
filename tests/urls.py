from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
]

try:  # the JSON API is added by prism_storage.urls
    urlpatterns.append(path("prism/", include("prism_storage.urls")))
except ImportError:  # pragma: no cover - before the API exists
    pass
