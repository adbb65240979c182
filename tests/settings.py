"""Settings for the test suite: SQLite as ``default``, a real PostgreSQL as ``pg`` and a
real MariaDB (or MySQL) as ``mariadb``.

The PostgreSQL and MariaDB test database names carry the process id so that concurrent
test runs on one server never collide.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "prism_storage",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "tests.urls"

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

PG_HOST = os.environ.get("PRISM_TEST_PG_HOST", "127.0.0.1")
PG_PORT = os.environ.get("PRISM_TEST_PG_PORT", "5432")
MYSQL_HOST = os.environ.get("PRISM_TEST_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = os.environ.get("PRISM_TEST_MYSQL_PORT", "3306")

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": BASE_DIR / "test.sqlite3",
        "TEST": {"NAME": f"/tmp/prism-test-{os.getpid()}.sqlite3"},
    },
    "pg": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "postgres",
        "USER": os.environ.get("PRISM_TEST_PG_USER", "postgres"),
        "HOST": PG_HOST,
        "PORT": PG_PORT,
        "TEST": {"NAME": f"test_prism_{os.getpid()}"},
    },
    "mariadb": {
        "ENGINE": "django.db.backends.mysql",
        # A database every server has, as "postgres" is for the pg alias (Django 6 system
        # checks connect to MySQL databases); the tests run in their own, TEST["NAME"].
        "NAME": "mysql",
        "USER": os.environ.get("PRISM_TEST_MYSQL_USER", "root"),
        "PASSWORD": os.environ.get("PRISM_TEST_MYSQL_PASSWORD", ""),
        "HOST": MYSQL_HOST,
        "PORT": MYSQL_PORT,
        "OPTIONS": {"connect_timeout": 5},
        "TEST": {
            "NAME": f"test_prism_{os.getpid()}",
            # Case- and space-insensitive, as MariaDB's default is: whatever the server's
            # own default, the tests prove keys stay exact over such a database.
            "CHARSET": "utf8mb4",
            "COLLATION": "utf8mb4_general_ci",
            "DEPENDENCIES": [],
        },
    },
    # A PostgreSQL alias nothing answers (port 1 on loopback refuses at once): the outage
    # tests of the orm backend. As a test mirror it is never created nor flushed.
    "unreachable": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "absent",
        "USER": "postgres",
        "HOST": "127.0.0.1",
        "PORT": "1",
        "OPTIONS": {"connect_timeout": 2},
        "TEST": {"MIRROR": "pg"},
    },
    # The same for MariaDB.
    "mariadb_unreachable": {
        "ENGINE": "django.db.backends.mysql",
        "NAME": "absent",
        "USER": "root",
        "HOST": "127.0.0.1",
        "PORT": "1",
        "OPTIONS": {"connect_timeout": 2},
        "TEST": {"MIRROR": "mariadb"},
    },
}

# No model is migrated to the aliases nothing answers: Django's system checks (which, from
# Django 6, look at every database a model may be migrated to, and on MySQL connect to
# learn the server's version) leave them alone, as every command in a test subprocess runs
# the checks.
DATABASE_ROUTERS = ["tests.support.routers.UnreachableAliases"]

PRISM_STORAGE = {"default": {"BACKEND": "orm"}}

STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
