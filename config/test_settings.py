"""Settings for the test suite: the real settings with a test-only secret key."""

import os

os.environ.setdefault("SECRET_KEY", "tests-only-secret-key-not-for-any-deployment")

from config.settings import *  # noqa: F403

# Hashing passwords slowly only slows the suite down.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Give each test process its own PostgreSQL test database, so that two suites running at once
# on one server (two checkouts, or a test run beside a benchmark) never drop each other's.
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{os.getpid()}"}  # noqa: F405

# A second alias for the router tests, standing in for a read replica: it mirrors the test
# database. Reports read it only where a test sets REPORTS_DATABASE_ALIAS = "reports".
if "reports" not in DATABASES:  # noqa: F405
    DATABASES["reports"] = {**DATABASES["default"], "TEST": {"MIRROR": "default"}}  # noqa: F405
