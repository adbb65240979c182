"""Django settings for reliability worker subprocesses, taken from the environment."""

import json
import os

_config = json.loads(os.environ["PRISM_WORKER_CONFIG"])

SECRET_KEY = "worker-only"
USE_TZ = True
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "prism_storage"]
DATABASES = _config.get("databases") or {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}
}
PRISM_STORAGE = {"default": _config["store"]}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
