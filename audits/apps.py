from django.apps import AppConfig


class AuditsConfig(AppConfig):
    name = "audits"
    verbose_name = "Audit log"

    def ready(self) -> None:
        # Celery's autodiscovery finds ``audits.tasks`` only; the pack tasks live in a subpackage.
        from audits.packs import tasks  # noqa: F401
