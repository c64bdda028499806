"""Put an SQLite database in write-ahead-log mode, once: the mode is kept in the database file.

With WAL, readers never block the one writer, so concurrent requests (the dev server's threads,
several workers) wait for each other's writes instead of failing with "database is locked". The
mode cannot change inside a transaction, hence a migration that is not atomic. PostgreSQL, and an
in-memory SQLite database (the tests'), are left as they are.
"""

from django.db import migrations


def write_ahead_log_on(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "sqlite" or connection.is_in_memory_db():
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode=WAL")
        mode = cursor.fetchone()[0]
    if mode != "wal":
        raise RuntimeError(f"SQLite refused write-ahead-log mode (journal_mode is {mode!r}).")


def write_ahead_log_off(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "sqlite" or connection.is_in_memory_db():
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode=DELETE")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("chatbot", "0003_request_cost_without_single_key_indexes")]

    operations = [migrations.RunPython(write_ahead_log_on, write_ahead_log_off, elidable=True)]
