"""Portal background work: a thin task that takes an id and calls the service."""
from __future__ import annotations

from celery import shared_task


@shared_task(name="portal.verify_audit_log", acks_late=True, reject_on_worker_lost=True)
def verify_audit_log(verification_id: int) -> bool | None:
    """Run one requested verification; returns its outcome (None when the row does not exist)."""
    from governance.portal.services import verification_execute

    row = verification_execute(verification_id=verification_id)
    return row.ok if row is not None else None
