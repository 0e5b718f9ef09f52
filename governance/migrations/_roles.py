"""Shared by the role migrations: make the role groups match governance.roles.ROLES exactly."""


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
