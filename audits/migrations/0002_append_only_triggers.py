"""Append-only: the database itself refuses UPDATE and DELETE on the log's tables (and TRUNCATE
on PostgreSQL, where row triggers do not fire on it). Triggers deter; verification detects."""
from django.db import migrations


def forwards(apps, schema_editor):
    from audits.triggers import create_triggers

    create_triggers(schema_editor.connection)


def backwards(apps, schema_editor):
    from audits.triggers import drop_triggers

    drop_triggers(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("audits", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
