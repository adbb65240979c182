"""The demo's ASGI application, served by uvicorn (``scripts/demo.sh``).

With ``DEBUG`` on, static files (the admin's styles and scripts) are served by the
application itself, from the apps' ``static/`` folders, as ``runserver`` would: the demo
needs no ``collectstatic`` and no web server in front. A deployment with ``DEBUG`` off
serves them the usual way (``collectstatic``, then the web server or a CDN).
"""

import os

from django.conf import settings
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_project.settings")
application = get_asgi_application()
if settings.DEBUG:
    application = ASGIStaticFilesHandler(application)
