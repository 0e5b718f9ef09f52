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


@shared_task(name="governance.deliver_webhook", acks_late=True)
def deliver_webhook(delivery_id: int) -> str:
    """Attempt one webhook delivery; on a retryable failure, enqueue the next attempt with its delay.

    The delivery row holds the truth (attempts, next attempt time), so running this twice, or
    before its time, sends nothing extra (``notifications.webhook_delivery_attempt``).
    """
    from governance import notifications

    outcome = notifications.webhook_delivery_attempt(delivery_id=delivery_id)
    if outcome.retry_in is not None and not deliver_webhook.request.is_eager:
        # In-process (no broker) there is no one to wait: the periodic sweep retries instead.
        deliver_webhook.apply_async((delivery_id,), countdown=outcome.retry_in)
    return outcome.status


@shared_task(name="governance.deliver_due_webhooks")
def deliver_due_webhooks() -> int:
    """Backstop: queue every pending delivery that is due (a lost message, a worker that died)."""
    from governance import notifications

    due = notifications.deliveries_due()
    for pk in due:
        deliver_webhook.delay(pk)
    return len(due)


@shared_task(name="governance.send_approval_emails", acks_late=True, autoretry_for=(OSError,),
             retry_backoff=30, retry_jitter=True, max_retries=5)
def send_approval_emails(promotion_id: int) -> int:
    """E-mail the approvers whose turn it is on a promotion request; SMTP errors are retried."""
    from governance import notifications

    return notifications.approval_emails_send(promotion_id=promotion_id)
