"""The portal's app config: its templates, static files, system checks, signal receivers and tasks."""
from __future__ import annotations

from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "governance.portal"
    label = "portal"
    verbose_name = "Compliance portal"

    def ready(self) -> None:
        from governance.portal import checks, signals, tasks  # noqa: F401  (checks, receivers, task names)
