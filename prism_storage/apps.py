from __future__ import annotations

from django.apps import AppConfig


class PrismStorageConfig(AppConfig):
    name = "prism_storage"
    verbose_name = "Prism storage"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks, signals  # noqa: F401 - registers checks and receivers
