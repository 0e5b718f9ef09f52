"""Promotion housekeeping: thin tasks that call the promotion services."""
from __future__ import annotations

from datetime import timedelta

from celery import shared_task

from governance.access import Principal

SCHEDULER = Principal.of_system("scheduler")


@shared_task(name="governance.reevaluate_promotions", acks_late=True)
def reevaluate_promotions(version_id: int) -> int:
    """Judge again every open request of a version whose evidence just changed; safe to repeat."""
    from governance import promotions
    from governance.models import PromotionRequest, PromotionState

    count = 0
    for req in PromotionRequest.objects.filter(version_id=version_id, state=PromotionState.WAITING_FOR_EVIDENCE):
        promotions.promotion_reevaluate(actor=SCHEDULER, request=req)
        count += 1
    return count


@shared_task(name="governance.expire_promotions")
def expire_promotions(days: int = 30) -> int:
    """Close requests left open for more than ``days`` days."""
    from governance import promotions

    return promotions.promotion_expire(actor=SCHEDULER, older_than=timedelta(days=days))
