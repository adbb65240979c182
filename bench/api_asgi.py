"""The ASGI application uvicorn serves in the API benchmark."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.api_settings")
application = get_asgi_application()
