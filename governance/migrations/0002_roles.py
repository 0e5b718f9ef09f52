"""Create one group per role with its capability permissions, from governance.roles.ROLES.

Re-running it (or a later migration calling ``sync_roles``) brings the groups back in line with
the table, which is what the permission-matrix test checks.
"""
from django.db import migrations


def sync_roles(apps, schema_editor):
    from governance.migrations._roles import sync_roles as sync

    sync(apps, schema_editor)


class Migration(migrations.Migration):
    dependencies = [("governance", "0001_initial"), ("auth", "0012_alter_user_first_name_max_length"),
                    ("contenttypes", "0002_remove_content_type_name")]
    operations = [migrations.RunPython(sync_roles, migrations.RunPython.noop)]
