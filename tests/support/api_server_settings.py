"""Settings of the uvicorn server in the real-server API test (see tests/support/api_server.py)."""

import json
import os

from tests.settings import *  # noqa: F403

DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["PRISM_API_SERVER_DB"]},
}
PRISM_STORAGE = json.loads(os.environ["PRISM_API_SERVER_STORES"])
CSRF_FAILURE_VIEW = "prism_storage.views.csrf_failure"
