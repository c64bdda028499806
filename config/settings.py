"""Django settings, read from the environment (see the README's Configuration section)."""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

# Only for local development: settings refuse it when DEBUG is off.
INSECURE_DEFAULT_SECRET_KEY = "django-insecure-development-only-key-do-not-use-in-production"  # noqa: S105


def env_bool(name: str, *, default: bool) -> bool:
    """Return the boolean value of an environment variable, refusing anything ambiguous."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false, yes/no, on/off), not {raw!r}.")


def env_list(name: str, *, default: list[str]) -> list[str]:
    """Return a comma-separated environment variable as a list."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_number(name: str, *, default: float, cast: type = float, minimum: float = 0) -> float:
    """Return a numeric environment variable (``cast`` is int or float), refusing junk and values below minimum."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = cast(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a {cast.__name__}, not {raw!r}.") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {raw!r}.")
    return value


DEBUG = env_bool("DEBUG", default=False)
SECRET_KEY = os.environ.get("SECRET_KEY", INSECURE_DEFAULT_SECRET_KEY)
if not DEBUG and SECRET_KEY == INSECURE_DEFAULT_SECRET_KEY:
    raise ImproperlyConfigured(
        "Refusing to start with DEBUG off and the default SECRET_KEY: set SECRET_KEY "
        "(or DEBUG=1 for local development)."
    )

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"] if DEBUG else [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "accounts",
    "ai_models",
    "chatbot",
    "reports",
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

ROOT_URLCONF = "config.urls"

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
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=60,
    ),
}

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            # Concurrent requests (the dev server's threads, several workers) on the embedded
            # database, which chatbot's migration 0004 puts in WAL mode (readers never block
            # the writer): an IMMEDIATE transaction takes the write lock when it begins, so it
            # waits for another writer instead of failing with "database is locked" when it
            # first writes; and a writer waits up to 20 s for the lock.
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    )

if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # psycopg prepares a statement run five times on a connection, on the cursors that send their
    # values apart from the SQL (the ORM's do not): recording a request uses one, so the server
    # plans that statement once per connection. Off behind a pooler that cannot keep prepared
    # statements across transactions (PgBouncer in transaction mode before 1.21).
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "prepare_threshold", 5 if env_bool("DATABASE_PREPARED_STATEMENTS", default=True) else None
    )

# Optional read replica for the reports: their queries go there, every write and every other
# read stays on the primary (see reports/routers.py).
REPORTS_DATABASE_ALIAS = "default"
if os.environ.get("REPORTS_DATABASE_URL"):
    DATABASES["reports"] = dj_database_url.parse(os.environ["REPORTS_DATABASE_URL"], conn_max_age=60)
    # Tests read the replica's alias from the primary's test database.
    DATABASES["reports"]["TEST"] = {"MIRROR": "default"}
    REPORTS_DATABASE_ALIAS = "reports"
DATABASE_ROUTERS = ["reports.routers.ReportsReplicaRouter"]

AUTH_USER_MODEL = "accounts.User"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The rollups' covering indexes (INCLUDE columns) are for PostgreSQL; on SQLite the same indexes
# without them are enough, and W040 would say so at every start.
SILENCED_SYSTEM_CHECKS = ["models.W040"]

# OpenRouter (see the README's OpenRouter section). A missing key is reported when a call is
# made, not here, so the admin and the reports keep working without one.
OPENROUTER_API_KEY = os.environ.get("OPENROUTER_API_KEY", "")
OPENROUTER_BASE_URL = os.environ.get("OPENROUTER_BASE_URL") or "https://openrouter.ai/api/v1"
# Attribution headers (HTTP-Referer, X-Title) that name the platform on openrouter.ai.
OPENROUTER_APP_URL = os.environ.get("OPENROUTER_APP_URL", "")
OPENROUTER_APP_TITLE = os.environ.get("OPENROUTER_APP_TITLE", "")
OPENROUTER_TIMEOUT = env_number("OPENROUTER_TIMEOUT", default=60.0, minimum=0.001)
OPENROUTER_MAX_RETRIES = int(env_number("OPENROUTER_MAX_RETRIES", default=2, cast=int))
# A Retry-After longer than this (seconds) is not waited for: the error reaches the caller at once.
OPENROUTER_MAX_RETRY_WAIT = env_number("OPENROUTER_MAX_RETRY_WAIT", default=10.0)

# JSON on the chat API, Django's usual page everywhere else.
CSRF_FAILURE_VIEW = "chatbot.api.csrf_failure"

if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", default=True)
