"""Run a management command as an operator does: ``manage.py`` in a child process."""

import os
import subprocess
import sys

from django.conf import settings


def manage_py_run(*args: str) -> subprocess.CompletedProcess:
    """Run ``python manage.py *args`` with the test settings; return its status and output."""
    return subprocess.run(  # noqa: S603 (a fixed command line, no shell)
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.test_settings"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
