"""The Celery application.

With no broker configured (the embedded default) tasks run in-process, eagerly, so a newcomer's
service needs nothing but Python; CI and production point ``CELERY_BROKER_URL`` at Redis.
"""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "governance.settings")

app = Celery("governance")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
