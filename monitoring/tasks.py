"""Celery tasks for evidence: thin shells that take ids and call ``monitoring.services``.

``run_report_task`` may run more than once for one report (acks_late redelivery after a worker
died, autoretry after a database hiccup); the service makes that safe: a final report is left
alone, a report found running is restarted (its result is deterministic). Messages are JSON
(settings), so the task takes only the report id.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import OperationalError

from monitoring import services

# How long a report may stay running before the reaper fails it (override in settings).
DEFAULT_REPORT_DEADLINE_SECONDS = 3600


@shared_task(bind=True, name="monitoring.run_report", acks_late=True, reject_on_worker_lost=True,
             autoretry_for=(OperationalError,), retry_backoff=True, retry_jitter=True, max_retries=5)
def run_report_task(self: Any, report_id: int) -> str | None:
    """Compute one report; returns its final status (None when the report does not exist)."""
    report = services.report_compute(report_id=report_id)
    return report.status if report is not None else None


@shared_task(name="monitoring.reap_stuck_reports")
def reap_stuck_reports() -> int:
    """Fail reports stuck in running past the deadline; returns how many were reaped."""
    seconds = int(getattr(settings, "GOVAUDIT_REPORT_DEADLINE_SECONDS", DEFAULT_REPORT_DEADLINE_SECONDS))
    return len(services.report_reap(older_than=timedelta(seconds=seconds)))
