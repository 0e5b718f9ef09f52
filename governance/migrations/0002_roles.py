"""Create one group per role with its capability permissions, from governance.roles.ROLES.

Re-running it (or a later migration calling ``sync_roles``) brings the groups back in line with
the table, which is what the permission-matrix test checks.
"""
from django.db import migrations


def sync_roles(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    from governance.roles import ROLES

    app_config = apps.get_app_config("governance")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    Role = apps.get_model("governance", "Role")
    for role in ROLES.values():
        group, _ = Group.objects.get_or_create(name=role.name)
        Role.objects.update_or_create(name=role.name, defaults={"group": group, "label": role.label})
        perms = Permission.objects.filter(content_type__app_label="governance", content_type__model="role",
                                          codename__in=role.capabilities)
        group.permissions.set(perms)


class Migration(migrations.Migration):
    dependencies = [("governance", "0001_initial"), ("auth", "0012_alter_user_first_name_max_length"),
                    ("contenttypes", "0002_remove_content_type_name")]
    operations = [migrations.RunPython(sync_roles, migrations.RunPython.noop)]
