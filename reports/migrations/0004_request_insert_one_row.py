from django.db import migrations


def triggers_install(apps, schema_editor):
    # The request table's insert trigger now appends one inserted request's deltas without
    # grouping them: replace the PostgreSQL trigger functions (no table changes, nothing to
    # recompute). SQLite's triggers are put back after every migrate.
    if schema_editor.connection.vendor != "postgresql":
        return
    from reports.rollups import rollup_triggers_install

    rollup_triggers_install(connection=schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [
        ("reports", "0003_active_user_histogram"),
    ]

    # Backwards, the functions stay: the earlier schema has every table and column they write.
    operations = [migrations.RunPython(triggers_install, migrations.RunPython.noop)]
