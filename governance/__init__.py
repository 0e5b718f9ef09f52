"""Django project configuration and the governance app (people, teams, roles, tokens).

The Celery app is loaded by ``GovernanceConfig.ready()`` in every Django process, not here: the
``govaudit`` command-line client (``governance.cli``) lives in this package and must import
neither Celery nor Django. ``governance.celery_app`` still works, lazily.
"""
from typing import Any

__all__ = ["celery_app"]


def __getattr__(name: str) -> Any:
    if name == "celery_app":
        from governance.celery import app

        return app
    raise AttributeError(f"module 'governance' has no attribute {name!r}")
