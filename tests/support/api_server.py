"""The ASGI application of the real-server API test (tests/reliability/test_api_server.py).

uvicorn imports it in its own process. Django settings are this suite's, with a private
SQLite database and the stores from the environment; on import the database is migrated
and one superuser (``admin``, password ``PRISM_API_SERVER_PASSWORD``) is created.
"""

import os

# Not setdefault: the test runner's environment names the suite's own settings.
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.support.api_server_settings"

import django

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402
from django.core.management import call_command  # noqa: E402

call_command("migrate", verbosity=0, interactive=False)
User.objects.create_superuser("admin", password=os.environ["PRISM_API_SERVER_PASSWORD"])

application = get_asgi_application()
