"""The benchmark's own database: where it is, whether it holds a dataset, and making it afresh.

The benchmark drops and recreates its database to load a new dataset, so it refuses any
database that is not plainly its own: the test suites' databases (``test``, ``test_*``),
PostgreSQL's own, the project's ``DATABASE_URL``, and any database that already has tables
but no ``bench_dataset`` marker table.
"""

import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dj_database_url

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/bench"
DEFAULT_SQLITE_PATH = RESULTS_DIR / "bench.sqlite3"
# Shorthands accepted wherever a database URL is.
URL_ALIASES = {"postgres": DEFAULT_POSTGRES_URL, "postgresql": DEFAULT_POSTGRES_URL, "sqlite": "sqlite"}

# Marks a database as the benchmark's; its one row describes the loaded dataset.
METADATA_TABLE = "bench_dataset"
RESERVED_NAMES = {"test", "postgres", "template0", "template1"}


class BenchDatabaseError(RuntimeError):
    """The benchmark cannot (or must not) use the database it was given."""


@dataclass(frozen=True)
class BenchDatabase:
    """Where the benchmark's data lives."""

    url: str  # As Django's DATABASE_URL, with an absolute path for SQLite.
    vendor: str  # "postgresql" or "sqlite"
    name: str  # Database name, or the SQLite file's path.
    settings: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.vendor} {self.name}"

    def psycopg_conninfo(self, *, dbname: str | None = None) -> str:
        """Return a libpq connection string for this database (or another on the same server)."""
        import psycopg.conninfo

        parts = {
            "dbname": dbname or self.name,
            "host": self.settings.get("HOST") or None,
            "port": self.settings.get("PORT") or None,
            "user": self.settings.get("USER") or None,
            "password": self.settings.get("PASSWORD") or None,
        }
        return psycopg.conninfo.make_conninfo(**{key: value for key, value in parts.items() if value})


def bench_database_from_url(*, url: str) -> BenchDatabase:
    """Return the benchmark database a URL (or "postgres"/"sqlite") names, refusing ones it must not touch."""
    url = URL_ALIASES.get(url, url)
    if url == "sqlite":
        url = f"sqlite:///{DEFAULT_SQLITE_PATH}"
    settings = dj_database_url.parse(url)
    engine = settings["ENGINE"]
    if engine == "django.db.backends.sqlite3":
        path = Path(settings["NAME"]).expanduser().resolve()
        if path.name.startswith("test") or str(path) == ":memory:":
            raise BenchDatabaseError(f"Refusing {path}: it looks like a test database.")
        database = BenchDatabase(url=f"sqlite:///{path}", vendor="sqlite", name=str(path), settings=settings)
    elif engine in {"django.db.backends.postgresql", "django.db.backends.postgresql_psycopg2"}:
        name = settings["NAME"]
        if not name or name in RESERVED_NAMES or name.startswith(("test_", "template")):
            raise BenchDatabaseError(
                f"Refusing the database {name!r}: the test suites and PostgreSQL itself use it. "
                "Name a database of the benchmark's own, e.g. .../bench."
            )
        database = BenchDatabase(url=url, vendor="postgresql", name=name, settings=settings)
    else:
        raise BenchDatabaseError(f"The benchmark runs on PostgreSQL or SQLite, not {engine}.")
    project_url = os.environ.get("DATABASE_URL")
    if project_url and _same_database(dj_database_url.parse(project_url), database):
        raise BenchDatabaseError(
            f"Refusing {database.label}: it is the project's DATABASE_URL; the benchmark drops its database."
        )
    return database


def _same_database(settings: dict[str, Any], database: BenchDatabase) -> bool:
    if settings["ENGINE"] == "django.db.backends.sqlite3":
        return database.vendor == "sqlite" and Path(settings["NAME"]).expanduser().resolve() == Path(database.name)
    return (
        database.vendor == "postgresql"
        and settings["NAME"] == database.name
        and (settings.get("HOST") or "localhost") == (database.settings.get("HOST") or "localhost")
        and str(settings.get("PORT") or 5432) == str(database.settings.get("PORT") or 5432)
    )


# --- PostgreSQL ------------------------------------------------------------------------------


def _postgres_exists(database: BenchDatabase) -> bool:
    import psycopg

    with psycopg.connect(database.psycopg_conninfo(dbname="postgres"), autocommit=True) as connection:
        return (
            connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database.name]).fetchone() is not None
        )


def _postgres_state(database: BenchDatabase) -> tuple[int, bool, dict[str, Any] | None]:
    """Return the number of tables, whether the marker table exists, and the stored metadata."""
    import psycopg

    with psycopg.connect(database.psycopg_conninfo(), autocommit=True) as connection:
        (table_count,) = connection.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
        (has_marker,) = connection.execute("SELECT to_regclass(%s) IS NOT NULL", [METADATA_TABLE]).fetchone()
        metadata = None
        if has_marker:
            row = connection.execute(f"SELECT value FROM {METADATA_TABLE} WHERE key = 'dataset'").fetchone()
            metadata = json.loads(row[0]) if row else None
        return table_count, has_marker, metadata


def _postgres_recreate(database: BenchDatabase) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(database.psycopg_conninfo(dbname="postgres"), autocommit=True) as connection:
        name = sql.Identifier(database.name)
        try:
            connection.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(name))
        except psycopg.errors.ObjectInUse:
            raise BenchDatabaseError(
                f"Cannot drop {database.label} to reload it: another session is connected to it (close it first)."
            ) from None
        connection.execute(sql.SQL("CREATE DATABASE {}").format(name))
    with psycopg.connect(database.psycopg_conninfo(), autocommit=True) as connection:
        connection.execute(f"CREATE TABLE {METADATA_TABLE} (key text PRIMARY KEY, value text NOT NULL)")


# --- SQLite ----------------------------------------------------------------------------------


def _sqlite_state(database: BenchDatabase) -> tuple[int, bool, dict[str, Any] | None]:
    path = Path(database.name)
    if not path.exists():
        return 0, False, None
    connection = sqlite3.connect(path)
    try:
        names = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        metadata = None
        if METADATA_TABLE in names:
            row = connection.execute(f"SELECT value FROM {METADATA_TABLE} WHERE key = 'dataset'").fetchone()
            metadata = json.loads(row[0]) if row else None
        return len(names), METADATA_TABLE in names, metadata
    finally:
        connection.close()


def _sqlite_recreate(database: BenchDatabase) -> None:
    path = Path(database.name)
    for suffix in ("", "-journal", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path)
    try:
        connection.execute(f"CREATE TABLE {METADATA_TABLE} (key text PRIMARY KEY, value text NOT NULL)")
        connection.commit()
    finally:
        connection.close()


# --- Both ------------------------------------------------------------------------------------


def bench_database_metadata(*, database: BenchDatabase) -> dict[str, Any] | None:
    """Return the stored dataset's metadata, or None when the database holds no complete dataset."""
    if database.vendor == "postgresql":
        if not _postgres_exists(database):
            return None
        return _postgres_state(database)[2]
    return _sqlite_state(database)[2]


def bench_database_recreate(*, database: BenchDatabase) -> None:
    """Drop and recreate the benchmark's database, empty but for its marker table."""
    if database.vendor == "postgresql":
        state = _postgres_state(database) if _postgres_exists(database) else (0, False, None)
    else:
        state = _sqlite_state(database)
    table_count, has_marker, _ = state
    if table_count and not has_marker:
        raise BenchDatabaseError(
            f"Refusing to drop {database.label}: it has {table_count} tables but no {METADATA_TABLE} table, "
            "so it is not the benchmark's. Point --db at a database of its own."
        )
    if database.vendor == "postgresql":
        _postgres_recreate(database)
    else:
        _sqlite_recreate(database)
