"""Scheduled audit-log work: thin tasks that call the services."""
from __future__ import annotations

from celery import shared_task

from audits.checkpoints import checkpoint_if_due
from audits.services import audit_sequence


@shared_task(name="audits.sequence")
def sequence() -> int:
    """Backstop for the after-commit sequencing: picks up anything a crashed writer left queued."""
    return audit_sequence()


@shared_task(name="audits.checkpoint_if_due")
def checkpoint() -> int | None:
    """Sign a checkpoint when N events or T seconds have passed since the last one."""
    cp = checkpoint_if_due()
    return cp.size if cp else None
