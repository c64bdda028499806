"""Put an SQLite database in write-ahead-log mode, once: the mode is kept in the database file.

With WAL, readers never block the one writer, so concurrent requests (the dev server's threads,
several workers) wait for each other's writes instead of failing with "database is locked". The
mode cannot change inside a transaction, hence a migration that is not atomic. PostgreSQL, and an
in-memory SQLite database (the tests'), are left as they are.
"""

from django.db import migrations


def journal_mode_set(schema_editor, mode: str) -> None:
    """Set a file SQLite database's journal mode, checking that SQLite took it; other databases are left alone."""
    connection = schema_editor.connection
    if connection.vendor != "sqlite" or connection.is_in_memory_db():
        return
    with connection.cursor() as cursor:
        cursor.execute(f"PRAGMA journal_mode={mode}")
        taken = cursor.fetchone()[0]
    if taken != mode.lower():
        raise RuntimeError(f"SQLite refused journal_mode {mode} (it is {taken!r}).")


def write_ahead_log_on(apps, schema_editor):
    journal_mode_set(schema_editor, "WAL")


def write_ahead_log_off(apps, schema_editor):
    journal_mode_set(schema_editor, "DELETE")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("chatbot", "0003_request_cost_without_single_key_indexes")]

    operations = [migrations.RunPython(write_ahead_log_on, write_ahead_log_off, elidable=True)]
