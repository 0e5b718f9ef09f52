"""Bring the role groups in line with governance.roles after new capabilities (promotions)."""
from django.db import migrations


def sync(apps, schema_editor):
    from governance.migrations import _roles

    _roles.sync_roles(apps, schema_editor)


class Migration(migrations.Migration):
    dependencies = [("governance", "0003_promotions")]
    operations = [migrations.RunPython(sync, migrations.RunPython.noop)]
