"""Scheduled exports: the audit-pack schedules (``audits.packs``) and when django-celery-beat runs each next."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from audits.packs.models import PackSchedule


@dataclass(frozen=True)
class Upcoming:
    """One export schedule: what, where, when next (None when disabled or unknown), how the last run went."""

    schedule: PackSchedule
    next_run: datetime | None
    url: str


def next_run(task: PeriodicTask | None, now: datetime) -> datetime | None:
    """When beat will start ``task`` next, from its schedule and last run."""
    if task is None or not task.enabled:
        return None
    if task.clocked_id:
        return task.clocked.clocked_time if not task.last_run_at else None
    try:
        schedule: Any = task.schedule
        due = now + schedule.remaining_estimate(task.last_run_at or task.start_time or now)
    except Exception:  # an unusual schedule type: show it without a time rather than fail the page
        return None
    # celery measures from its own "now", a few microseconds later: round to the second
    return due.replace(microsecond=0) + timedelta(seconds=1 if due.microsecond >= 500_000 else 0)


def pack_schedules() -> list[Upcoming]:
    """Every export schedule, enabled ones soonest first."""
    now = timezone.now()
    rows = [Upcoming(s, next_run(s.periodic_task, now) if s.enabled else None,
                     reverse("admin:audits_packschedule_change", args=[s.pk]))
            for s in PackSchedule.objects.select_related("periodic_task__crontab", "periodic_task__interval",
                                                         "periodic_task__clocked")]
    rows.sort(key=lambda u: (u.next_run is None, u.next_run or now, u.schedule.name))
    return rows


def upcoming_exports(*, limit: int = 10) -> list[Upcoming]:
    return [u for u in pack_schedules() if u.next_run is not None][:limit]
