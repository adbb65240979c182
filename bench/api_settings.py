"""Django settings of the API benchmark's uvicorn server (see bench/bench_api.py).

Everything variable comes from the environment the benchmark sets for the subprocess.
"""

import json
import os

SECRET_KEY = "bench-only"
DEBUG = False
USE_TZ = True
ALLOWED_HOSTS = ["127.0.0.1"]
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "prism_storage",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "bench.api_urls"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("PRISM_BENCH_API_DB", "prism_bench_api"),
        "USER": os.environ.get("PRISM_BENCH_PG_USER", "postgres"),
        "HOST": os.environ.get("PRISM_BENCH_PG_HOST", "127.0.0.1"),
        "PORT": os.environ.get("PRISM_BENCH_PG_PORT", "5432"),
        # Under ASGI every request runs its ORM calls in a thread of its own: a pool keeps
        # that from opening one PostgreSQL connection per request.
        "OPTIONS": {"pool": {"min_size": 4, "max_size": 16}},
    }
}
SESSION_ENGINE = os.environ.get("PRISM_BENCH_SESSION_ENGINE", "django.contrib.sessions.backends.db")
PRISM_STORAGE = json.loads(os.environ.get("PRISM_BENCH_STORES", '{"default": {"BACKEND": "orm"}}'))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django.request": {"handlers": ["console"], "level": "ERROR"}},
}
