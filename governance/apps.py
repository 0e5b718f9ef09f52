from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    name = "governance"
    verbose_name = "People, teams and access"

    def ready(self) -> None:
        from governance import signals  # noqa: F401  (login events are only offered as signals)
        from governance.api import schema  # noqa: F401  (registers the OpenAPI auth extension)
