"""Celery tasks for audit packs: thin shells that take ids and call the services.

Both may run more than once for one id (acks_late redelivery, retries on a database hiccup); the
services make that safe: a final pack is left alone, a pack found running is built again.
"""
from __future__ import annotations

from typing import Any

from celery import shared_task
from django.db import OperationalError

from audits.packs import schedules, services


@shared_task(bind=True, name="audits.packs.generate", acks_late=True, reject_on_worker_lost=True,
             autoretry_for=(OperationalError,), retry_backoff=True, retry_jitter=True, max_retries=5)
def generate_pack_task(self: Any, pack_id: int) -> str | None:
    """Build one pack; returns its final status (None when it does not exist)."""
    pack = services.pack_generate(pack_id=pack_id)
    return pack.status if pack is not None else None


@shared_task(bind=True, name=schedules.TASK_NAME, acks_late=True, reject_on_worker_lost=True,
             autoretry_for=(OperationalError,), retry_backoff=True, retry_jitter=True, max_retries=3)
def run_schedule_task(self: Any, schedule_id: int) -> int | None:
    """One scheduled export (started by django-celery-beat); returns the export's id."""
    export = schedules.pack_schedule_run(schedule_id=schedule_id)
    return export.pk if export is not None else None
