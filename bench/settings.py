"""Django settings for the benchmarks: SQLite and the local PostgreSQL."""

import os
import tempfile

SECRET_KEY = "bench-only"
USE_TZ = True
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "prism_storage"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("PRISM_BENCH_PG_DB", "prism_bench"),
        "USER": os.environ.get("PRISM_BENCH_PG_USER", "postgres"),
        "HOST": os.environ.get("PRISM_BENCH_PG_HOST", "127.0.0.1"),
        "PORT": os.environ.get("PRISM_BENCH_PG_PORT", "5432"),
    },
    "sqlite": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.path.join(tempfile.gettempdir(), "prism-bench.sqlite3"),
    },
    # The same file as "sqlite" (bench_appends points both at its scratch file), set up
    # as Django's docs advise against "database is locked": transactions begun IMMEDIATE
    # (SQLite has no SELECT ... FOR UPDATE, so a locked read-modify-write takes the write
    # lock at BEGIN instead) and a longer wait for the lock than the default 5 s.
    "sqlite_immediate": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.path.join(tempfile.gettempdir(), "prism-bench.sqlite3"),
        "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 60},
    },
}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
PRISM_STORAGE = {"default": {"BACKEND": "orm"}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
