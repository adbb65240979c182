"""Settings of the prism-storage demo: an agent platform on embedded parts by default.

Configure with environment variables or a ``.env`` file next to manage.py:
``DATABASE_URL`` (default SQLite), ``REDIS_URL`` (adds a ``cache`` store),
``SUPABASE_URL`` + ``SUPABASE_KEY`` (adds a ``supabase`` store), ``PRISM_FILES_PATH`` and
``PRISM_VECTOR_PATH`` (where the file store and the embedded vector store keep their data).
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env(DEBUG=(bool, True))
environ.Env.read_env(BASE_DIR / ".env")

DEBUG = env("DEBUG")
SECRET_KEY = env("SECRET_KEY", default="demo-only-insecure-key")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "prism_storage",
    "demo_project",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "demo_project.urls"
ASGI_APPLICATION = "demo_project.asgi.application"
WSGI_APPLICATION = "demo_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'demo.sqlite3'}")}

PRISM_STORAGE = {
    # Conversations in the project's database.
    "default": {"BACKEND": "orm"},
    # Agent state as JSON files.
    "files": {
        "BACKEND": "file",
        "OPTIONS": {"data_dir": env("PRISM_FILES_PATH", default=str(BASE_DIR / "agent-data"))},
    },
    # Long-term memories, searchable by meaning: embedded Qdrant and an offline model.
    "memory": {
        "BACKEND": "vector",
        "OPTIONS": {
            "provider": "qdrant",
            "dimensions": 384,
            "path": env("PRISM_VECTOR_PATH", default=str(BASE_DIR / "agent-vectors")),
            "embedder": "prism_storage.embeddings.minilm_async",
        },
    },
}

if env("REDIS_URL", default=""):
    # Short-lived working memory, expiring after an hour.
    PRISM_STORAGE["cache"] = {
        "BACKEND": "redis",
        "OPTIONS": {"url": env("REDIS_URL"), "ttl": 3600},
    }

if env("SUPABASE_URL", default="") and env("SUPABASE_KEY", default=""):
    PRISM_STORAGE["supabase"] = {
        "BACKEND": "supabase",
        "OPTIONS": {"url": env("SUPABASE_URL"), "key": env("SUPABASE_KEY")},
    }

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGIN_URL = "/admin/login/"
# CSRF failures of the JSON API answer in its JSON error shape (code "csrf_failed"); other
# pages keep Django's own page.
CSRF_FAILURE_VIEW = "prism_storage.views.csrf_failure"
