"""Django project configuration and the governance app (people, teams, roles, tokens)."""
from governance.celery import app as celery_app

__all__ = ["celery_app"]
