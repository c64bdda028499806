"""Tests of what config.settings reads from the environment (each in a fresh interpreter: settings load once)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
PRINT_OPTIONS = (
    "import json, config.settings as s; print(json.dumps(s.DATABASES['default'].get('OPTIONS', {}), default=str))"
)


def settings_run(**environ: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_PREPARED_STATEMENTS"}
    env.update(environ)
    return subprocess.run(  # noqa: S603
        [sys.executable, "-c", PRINT_OPTIONS], cwd=PROJECT, env=env, capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize(("value", "threshold"), [(None, 5), ("1", 5), ("off", None), ("0", None)])
def test_postgresql_prepares_often_run_statements_unless_turned_off(value: str | None, threshold: int | None) -> None:
    environ = {"DATABASE_URL": "postgres://someone@db.example:5432/chatbot", "DEBUG": "1"}
    if value is not None:
        environ["DATABASE_PREPARED_STATEMENTS"] = value

    result = settings_run(**environ)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["prepare_threshold"] == threshold


def test_an_unclear_prepared_statements_value_stops_the_start() -> None:
    result = settings_run(
        DATABASE_URL="postgres://someone@db.example:5432/chatbot", DEBUG="1", DATABASE_PREPARED_STATEMENTS="maybe"
    )

    assert result.returncode != 0
    assert "DATABASE_PREPARED_STATEMENTS must be a boolean" in result.stderr


def test_sqlite_has_no_prepared_statement_option() -> None:
    result = settings_run(DATABASE_URL="sqlite:///tmp-settings-test.sqlite3", DEBUG="1")

    assert result.returncode == 0, result.stderr
    assert "prepare_threshold" not in json.loads(result.stdout)
