"""The embedded SQLite database takes concurrent writers: WAL mode, and transactions that begin with the write lock."""

import importlib
import sqlite3
import threading
from types import SimpleNamespace

import pytest
from django.conf import settings
from django.db import OperationalError, connection
from django.db.backends.sqlite3.base import DatabaseWrapper

pytestmark = pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's journal and locking only")

migration = importlib.import_module("chatbot.migrations.0004_sqlite_write_ahead_log")


@pytest.fixture(autouse=True)
def file_databases_allowed(django_db_blocker):
    # These tests open database files of their own, not the test database.
    with django_db_blocker.unblock():
        yield


def file_database(path, **options) -> DatabaseWrapper:
    settings_dict = {**connection.settings_dict, "NAME": str(path)}
    settings_dict["OPTIONS"] = {**settings_dict["OPTIONS"], **options}
    return DatabaseWrapper(settings_dict, alias="wal-test")


def journal_mode(path) -> str:
    checking = sqlite3.connect(path)
    try:
        return checking.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        checking.close()


def test_the_migration_puts_a_database_file_in_wal_mode_and_back(tmp_path):
    path = tmp_path / "app.sqlite3"
    sqlite3.connect(path).close()
    database = file_database(path)
    try:
        migration.write_ahead_log_on(None, SimpleNamespace(connection=database))
        assert journal_mode(path) == "wal"
        migration.write_ahead_log_off(None, SimpleNamespace(connection=database))
        assert journal_mode(path) == "delete"
    finally:
        database.close()


def test_transactions_wait_for_the_write_lock_rather_than_fail():
    options = settings.DATABASES["default"]["OPTIONS"]
    assert options["transaction_mode"] == "IMMEDIATE"
    assert options["timeout"] >= 5


def increments(path, *, threads: int, each: int, **options) -> tuple[int, list[Exception]]:
    """Run read-then-write transactions from several threads, as atomic() does; return the count and the errors."""
    setup = sqlite3.connect(path)
    setup.execute("PRAGMA journal_mode=WAL")
    setup.execute("CREATE TABLE counter (n INTEGER)")
    setup.execute("INSERT INTO counter VALUES (0)")
    setup.commit()
    setup.close()
    errors: list[Exception] = []
    ready = threading.Barrier(threads)

    def increment() -> None:
        database = file_database(path, **options)
        try:
            database.ensure_connection()
            ready.wait()
            for _ in range(each):
                # What transaction.atomic() does on SQLite: BEGIN (in the configured mode), COMMIT.
                database.set_autocommit(False, force_begin_transaction_with_broken_autocommit=True)
                with database.cursor() as cursor:
                    cursor.execute("SELECT n FROM counter")
                    (n,) = cursor.fetchone()
                    cursor.execute("UPDATE counter SET n = %s", [n + 1])
                database.commit()
                database.set_autocommit(True)
        except Exception as error:
            errors.append(error)
        finally:
            database.close()

    workers = [threading.Thread(target=increment) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    checking = sqlite3.connect(path)
    try:
        return checking.execute("SELECT n FROM counter").fetchone()[0], errors
    finally:
        checking.close()


def test_concurrent_read_then_write_transactions_all_commit(tmp_path):
    count, errors = increments(tmp_path / "app.sqlite3", threads=4, each=25)

    assert errors == []
    assert count == 100


def test_a_deferred_transaction_that_read_first_fails_on_its_write(tmp_path):
    # The failure IMMEDIATE prevents: a deferred transaction reads, another writer commits, and
    # the first cannot write on its stale snapshot: SQLite fails it at once, without waiting.
    path = tmp_path / "app.sqlite3"
    increments(path, threads=1, each=1)
    reader = file_database(path, transaction_mode="DEFERRED")
    writer = file_database(path)
    try:
        reader.set_autocommit(False, force_begin_transaction_with_broken_autocommit=True)
        with reader.cursor() as cursor:
            cursor.execute("SELECT n FROM counter")
        with writer.cursor() as cursor:
            cursor.execute("UPDATE counter SET n = n + 1")
        with pytest.raises(OperationalError, match="database is locked"), reader.cursor() as cursor:
            cursor.execute("UPDATE counter SET n = n + 1")
        reader.rollback()
    finally:
        reader.close()
        writer.close()
