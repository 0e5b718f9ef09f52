from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    name = "governance"
    verbose_name = "People, teams and access"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        # Make our Celery app the current one so @shared_task binds to it (not in the package
        # __init__, which the Django-free ``govaudit`` client also imports).
        import governance.celery  # noqa: F401

        from governance import signals  # noqa: F401  (login events are only offered as signals)

        # Roles are data the code depends on: put them back after every migrate and every flush.
        post_migrate.connect(signals.sync_roles_after_migrate, sender=self, dispatch_uid="govaudit_roles")
        from governance.api import schema  # noqa: F401  (registers the OpenAPI auth extension)
