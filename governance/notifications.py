"""Notifications on promotion decisions: HMAC-signed webhooks, retried by a worker, and e-mail to
the approvers whose turn it is.

How it fits together (docs/notifications.md):

* A compliance officer registers webhook endpoints (``webhook_create`` / ``_update`` / ``_delete``;
  each appends one audit event). The signing secret is generated here, shown once, and stored
  encrypted: an HMAC needs the secret in clear, so it cannot be hashed like an API token.
* Each promotion service calls ``notify_promotion_decision`` right after its audit append, in its
  own transaction. That saves one delivery row per listening endpoint (the exact bytes to send)
  and schedules the sending with ``transaction.on_commit``: a decision that rolls back leaves no
  row and tells nobody; one that commits is delivered at least once.
* A thin task (``governance.tasks.deliver_webhook``) calls ``webhook_delivery_attempt``, which
  POSTs the body with a timestamp and ``sha256=HMAC(secret, "timestamp.body")``, then records the
  outcome and when to try again. A beat task re-enqueues due deliveries whose message was lost.
* When a request is awaiting approval, the people who may approve it now get an e-mail, sent by
  a task after commit, never inside the transaction.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import logging
import random
import secrets
import ssl
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Callable
from urllib.parse import urlsplit

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage, get_connection
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from audits.core.canonical import canonical_bytes
from audits.services import Target, audit_append, format_ts
from governance.access import Principal
from governance.errors import Conflict, NotFound, ValidationFailed
from governance.models import (
    Approval,
    PromotionRequest,
    PromotionState,
    Team,
    WebhookDelivery,
    WebhookDeliveryStatus,
    WebhookEndpoint,
)
from governance.queries import Compiled
from governance.roles import ROLES

log = logging.getLogger("governance.notifications")

# Decision events, named after the audit action they follow ("governance.promotion.approved" ->
# "promotion.approved"), plus the two outcomes a decision can reach, sent as events of their own
# whichever decision reached them, so a receiver interested only in what entered a stage
# subscribes to "promotion.promoted" alone.
DECISION_EVENTS: tuple[str, ...] = ("promotion.requested", "promotion.reevaluated", "promotion.approved",
                                    "promotion.rejected", "promotion.cancelled", "promotion.expired")
OUTCOME_EVENTS: dict[str, str] = {PromotionState.PROMOTED: "promotion.promoted",
                                  PromotionState.BLOCKED: "promotion.blocked"}
EVENT_TYPES: tuple[str, ...] = DECISION_EVENTS + tuple(OUTCOME_EVENTS.values())

PAYLOAD_SCHEMA = "govaudit.webhook/v1"
SECRET_PREFIX = "gvwh_"
HEADER_EVENT = "X-Govaudit-Event"
HEADER_EVENT_ID = "X-Govaudit-Event-Id"
HEADER_DELIVERY = "X-Govaudit-Delivery"
HEADER_TIMESTAMP = "X-Govaudit-Timestamp"
HEADER_SIGNATURE = "X-Govaudit-Signature"
USER_AGENT = "govaudit-webhooks/1"

MAX_NAME = 100
MAX_URL = 2000
RETRY_CAP_SECONDS = 3600  # below Redis' visibility timeout, so a countdown message is never redelivered early
_RESPONSE_EXCERPT = 200  # characters of a failed answer's body kept in last_error
_READ_LIMIT = 64 * 1024  # bytes of an answer read at most (we only need its status)

User = get_user_model()


# --- Pure cores: signing, retry schedule, classification, URL checks -----------------------------

def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value: ``sha256=`` and the hex HMAC-SHA256 of ``"<timestamp>.<body>"``.

    The timestamp is inside the MAC so a receiver can refuse old deliveries (replays) by its age.
    """
    mac = hmac.new(secret.encode("utf-8"), str(timestamp).encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def retry_delay(attempt: int, *, base: float, cap: float = RETRY_CAP_SECONDS,
                rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based): exponential, with jitter.

    ``base * 2**(attempt-1)``, capped at ``cap``, then drawn uniformly from its upper half, so a
    receiver coming back from an outage is not hit by every delivery at the same instant, and no
    retry comes sooner than half the nominal delay.
    """
    nominal = min(cap, base * (2 ** max(0, attempt - 1)))
    return nominal / 2 + rand() * nominal / 2


def classify(status_code: int | None) -> str:
    """``delivered`` (2xx), ``retry`` (no answer, 429, 5xx) or ``failed`` (anything else).

    A 4xx other than 429 says the receiver will not take this request however often it is sent
    (wrong URL, refused signature); a 3xx is a configuration error, since redirects are not
    followed (a signed body must not be forwarded to wherever a redirect points).
    """
    if status_code is None:
        return "retry"
    if 200 <= status_code < 300:
        return "delivered"
    if status_code == 429 or 500 <= status_code < 600:
        return "retry"
    return "failed"


def validate_url(url: str, *, allow_http: bool) -> str:
    """A webhook URL: http(s), a host, no credentials, no fragment, at most MAX_URL characters."""
    if not isinstance(url, str) or not url.strip():
        raise ValidationFailed("url is required: the address that receives the POSTs.", code="invalid_url")
    url = url.strip()
    if len(url) > MAX_URL:
        raise ValidationFailed(f"url is {len(url)} characters long; at most {MAX_URL} are accepted.",
                               code="invalid_url")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise ValidationFailed("url must not contain spaces or control characters.", code="invalid_url")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValidationFailed(f"url is not a valid URL ({exc}).", code="invalid_url") from exc
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes:
        hint = "" if allow_http or parts.scheme != "http" else \
            " Plain http is refused here (GOVAUDIT_WEBHOOK_ALLOW_HTTP is off): payloads describe models and decisions."
        raise ValidationFailed(f"url must start with {' or '.join(s + '://' for s in schemes)}.{hint}",
                               code="invalid_url")
    if not parts.hostname:
        raise ValidationFailed("url must name a host, e.g. https://hooks.example.org/govaudit.", code="invalid_url")
    if parts.username is not None or parts.password is not None:
        raise ValidationFailed("url must not carry credentials (user:password@): URLs are shown in the API and "
                               "the audit log. Receivers authenticate deliveries by their signature.",
                               code="invalid_url")
    if parts.fragment:
        raise ValidationFailed("url must not have a #fragment: it is never sent to the server.", code="invalid_url")
    if port == 0:
        raise ValidationFailed("url has port 0.", code="invalid_url")
    return url


def _validate_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValidationFailed("name is required: a short label people recognise.", code="invalid_name")
    name = name.strip()
    if len(name) > MAX_NAME:
        raise ValidationFailed(f"name is {len(name)} characters long; at most {MAX_NAME} are accepted.",
                               code="invalid_name")
    return name


def _validate_events(events: Any) -> list[str]:
    if not isinstance(events, (list, tuple)) or not events:
        raise ValidationFailed(f"events must list at least one of {list(EVENT_TYPES)}.", code="invalid_events")
    unknown = sorted({e for e in events if e not in EVENT_TYPES}, key=str)
    if unknown:
        raise ValidationFailed(f"Unknown event types {unknown}; known: {list(EVENT_TYPES)}.", code="invalid_events")
    return sorted(set(events), key=EVENT_TYPES.index)


# --- Secrets: generated here, shown once, stored encrypted ---------------------------------------

def _fernet() -> MultiFernet:
    """Encryption keys derived from SECRET_KEY (then SECRET_KEY_FALLBACKS, to read older secrets).

    A copy of the database alone reveals no webhook secret. Rotating SECRET_KEY the Django way
    (old key moved to SECRET_KEY_FALLBACKS) keeps existing secrets readable.
    """
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    fernets = []
    for key in keys:
        raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                   info=b"govaudit webhook secrets v1").derive(key.encode("utf-8"))
        fernets.append(Fernet(base64.urlsafe_b64encode(raw)))
    return MultiFernet(fernets)


def _new_secret() -> tuple[str, str]:
    """A fresh signing secret (256 random bits) and its encrypted form."""
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    return secret, _fernet().encrypt(secret.encode("utf-8")).decode("ascii")


def _secret_of(endpoint: WebhookEndpoint) -> str:
    return _fernet().decrypt(endpoint.secret_encrypted.encode("ascii")).decode("utf-8")


# --- Webhook endpoints: services (compliance officers) -------------------------------------------

def _webhook_target(endpoint: WebhookEndpoint) -> Target:
    return Target("governance.webhook", str(endpoint.pk), endpoint.name)


def _describe(endpoint: WebhookEndpoint) -> dict[str, Any]:
    """What the audit log records about an endpoint: everything but the secret."""
    return {"name": endpoint.name, "url": endpoint.url, "events": list(endpoint.events), "active": endpoint.active,
            "team": endpoint.team.slug if endpoint.team_id else None}


def _check_team_scope(actor: Principal, team: Team | None) -> None:
    scope = actor.team_scope
    if scope is not None and (team is None or team.pk != scope.pk):
        raise ValidationFailed(f"Your token is scoped to team {scope.slug!r}: it can only manage webhooks scoped "
                               f"to that team (set team to {scope.slug!r}).", code="team_scope")


def webhook_create(*, actor: Principal, name: str, url: str, events: list[str], team: Team | None = None,
                   active: bool = True) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint; returns it and its signing secret, which is never shown again."""
    actor.require("manage_policies", action="governance.webhook.created")
    name = _validate_name(name)
    url = validate_url(url, allow_http=settings.GOVAUDIT_WEBHOOK_ALLOW_HTTP)
    events = _validate_events(events)
    _check_team_scope(actor, team)
    secret, encrypted = _new_secret()
    now = timezone.now()
    with transaction.atomic():
        if WebhookEndpoint.objects.filter(name=name).exists():
            raise Conflict(f"A webhook named {name!r} already exists; choose another name.", code="duplicate_webhook")
        try:
            with transaction.atomic():
                endpoint = WebhookEndpoint.objects.create(
                    name=name, url=url, secret_encrypted=encrypted, events=events, active=active, team=team,
                    created_by=actor.user if actor.system is None else None, created_at=now, updated_at=now)
        except IntegrityError as exc:
            raise Conflict(f"A webhook named {name!r} was created at the same moment.",
                           code="duplicate_webhook") from exc
        audit_append(actor=actor.snapshot(), action="governance.webhook.created", target=_webhook_target(endpoint),
                     payload=_describe(endpoint))
    return endpoint, secret


_UPDATABLE = ("name", "url", "events", "active", "team")


def webhook_update(*, actor: Principal, endpoint: WebhookEndpoint, changes: dict[str, Any],
                   rotate_secret: bool = False) -> tuple[WebhookEndpoint, str | None]:
    """Change an endpoint's fields and/or rotate its secret (the new one is returned, once).

    Deliveries already saved keep the bytes they were created with; a rotated secret signs every
    attempt from now on, including retries of older deliveries.
    """
    actor.require("manage_policies", action="governance.webhook.updated")
    unknown = sorted(set(changes) - set(_UPDATABLE))
    if unknown:
        raise ValidationFailed(f"Cannot change {unknown}; changeable: {list(_UPDATABLE)}.", code="invalid_change")
    if not changes and not rotate_secret:
        raise ValidationFailed(f"Nothing to change: send one of {list(_UPDATABLE)} or rotate_secret.",
                               code="nothing_to_change")
    clean: dict[str, Any] = {}
    if "name" in changes:
        clean["name"] = _validate_name(changes["name"])
    if "url" in changes:
        clean["url"] = validate_url(changes["url"], allow_http=settings.GOVAUDIT_WEBHOOK_ALLOW_HTTP)
    if "events" in changes:
        clean["events"] = _validate_events(changes["events"])
    if "active" in changes:
        if not isinstance(changes["active"], bool):
            raise ValidationFailed("active must be true or false.", code="invalid_active")
        clean["active"] = changes["active"]
    if "team" in changes:
        clean["team"] = changes["team"]
    _check_team_scope(actor, clean.get("team", endpoint.team))
    secret = None
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update(of=("self",)).select_related("team").get(pk=endpoint.pk)
        before = _describe(endpoint)
        if "name" in clean and clean["name"] != endpoint.name and \
                WebhookEndpoint.objects.filter(name=clean["name"]).exists():
            raise Conflict(f"A webhook named {clean['name']!r} already exists; choose another name.",
                           code="duplicate_webhook")
        for field, value in clean.items():
            setattr(endpoint, field, value)
        if rotate_secret:
            secret, endpoint.secret_encrypted = _new_secret()
        after = _describe(endpoint)
        changed = {k: {"from": before[k], "to": after[k]} for k in after if before[k] != after[k]}
        endpoint.updated_at = timezone.now()
        endpoint.save()
        audit_append(actor=actor.snapshot(), action="governance.webhook.updated", target=_webhook_target(endpoint),
                     payload={"changes": changed, "secret_rotated": rotate_secret})
    return endpoint, secret


def webhook_delete(*, actor: Principal, endpoint: WebhookEndpoint) -> None:
    """Remove an endpoint and its delivery records; pending deliveries are never sent.

    The audit event keeps what the endpoint was and how its deliveries had gone.
    """
    actor.require("manage_policies", action="governance.webhook.deleted")
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update(of=("self",)).select_related("team").get(pk=endpoint.pk)
        counts = {s: endpoint.deliveries.filter(status=s).count() for s in WebhookDeliveryStatus.values}
        target = _webhook_target(endpoint)
        payload = _describe(endpoint) | {"deliveries": counts}
        endpoint.delete()
        audit_append(actor=actor.snapshot(), action="governance.webhook.deleted", target=target, payload=payload)


def webhook_redeliver(*, actor: Principal, endpoint: WebhookEndpoint, delivery_id: int) -> WebhookDelivery:
    """Send one finished delivery again, on a fresh retry schedule (the receiver was down too long).

    The same delivery, event id and bytes: a receiver that deduplicates by event id sees a
    repeat, never a second decision. A person's choice to resend is audited; a pending delivery
    (still being retried) is a 409, and so is an endpoint that is switched off.
    """
    actor.require("manage_policies", target=_webhook_target(endpoint), action="governance.webhook.redelivered")
    _check_team_scope(actor, endpoint.team)
    now = timezone.now()
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update(of=("self",)).select_related("team").get(pk=endpoint.pk)
        delivery = WebhookDelivery.objects.select_for_update().filter(pk=delivery_id, endpoint=endpoint).first()
        if delivery is None:
            raise NotFound(f"Webhook {endpoint.name!r} has no delivery {delivery_id}.", code="delivery_not_found")
        delivery.endpoint = endpoint
        if delivery.status == WebhookDeliveryStatus.PENDING:
            raise Conflict(f"Delivery {delivery.pk} is still pending (attempt {delivery.attempts} of "
                           f"{settings.GOVAUDIT_WEBHOOK_MAX_ATTEMPTS}); the worker retries it on its own.",
                           code="delivery_pending")
        if not endpoint.active:
            raise Conflict(f"Webhook {endpoint.name!r} is switched off; set active to true (PATCH) before "
                           "resending to it.", code="webhook_inactive")
        previous = {"status": delivery.status, "attempts": delivery.attempts,
                    "last_status_code": delivery.last_status_code, "last_error": delivery.last_error}
        delivery.status = WebhookDeliveryStatus.PENDING
        delivery.attempts = 0
        delivery.last_error = ""
        delivery.next_attempt_at = now
        delivery.delivered_at = None
        delivery.updated_at = now
        delivery.save()
        audit_append(actor=actor.snapshot(), action="governance.webhook.redelivered", target=_webhook_target(endpoint),
                     payload={"delivery": delivery.pk, "event_id": str(delivery.event_id),
                              "event_type": delivery.event_type, "previous": previous})
        transaction.on_commit(partial(_enqueue_deliveries, [delivery.pk]))
    return delivery


# --- Webhook endpoints: selectors ----------------------------------------------------------------

def webhook_list(*, principal: Principal) -> QuerySet[WebhookEndpoint]:
    """Endpoints the principal manages: all of them, or only its team's with a team-scoped token."""
    if not principal.can("manage_policies"):
        return WebhookEndpoint.objects.none()
    qs = WebhookEndpoint.objects.select_related("team", "created_by")
    scope = principal.team_scope
    return qs.filter(team=scope) if scope is not None else qs


def webhook_get(*, principal: Principal, pk: int) -> WebhookEndpoint:
    endpoint = webhook_list(principal=principal).filter(pk=pk).first()
    if endpoint is None:
        raise NotFound(f"No webhook with id {pk} that you can see.", code="webhook_not_found")
    return endpoint


def delivery_list(*, principal: Principal, endpoint: WebhookEndpoint) -> QuerySet[WebhookDelivery]:
    """An endpoint's deliveries, newest first (``endpoint`` came from ``webhook_get``)."""
    return WebhookDelivery.objects.filter(endpoint=endpoint).select_related("endpoint")


# --- Decisions -> deliveries and e-mails ----------------------------------------------------------

def _event_types(req: PromotionRequest, action: str) -> list[str]:
    event = action.removeprefix("governance.")
    if event not in DECISION_EVENTS:
        raise ValueError(f"{action!r} is not a promotion decision with a notification; known: {DECISION_EVENTS}")
    outcome = OUTCOME_EVENTS.get(req.state)
    return [event, outcome] if outcome else [event]


def _link(path: str) -> str:
    return f"{settings.GOVAUDIT_PUBLIC_URL}{path}"


def promotion_event_data(req: PromotionRequest) -> dict[str, Any]:
    """The ``data`` of a promotion event: the request as it stands after the decision."""
    decision = req.decision or {}
    return {
        "promotion": req.pk, "kind": req.kind, "model": req.model.name, "team": req.model.team.slug,
        "version": req.version.version, "artifact_sha256": req.version.artifact_sha256,
        "target_stage": req.target_stage, "state": req.state, "reason": req.reason, "requested_by": req.requester,
        "policy": decision.get("policy"),
        "gates": [{"gate": r.get("gate"), "type": r.get("type"), "status": r.get("status"),
                   "waived": r.get("waived", False), "reason": r.get("reason", "")}
                  for r in decision.get("results", [])],
        "approvals": [{"user": a.user.get_username(), "roles": a.roles, "decision": a.decision, "comment": a.comment,
                       "decided_at": format_ts(a.decided_at)}
                      for a in req.approvals.select_related("user").order_by("decided_at", "id")],
        "created_at": format_ts(req.created_at),
        "decided_at": format_ts(req.decided_at) if req.decided_at else None,
        "receipt": req.receipt or None,
        "url": _link(f"/api/v1/promotions/{req.pk}/"),
    }


# Read on every decision: compiled once per connection (governance.queries.Compiled).
_LISTENING_ENDPOINTS = Compiled("listening_endpoints", lambda team_id: WebhookEndpoint.objects.filter(
    Q(team__isnull=True) | Q(team_id=team_id), active=True), team_id=int)


def notify_promotion_decision(request: PromotionRequest, event: str, *, previous_state: str | None = None) -> None:
    """Queue the notifications of one decision; call it inside the decision's transaction.

    ``event`` is the decision's audit action (``governance.promotion.approved``). Saves one
    delivery row per active endpoint that listens to the event and may hear about the model, and
    sends after commit; when the request now awaits approval (just reached, or still short of
    approvals after one), e-mails the people who may approve it. ``previous_state`` (given by
    re-evaluation) keeps a re-evaluation that changes nothing from e-mailing the approvers again.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("notify_promotion_decision must run inside the decision's transaction")
    req = request
    types = _event_types(req, event)
    now = timezone.now()
    endpoints = _LISTENING_ENDPOINTS.all(team_id=req.model.team_id)
    rows: list[WebhookDelivery] = []
    data: dict[str, Any] | None = None
    for event_type in types:
        listeners = [e for e in endpoints if event_type in e.events]
        if not listeners:
            continue
        data = data if data is not None else promotion_event_data(req)
        event_id = uuid.uuid4()
        body = canonical_bytes({"schema": PAYLOAD_SCHEMA, "id": str(event_id), "type": event_type,
                                "created_at": format_ts(now), "data": data})
        rows += [WebhookDelivery(endpoint=e, event_id=event_id, event_type=event_type, payload=body,
                                 next_attempt_at=now, created_at=now, updated_at=now) for e in listeners]
    if rows:
        ids = [row.pk for row in WebhookDelivery.objects.bulk_create(rows)]
        transaction.on_commit(partial(_enqueue_deliveries, ids))
    action = event.removeprefix("governance.")
    turn_came = action in ("promotion.requested", "promotion.approved") or (
        action == "promotion.reevaluated" and previous_state != PromotionState.AWAITING_APPROVAL)
    if req.state == PromotionState.AWAITING_APPROVAL and turn_came:
        # Who gets it is worked out by the task, after commit: no per-person queries in here.
        transaction.on_commit(partial(_enqueue_emails, req.pk))


def _enqueue_deliveries(ids: list[int]) -> None:
    """After commit: one task per delivery. A broker outage must not fail the committed decision;
    the scheduled sweep (``deliver_due_webhooks``) sends what could not be queued."""
    from governance.tasks import deliver_webhook

    for pk in ids:
        try:
            deliver_webhook.delay(pk)
        except Exception:  # noqa: BLE001 - the decision is committed; the sweep retries
            log.warning("could not queue webhook delivery %s; the periodic sweep will send it", pk, exc_info=True)


def _enqueue_emails(promotion_id: int) -> None:
    from governance.tasks import send_approval_emails

    try:
        send_approval_emails.delay(promotion_id)
    except Exception:  # noqa: BLE001 - the decision is committed; say so loudly instead of failing it
        log.error("could not send approval e-mails for promotion %s", promotion_id, exc_info=True)


# --- E-mail to the approvers whose turn it is ----------------------------------------------------

def _waiting_roles(req: PromotionRequest) -> set[str]:
    """Roles named by the approvals gates that still wait for approvals."""
    from governance.policy import policy_from_data

    if req.policy is None:
        return set()
    waiting = {r.get("gate") for r in (req.decision or {}).get("results", [])
               if r.get("type") == "approvals" and r.get("status") == "waiting"}
    roles: set[str] = set()
    for gate in policy_from_data(req.policy.document).gates:
        if gate.type == "approvals" and gate.key in waiting:
            roles |= set(gate.roles)  # type: ignore[union-attr]
    return roles


def approval_recipients(req: PromotionRequest) -> list[Any]:
    """The people who may approve ``req`` now and whose approval would count, with an e-mail address.

    Mirrors the approvals gate and the approve service: an active user holding one of the roles
    of an approvals gate still waiting, with the ``approve_promotion`` capability, who can see the
    model, is neither the requester nor the version's creator, and has not decided yet.
    """
    from registry.selectors import model_list

    if req.state != PromotionState.AWAITING_APPROVAL:
        return []
    roles = _waiting_roles(req) & set(ROLES)
    if not roles:
        return []
    excluded = {pk for pk in (req.requested_by_id, req.version.created_by_id) if pk is not None}
    excluded |= set(Approval.objects.filter(request=req).values_list("user_id", flat=True))
    candidates = (User.objects.filter(is_active=True, groups__name__in=roles).exclude(pk__in=excluded)
                  .exclude(email="").distinct().order_by("username"))
    out = []
    for user in candidates:
        principal = Principal(user=user)
        if principal.can("approve_promotion") and model_list(principal=principal).filter(pk=req.model_id).exists():
            out.append(user)
    return out


def _approval_email(req: PromotionRequest, user: Any) -> EmailMessage:
    decision = req.decision or {}
    policy = decision.get("policy") or {}
    requester = req.requester.get("username") or req.requester.get("name") or "someone"
    gates = "\n".join(f"  {r.get('status', ''):<8} {r.get('gate', '')}" + (" (waived)" if r.get("waived") else "")
                      for r in decision.get("results", []))
    held = sorted(g.name for g in user.groups.all() if g.name in ROLES)
    subject = f"[govaudit] Approval needed: {req.model.name} v{req.version.version} to {req.target_stage} (#{req.pk})"
    body = (
        f"Hello {user.get_username()},\n\n"
        f"{requester} asks to move {req.model.name} version {req.version.version} "
        f"(artifact {req.version.artifact_sha256[:12]}...) to {req.target_stage}"
        f"{' as a rollback' if req.kind == 'rollback' else ''}. Their reason:\n\n  {req.reason}\n\n"
        f"Policy {policy.get('name', '?')} v{policy.get('version', '?')}; the gates now:\n{gates}\n\n"
        f"You may decide: you hold {', '.join(held)}, and you neither requested this promotion nor registered "
        f"the version.\n"
        f"  Details: GET {_link(f'/api/v1/promotions/{req.pk}/')}\n"
        f"  Approve: POST {_link(f'/api/v1/promotions/{req.pk}/approve/')}\n"
        f"  Reject:  POST {_link(f'/api/v1/promotions/{req.pk}/reject/')} with a comment saying why\n\n"
        f"You receive this because promotion #{req.pk} is awaiting approval from one of your roles.\n"
    )
    return EmailMessage(subject, body, settings.DEFAULT_FROM_EMAIL, [user.email])


def approval_emails_send(*, promotion_id: int) -> int:
    """E-mail an approval request to everyone whose turn it is now; returns how many were sent.

    Run after the decision commits. The recipients are worked out at sending time, so someone
    who decided in the meantime, or a request no longer awaiting approval, gets nothing. A
    retried task may repeat a message, never send one to someone who should not get it.
    Sending is not a governed change, so it appends no audit event (the decision that caused it
    is in the log).
    """
    req = PromotionRequest.objects.select_related("model__team", "version", "policy").filter(pk=promotion_id).first()
    if req is None:
        return 0
    users = approval_recipients(req)
    if not users:
        return 0
    return get_connection().send_messages([_approval_email(req, u) for u in users]) or 0


# --- Delivering one webhook (bookkeeping, run by a worker) ----------------------------------------

@dataclass(frozen=True)
class AttemptOutcome:
    """What one call of ``webhook_delivery_attempt`` did: the delivery's status after it, whether a
    POST was made, and when to call again (seconds) if a retry was scheduled."""

    status: str
    attempted: bool = False
    retry_in: float | None = None


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int, bytes]:
    """POST without following redirects; ``timeout`` bounds the connect and each read."""
    parts = urlsplit(url)
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    conn: http.client.HTTPConnection
    if https:
        conn = http.client.HTTPSConnection(parts.hostname or "", port, timeout=timeout,
                                           context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(parts.hostname or "", port, timeout=timeout)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        conn.request("POST", target, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read(_READ_LIMIT)
    finally:
        conn.close()


def _lease_seconds() -> float:
    """How long a claimed attempt holds off other runs: longer than a POST can take."""
    return 3 * float(settings.GOVAUDIT_WEBHOOK_TIMEOUT_SECONDS) + 60


def _finish(delivery: WebhookDelivery, status: str, error: str, now: datetime) -> None:
    delivery.status = status
    delivery.last_error = error[:500]
    delivery.next_attempt_at = None
    delivery.updated_at = now
    if status == WebhookDeliveryStatus.DELIVERED:
        delivery.delivered_at = now
    delivery.save()


def webhook_delivery_attempt(*, delivery_id: int) -> AttemptOutcome:
    """Make the next attempt at one delivery if it is due, and record how it went.

    Safe to run twice, or concurrently: the row is claimed in a short transaction (attempt
    counted, ``next_attempt_at`` pushed past the longest possible POST), so a second run finds it
    not due, or already final, and sends nothing. The POST itself runs outside any transaction,
    so a slow receiver never holds a database lock. If the process dies after the POST but before
    recording it, the lease expires and the delivery is sent again: delivery is at least once,
    and receivers deduplicate by event id.

    No audit event: an attempt changes no governed state (no model, stage, policy, permission or
    endpoint configuration). The decision it reports is already in the audit log, in the
    transaction that created this row; attempts depend on an outside server's availability and
    would fill the tamper-evident log with network noise. The delivery row is their record
    (status, attempts, last status code and error), shown in the API and the admin.
    """
    now = timezone.now()
    with transaction.atomic():
        delivery = (WebhookDelivery.objects.select_for_update(of=("self",)).select_related("endpoint")
                    .filter(pk=delivery_id).first())
        if delivery is None:
            return AttemptOutcome("gone")  # its endpoint was deleted
        if delivery.status != WebhookDeliveryStatus.PENDING:
            return AttemptOutcome(delivery.status)
        if delivery.next_attempt_at is not None and delivery.next_attempt_at > now:
            return AttemptOutcome(delivery.status)
        endpoint = delivery.endpoint
        if not endpoint.active:
            _finish(delivery, WebhookDeliveryStatus.FAILED,
                    "The endpoint was deactivated before this delivery was sent.", now)
            return AttemptOutcome(delivery.status)
        try:
            secret = _secret_of(endpoint)
        except InvalidToken:
            _finish(delivery, WebhookDeliveryStatus.FAILED,
                    "The endpoint's secret cannot be decrypted (SECRET_KEY changed without keeping the old one in "
                    "SECRET_KEY_FALLBACKS); rotate the secret (PATCH rotate_secret) and give it to the receiver.", now)
            return AttemptOutcome(delivery.status)
        delivery.attempts += 1
        delivery.next_attempt_at = now + timedelta(seconds=_lease_seconds())
        delivery.updated_at = now
        delivery.save(update_fields=["attempts", "next_attempt_at", "updated_at"])
        url, body, attempt = endpoint.url, bytes(delivery.payload), delivery.attempts
        event_type, event_id = delivery.event_type, str(delivery.event_id)

    timestamp = int(time.time())
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, HEADER_EVENT: event_type,
               HEADER_EVENT_ID: event_id, HEADER_DELIVERY: str(delivery_id), HEADER_TIMESTAMP: str(timestamp),
               HEADER_SIGNATURE: sign(secret, timestamp, body)}
    status_code: int | None = None
    try:
        status_code, answer = _post(url, body, headers, float(settings.GOVAUDIT_WEBHOOK_TIMEOUT_SECONDS))
        excerpt = answer.decode("utf-8", "replace")[:_RESPONSE_EXCERPT].strip()
        error = "" if classify(status_code) == "delivered" else \
            f"HTTP {status_code}" + (f": {excerpt}" if excerpt else "")
    except (OSError, http.client.HTTPException) as exc:  # refused, unreachable, timed out, TLS, bad answer
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    verdict = classify(status_code)
    max_attempts = int(settings.GOVAUDIT_WEBHOOK_MAX_ATTEMPTS)

    now = timezone.now()
    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update().filter(pk=delivery_id).first()
        if delivery is None:
            return AttemptOutcome("gone", attempted=True)
        if delivery.status != WebhookDeliveryStatus.PENDING:  # recorded by a run that outlived our lease
            return AttemptOutcome(delivery.status, attempted=True)
        delivery.last_status_code = status_code
        if verdict == "delivered":
            _finish(delivery, WebhookDeliveryStatus.DELIVERED, "", now)
        elif verdict == "retry" and attempt < max_attempts:
            delay = retry_delay(attempt, base=float(settings.GOVAUDIT_WEBHOOK_RETRY_BASE_SECONDS))
            delivery.last_error = error[:500]
            delivery.next_attempt_at = now + timedelta(seconds=delay)
            delivery.updated_at = now
            delivery.save()
            log.info("webhook delivery %s (%s) attempt %s failed (%s); retrying in %.1f s",
                     delivery_id, event_type, attempt, error[:100], delay)
            return AttemptOutcome(delivery.status, attempted=True, retry_in=delay)
        else:
            why = f" Gave up after {attempt} attempts." if verdict == "retry" else \
                " Not retried: the receiver refused it (a 4xx other than 429, or a redirect)."
            _finish(delivery, WebhookDeliveryStatus.FAILED, error[:500 - len(why)] + why, now)
            log.warning("webhook delivery %s (%s) failed: %s", delivery_id, event_type, delivery.last_error)
    return AttemptOutcome(delivery.status, attempted=True)


def deliveries_due(*, limit: int = 500) -> list[int]:
    """Pending deliveries whose next attempt is due (the sweep's work list, oldest first)."""
    return list(WebhookDelivery.objects.filter(status=WebhookDeliveryStatus.PENDING,
                                               next_attempt_at__lte=timezone.now())
                .order_by("next_attempt_at", "id").values_list("pk", flat=True)[:limit])
