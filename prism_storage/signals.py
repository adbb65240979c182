"""Signal receivers: the storage handler follows ``override_settings``."""

from __future__ import annotations

from typing import Any

from django.core.signals import setting_changed
from django.dispatch import receiver

from .handler import storages


@receiver(setting_changed)
def reset_storages(*, setting: str, **kwargs: Any) -> None:
    if setting == "PRISM_STORAGE":
        storages.reset()
