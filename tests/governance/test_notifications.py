"""Notifications on promotion decisions: signed webhooks to a real local HTTP receiver, retries,
failures, e-mail to the approvers whose turn it is, the webhook API, and a real Celery worker.

Deliveries run after commit. Inside a test transaction nothing commits, so the tests run the
after-commit callbacks with ``django_capture_on_commit_callbacks(execute=True)``; tasks run
in-process (no broker), except in the worker test at the end.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator

import pytest
from django.db import transaction
from django.utils import timezone

from governance import notifications, promotions, tasks
from governance import services as gov
from governance.access import Principal
from governance.errors import ValidationFailed
from governance.models import PromotionRequest, WebhookDelivery, WebhookEndpoint
from tests.factories import SYSTEM, Cast, VersionFactory

POLICY = """
name: alpha-production
target_stage: production
applies_to:
  models: [alpha-model]
gates:
  - type: validation_metric
    metric: accuracy
    op: ">="
    threshold: 0.85
  - type: approvals
    count: {count}
    roles: [{roles}]
"""
NO_APPROVALS = """
name: alpha-staging
target_stage: staging
applies_to:
  models: [alpha-model]
gates:
  - type: validation_metric
    metric: accuracy
    op: ">="
    threshold: 0.85
"""
ALL = list(notifications.EVENT_TYPES)


# --- A real receiver: http.server in a thread -----------------------------------------------------

@dataclass
class Received:
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    at: float = field(default_factory=time.monotonic)


@dataclass
class Receiver:
    """Answers each POST with the next scripted status (the last one repeats) and records it."""

    statuses: list[int] = field(default_factory=lambda: [200])
    delay: float = 0.0
    requests: list[Received] = field(default_factory=list)
    url: str = ""

    def next_status(self) -> int:
        return self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]

    def events(self, secret: str) -> list[dict[str, Any]]:
        """Every body received, each verified as a receiver should (signature, age, headers)."""
        return [verify_delivery(secret, r.headers, r.body) for r in self.requests]


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        receiver: Receiver = self.server.receiver  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        status = receiver.next_status()
        receiver.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        if receiver.delay:
            time.sleep(receiver.delay)
        answer = b"thanks" if status < 300 else f"receiver says {status}".encode()
        self.send_response(status)
        if 300 <= status < 400:
            self.send_header("Location", "http://127.0.0.1:9/elsewhere")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def running_receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.receiver = receiver  # type: ignore[attr-defined]
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/govaudit?src=test"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as r:
        yield r


def verify_delivery(secret: str, headers: dict[str, str], body: bytes, *, tolerance: int = 300) -> dict[str, Any]:
    """What docs/notifications.md tells receivers to do, written independently of our signer."""
    timestamp = headers["x-govaudit-timestamp"]
    if abs(time.time() - int(timestamp)) > tolerance:
        raise ValueError("stale delivery")
    expected = "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, headers["x-govaudit-signature"]):
        raise ValueError("bad signature")
    event = json.loads(body)
    assert headers["x-govaudit-event"] == event["type"] and headers["x-govaudit-event-id"] == event["id"]
    assert headers["content-type"] == "application/json"
    return event


# --- Helpers -------------------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def _fast_retries(settings: Any) -> None:
    settings.GOVAUDIT_WEBHOOK_RETRY_BASE_SECONDS = 0.05
    settings.GOVAUDIT_WEBHOOK_TIMEOUT_SECONDS = 2
    settings.GOVAUDIT_WEBHOOK_MAX_ATTEMPTS = 4


@pytest.fixture
def committed(django_capture_on_commit_callbacks: Any) -> Callable[..., Any]:
    """Run a call as if its transaction committed: its after-commit work (deliveries, e-mail) runs."""

    def run(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return fn(*args, **kwargs)

    return run


def _hook(url: str, events: list[str] | None = None, team: Any = None, name: str = "ci") -> tuple[WebhookEndpoint, str]:
    return notifications.webhook_create(actor=SYSTEM, name=name, url=url, events=events or ALL, team=team)


def _policy(count: int = 1, roles: str = "approver") -> None:
    promotions.policy_publish(actor=SYSTEM, text=POLICY.format(count=count, roles=roles))


def _validation(version: Any, accuracy: float, *, status: str = "succeeded") -> Any:
    from monitoring.models import Report

    from audits.core.canonical import canonical_bytes

    result = {"task": "classification", "metrics": {"accuracy": accuracy}}
    done = status == "succeeded"
    return Report.objects.create(
        version=version, kind="validation", status=status, options={}, result=result if done else None,
        result_digest=hashlib.sha256(canonical_bytes(result)).hexdigest() if done else "",
        inputs_digest="0" * 64, finished_at=timezone.now() if status != "queued" else None)


def _request(api: Any, version: int = 2, stage: str = "production") -> dict[str, Any]:
    r = api.post(f"/api/v1/models/alpha-model/versions/{version}/promotions/",
                 {"target_stage": stage, "reason": "quarterly retrain"}, format="json")
    assert r.status_code == 201, r.content
    return r.json()


def _open(pk: int) -> PromotionRequest:
    return PromotionRequest.objects.get(pk=pk)


def _due_now() -> None:
    """Let the retry delay pass (tests use 0.05 s as the base), then run the periodic sweep."""
    time.sleep(0.12)
    tasks.deliver_due_webhooks()


# --- Pure cores ----------------------------------------------------------------------------------

def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    body = b'{"a":1}'
    expected = hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert notifications.sign("s3cret", 1700000000, body) == f"sha256={expected}"
    assert notifications.sign("s3cret", 1700000001, body) != notifications.sign("s3cret", 1700000000, body)


def test_retry_schedule_doubles_with_jitter_and_a_cap() -> None:
    low = [notifications.retry_delay(n, base=30, rand=lambda: 0.0) for n in range(1, 10)]
    high = [notifications.retry_delay(n, base=30, rand=lambda: 1.0) for n in range(1, 10)]
    assert high[:4] == [30, 60, 120, 240] and low[:4] == [15, 30, 60, 120]
    assert high[-1] == notifications.RETRY_CAP_SECONDS and low[-1] == notifications.RETRY_CAP_SECONDS / 2
    draws = {notifications.retry_delay(3, base=30) for _ in range(50)}
    assert len(draws) > 1 and all(60 <= d <= 120 for d in draws)


@pytest.mark.parametrize(("code", "verdict"), [(200, "delivered"), (204, "delivered"), (None, "retry"),
                                               (429, "retry"), (500, "retry"), (503, "retry"), (400, "failed"),
                                               (401, "failed"), (404, "failed"), (410, "failed"), (302, "failed")])
def test_classification(code: int | None, verdict: str) -> None:
    assert notifications.classify(code) == verdict


@pytest.mark.parametrize(("url", "fragment"), [
    ("ftp://hooks.example.org/x", "must start with"),
    ("hooks.example.org/x", "must start with"),
    ("https://", "must name a host"),
    ("https://user:pw@hooks.example.org/", "credentials"),
    ("https://hooks.example.org/#frag", "fragment"),
    ("https://hooks.example.org/a b", "spaces"),
    ("https://hooks.example.org:99999/", "not a valid URL"),
    ("https://hooks.example.org/" + "x" * 2000, "at most 2000"),
])
def test_bad_urls_are_refused_with_a_reason(url: str, fragment: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        notifications.validate_url(url, allow_http=True)
    assert fragment in info.value.message and info.value.code == "invalid_url"


def test_plain_http_only_where_allowed() -> None:
    assert notifications.validate_url("http://hooks-svc:8080/in", allow_http=True) == "http://hooks-svc:8080/in"
    with pytest.raises(ValidationFailed) as info:
        notifications.validate_url("http://hooks-svc:8080/in", allow_http=False)
    assert "GOVAUDIT_WEBHOOK_ALLOW_HTTP" in info.value.message


# --- Every decision, delivered and signed ---------------------------------------------------------

def _scenario_requested(cast: Cast, api: Callable[[str], Any], run: Callable[..., Any]) -> None:
    _validation(cast.versions["alpha2"], 0.9)
    run(_request, api("ml_engineer"))


def _scenario_approved(cast: Cast, api: Callable[[str], Any], run: Callable[..., Any]) -> None:
    _validation(cast.versions["alpha2"], 0.9)
    pk = run(_request, api("ml_engineer"))["id"]
    run(api("approver").post, f"/api/v1/promotions/{pk}/approve/", {"comment": "fine"}, format="json")


def _scenario_rejected(cast: Cast, api: Callable[[str], Any], run: Callable[..., Any]) -> None:
    _validation(cast.versions["alpha2"], 0.9)
    pk = run(_request, api("ml_engineer"))["id"]
    run(api("approver").post, f"/api/v1/promotions/{pk}/reject/", {"comment": "no calibration"}, format="json")


def _scenario_cancelled(cast: Cast, api: Callable[[str], Any], run: Callable[..., Any]) -> None:
    _validation(cast.versions["alpha2"], 0.9)
    pk = run(_request, api("ml_engineer"))["id"]
    run(api("ml_engineer").post, f"/api/v1/promotions/{pk}/cancel/", {}, format="json")


def _scenario_blocked(cast: Cast, api: Callable[[str], Any], run: Callable[..., Any]) -> None:
    _validation(cast.versions["alpha2"], 0.5)
    run(_request, api("ml_engineer"))


def _scenario_expired(cast: Cast, api: Callable[[str], Any], run: Callable[..., Any]) -> None:
    _validation(cast.versions["alpha2"], 0.9)
    run(_request, api("ml_engineer"))
    run(promotions.promotion_expire, actor=SYSTEM, older_than=timedelta(seconds=-1))


def _scenario_reevaluated(cast: Cast, api: Callable[[str], Any], run: Callable[..., Any]) -> None:
    from monitoring.models import Report

    pending = _validation(cast.versions["alpha2"], 0.9, status="queued")
    pk = run(_request, api("ml_engineer"))["id"]
    Report.objects.filter(pk=pending.pk).delete()
    _validation(cast.versions["alpha2"], 0.3)
    run(promotions.promotion_reevaluate, actor=SYSTEM, request=_open(pk))


def _scenario_promoted_on_request(cast: Cast, api: Callable[[str], Any], run: Callable[..., Any]) -> None:
    promotions.policy_publish(actor=SYSTEM, text=NO_APPROVALS)
    _validation(cast.versions["alpha2"], 0.9)
    run(_request, api("ml_engineer"), stage="staging")


SCENARIOS = {
    "requested": (_scenario_requested, ["promotion.requested"], "awaiting_approval"),
    "approved": (_scenario_approved, ["promotion.requested", "promotion.approved", "promotion.promoted"], "promoted"),
    "rejected": (_scenario_rejected, ["promotion.requested", "promotion.rejected"], "rejected"),
    "cancelled": (_scenario_cancelled, ["promotion.requested", "promotion.cancelled"], "cancelled"),
    "blocked": (_scenario_blocked, ["promotion.requested", "promotion.blocked"], "blocked"),
    "expired": (_scenario_expired, ["promotion.requested", "promotion.expired"], "expired"),
    "reevaluated": (_scenario_reevaluated, ["promotion.requested", "promotion.reevaluated", "promotion.blocked"],
                    "blocked"),
    "promoted_on_request": (_scenario_promoted_on_request, ["promotion.requested", "promotion.promoted"], "promoted"),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_each_decision_reaches_the_receiver_signed(name: str, cast: Cast, client_for: Any, committed: Any,
                                                   receiver: Receiver) -> None:
    _policy()
    endpoint, secret = _hook(receiver.url)
    scenario, expected, final_state = SCENARIOS[name]
    scenario(cast, client_for, committed)
    events = receiver.events(secret)
    assert [e["type"] for e in events] == expected
    assert all(r.path == "/hooks/govaudit?src=test" for r in receiver.requests)
    assert len({e["id"] for e in events}) == len(events)
    last = events[-1]
    assert last["schema"] == "govaudit.webhook/v1" and last["data"]["state"] == final_state
    data = last["data"]
    assert data["model"] == "alpha-model" and data["team"] == "alpha" and data["kind"] == "promotion"
    assert data["artifact_sha256"] == cast.versions["alpha2"].artifact_sha256
    assert data["url"].endswith(f"/api/v1/promotions/{data['promotion']}/")
    if final_state != "awaiting_approval":
        assert data["receipt"] and data["decided_at"]  # final: the signed receipt travels with it
    deliveries = WebhookDelivery.objects.filter(endpoint=endpoint)
    assert deliveries.count() == len(expected)
    assert set(deliveries.values_list("status", flat=True)) == {"delivered"}
    assert all(d.attempts == 1 and d.last_status_code == 200 and d.next_attempt_at is None for d in deliveries)


def test_a_tampered_body_or_wrong_secret_fails_verification(cast: Cast, client_for: Any, committed: Any,
                                                            receiver: Receiver) -> None:
    _policy()
    _, secret = _hook(receiver.url)
    _scenario_blocked(cast, client_for, committed)
    got = receiver.requests[0]
    verify_delivery(secret, got.headers, got.body)
    with pytest.raises(ValueError, match="bad signature"):
        verify_delivery(secret, got.headers, got.body.replace(b"blocked", b"promoted"))
    with pytest.raises(ValueError, match="bad signature"):
        verify_delivery(secret + "x", got.headers, got.body)
    with pytest.raises(ValueError, match="stale"):
        verify_delivery(secret, got.headers | {"x-govaudit-timestamp": str(int(time.time()) - 3600)}, got.body)


# --- Retries, failures, idempotency --------------------------------------------------------------

def test_retried_on_500_then_delivered(cast: Cast, client_for: Any, committed: Any, receiver: Receiver) -> None:
    _policy()
    _, secret = _hook(receiver.url, events=["promotion.blocked"])
    receiver.statuses = [500, 503, 200]
    _scenario_blocked(cast, client_for, committed)
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 1, 500)
    assert delivery.last_error == "HTTP 500: receiver says 500" and delivery.next_attempt_at is not None
    _due_now()
    _due_now()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code, delivery.last_error) == \
        ("delivered", 3, 200, "")
    events = receiver.events(secret)
    assert len(events) == 3 and len({e["id"] for e in events}) == 1  # the same event, re-signed each time
    assert len({r.headers["x-govaudit-delivery"] for r in receiver.requests}) == 1


def test_network_errors_and_timeouts_are_retried(cast: Cast, client_for: Any, committed: Any, receiver: Receiver,
                                                 settings: Any) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/"
    _policy()
    _hook(dead, events=["promotion.blocked"], name="dead")
    settings.GOVAUDIT_WEBHOOK_TIMEOUT_SECONDS = 0.3
    receiver.delay = 1.0
    _hook(receiver.url, events=["promotion.blocked"], name="slow")
    _scenario_blocked(cast, client_for, committed)
    refused = WebhookDelivery.objects.get(endpoint__name="dead")
    slow = WebhookDelivery.objects.get(endpoint__name="slow")
    assert refused.status == "pending" and refused.last_status_code is None
    assert "ConnectionRefusedError" in refused.last_error
    assert slow.status == "pending" and "timed out" in slow.last_error.lower()


@pytest.mark.parametrize("code", [400, 404, 302])
def test_no_retry_on_4xx_or_redirect(code: int, cast: Cast, client_for: Any, committed: Any,
                                     receiver: Receiver) -> None:
    _policy()
    _hook(receiver.url, events=["promotion.blocked"])
    receiver.statuses = [code, 200]
    _scenario_blocked(cast, client_for, committed)
    _due_now()
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("failed", 1, code)
    assert "Not retried" in delivery.last_error and len(receiver.requests) == 1


def _given_up(cast: Cast, client_for: Any, committed: Any, receiver: Receiver, settings: Any, *, status: int,
              attempts: int) -> tuple[WebhookEndpoint, str, WebhookDelivery]:
    """A blocked decision's delivery that the worker gave up on: ``receiver`` answered ``status``
    to each of ``attempts`` attempts (one more sweep than needed, to show nothing follows)."""
    settings.GOVAUDIT_WEBHOOK_MAX_ATTEMPTS = attempts
    _policy()
    endpoint, secret = _hook(receiver.url, events=["promotion.blocked"])
    receiver.statuses = [status]
    _scenario_blocked(cast, client_for, committed)
    for _ in range(attempts + 1):
        _due_now()
    return endpoint, secret, WebhookDelivery.objects.get()


def test_failed_after_max_attempts_and_visible(cast: Cast, client_for: Any, committed: Any, receiver: Receiver,
                                               settings: Any) -> None:
    endpoint, _, delivery = _given_up(cast, client_for, committed, receiver, settings, status=502, attempts=3)
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == ("failed", 3, None)
    assert delivery.last_error == "HTTP 502: receiver says 502 Gave up after 3 attempts."
    assert len(receiver.requests) == 3
    listed = client_for("compliance_officer").get(f"/api/v1/webhooks/{endpoint.pk}/deliveries/",
                                                  {"status": "failed"}).json()
    assert listed["count"] == 1
    row = listed["results"][0]
    assert row["status"] == "failed" and row["attempts"] == 3 and row["last_status_code"] == 502
    assert row["payload"]["type"] == "promotion.blocked" and "Gave up" in row["last_error"]
    from django.test import Client

    portal = Client()
    portal.force_login(cast.users["compliance_officer"])
    page = portal.get("/admin/governance/webhookdelivery/?status__exact=failed")
    assert page.status_code == 200 and b"promotion.blocked" in page.content
    detail = portal.get(f"/admin/governance/webhookdelivery/{delivery.pk}/change/")
    assert detail.status_code == 200 and b"Gave up after 3 attempts" in detail.content


def test_a_failed_delivery_can_be_sent_again_by_a_person(cast: Cast, client_for: Any, committed: Any,
                                                         receiver: Receiver, settings: Any, sequenced: Any) -> None:
    """The receiver was down past the retries: a webhook manager resends it, same event id and bytes."""
    endpoint, secret, delivery = _given_up(cast, client_for, committed, receiver, settings, status=503, attempts=2)
    assert (delivery.status, delivery.attempts) == ("failed", 2)
    url = f"/api/v1/webhooks/{endpoint.pk}/deliveries/{delivery.pk}/redeliver/"
    assert client_for("ml_engineer").post(url).status_code == 403
    manager = client_for("compliance_officer")
    receiver.statuses = [200]
    r = committed(manager.post, url)
    assert r.status_code == 200, r.content
    assert r.json()["id"] == delivery.pk and r.json()["endpoint"] == endpoint.name
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error, delivery.last_status_code) == \
        ("delivered", 1, "", 200)
    received = receiver.events(secret)  # each one verified as a receiver would
    assert len(received) == 3 and received[-1]["id"] == received[0]["id"]  # one event: receivers deduplicate
    assert receiver.requests[-1].body == receiver.requests[0].body
    event = [e for e in sequenced() if e.action == "governance.webhook.redelivered"]
    assert len(event) == 1
    leaf = json.loads(bytes(event[0].leaf))
    assert leaf["actor"]["username"] == "compliance_officer" and leaf["payload"]["delivery"] == delivery.pk
    assert leaf["payload"]["previous"]["status"] == "failed" and leaf["payload"]["previous"]["attempts"] == 2

    # still being retried: the worker owns it
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status="pending")
    pending = manager.post(url)
    assert pending.status_code == 409 and pending.json()["error"]["code"] == "delivery_pending"
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status="failed")
    notifications.webhook_update(actor=SYSTEM, endpoint=endpoint, changes={"active": False})
    off = manager.post(url)
    assert off.status_code == 409 and off.json()["error"]["code"] == "webhook_inactive"
    missing = manager.post(f"/api/v1/webhooks/{endpoint.pk}/deliveries/999999/redeliver/")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "delivery_not_found"
    assert len(receiver.requests) == 3  # none of the refusals sent anything


def test_delivery_is_idempotent(cast: Cast, client_for: Any, committed: Any, receiver: Receiver) -> None:
    _policy()
    _hook(receiver.url, events=["promotion.blocked"])
    _scenario_blocked(cast, client_for, committed)
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "delivered"
    for _ in range(2):  # a redelivered task message, and the sweep
        assert tasks.deliver_webhook(delivery.pk) == "delivered"
        tasks.deliver_due_webhooks()
    assert len(receiver.requests) == 1
    delivery.refresh_from_db()
    assert delivery.attempts == 1
    # an attempt in flight (claimed, lease running) is not made a second time either
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status="pending", next_attempt_at=timezone.now()
                                                          + timedelta(minutes=1))
    outcome = notifications.webhook_delivery_attempt(delivery_id=delivery.pk)
    assert outcome.attempted is False and len(receiver.requests) == 1


def test_deactivated_or_deleted_endpoint_sends_nothing_more(cast: Cast, client_for: Any, committed: Any,
                                                            receiver: Receiver) -> None:
    _policy()
    endpoint, _ = _hook(receiver.url, events=["promotion.blocked"])
    receiver.statuses = [500]
    _scenario_blocked(cast, client_for, committed)
    notifications.webhook_update(actor=SYSTEM, endpoint=endpoint, changes={"active": False})
    _due_now()
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "failed" and "deactivated" in delivery.last_error and len(receiver.requests) == 1
    notifications.webhook_delete(actor=SYSTEM, endpoint=endpoint)
    assert notifications.webhook_delivery_attempt(delivery_id=delivery.pk).status == "gone"


def test_broker_outage_does_not_fail_the_decision(cast: Cast, client_for: Any, committed: Any, receiver: Receiver,
                                                  monkeypatch: Any) -> None:
    def down(*args: Any) -> None:
        raise ConnectionError("broker unreachable")

    _policy()
    _hook(receiver.url, events=["promotion.blocked"])
    with monkeypatch.context() as m:
        m.setattr(tasks.deliver_webhook, "delay", down)
        _scenario_blocked(cast, client_for, committed)  # asserts the request answered 201
    assert receiver.requests == [] and WebhookDelivery.objects.get().status == "pending"
    assert tasks.deliver_due_webhooks() == 1  # the periodic sweep sends it
    assert WebhookDelivery.objects.get().status == "delivered" and len(receiver.requests) == 1


def test_undecryptable_secret_fails_with_instructions(cast: Cast, client_for: Any, committed: Any,
                                                      receiver: Receiver, settings: Any) -> None:
    _policy()
    _hook(receiver.url, events=["promotion.blocked"])
    settings.SECRET_KEY = "a-different-secret-key-" + "x" * 40
    _scenario_blocked(cast, client_for, committed)
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "failed" and "rotate the secret" in delivery.last_error and not receiver.requests


def test_old_secret_key_in_fallbacks_still_decrypts(cast: Cast, settings: Any) -> None:
    endpoint, secret = _hook("https://hooks.example.org/x")
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-new-secret-key-" + "y" * 40
    assert notifications._secret_of(WebhookEndpoint.objects.get(pk=endpoint.pk)) == secret


# --- Transactions --------------------------------------------------------------------------------

def test_rolled_back_decision_notifies_nobody(cast: Cast, receiver: Receiver, mailoutbox: list[Any],
                                              django_capture_on_commit_callbacks: Any) -> None:
    _policy()
    _hook(receiver.url)
    cast.users["approver"].email = "approver@example.org"
    cast.users["approver"].save()
    _validation(cast.versions["alpha2"], 0.9)
    engineer = Principal(user=cast.users["ml_engineer"])
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError):
            with transaction.atomic():
                req, _ = promotions.promotion_request(actor=engineer, version=cast.versions["alpha2"],
                                                      target_stage="production", reason="rolled back")
                assert req.state == "awaiting_approval" and WebhookDelivery.objects.count() == 1
                raise RuntimeError("the caller fails after the decision")
    assert callbacks == [] and WebhookDelivery.objects.count() == 0
    assert receiver.requests == [] and mailoutbox == []
    # the same decision, committed, does notify (so the assertions above could fail)
    with django_capture_on_commit_callbacks(execute=True):
        promotions.promotion_request(actor=engineer, version=cast.versions["alpha2"], target_stage="production",
                                     reason="committed")
    assert len(receiver.requests) == 1 and len(mailoutbox) == 1


def test_notify_outside_a_transaction_is_a_programming_error() -> None:
    """No database here, so no test transaction either: the guard refuses before touching anything."""
    assert not transaction.get_connection().in_atomic_block
    with pytest.raises(RuntimeError, match="inside the decision's transaction"):
        notifications.notify_promotion_decision(PromotionRequest(), "governance.promotion.requested")


def test_unknown_decision_is_a_programming_error(cast: Cast) -> None:
    req = PromotionRequest.objects.get(version=cast.versions["alpha2"])
    with transaction.atomic(), pytest.raises(ValueError, match="not a promotion decision"):
        notifications.notify_promotion_decision(req, "governance.promotion.exploded")


# --- Scope and subscriptions ---------------------------------------------------------------------

def test_team_scoped_hook_hears_only_its_teams_models(cast: Cast, client_for: Any, committed: Any,
                                                      receiver: Receiver) -> None:
    _policy()
    _hook(receiver.url, team=cast.teams["beta"], name="beta-only")
    with running_receiver() as alpha_receiver:
        _, alpha_secret = _hook(alpha_receiver.url, team=cast.teams["alpha"], name="alpha-only")
        with running_receiver() as everything:
            _, all_secret = _hook(everything.url, name="all")
            _scenario_blocked(cast, client_for, committed)
            beta = Principal(user=cast.users["beta_engineer"])
            committed(promotions.promotion_request, actor=beta, version=cast.versions["beta1"],
                      target_stage="staging", reason="beta goes")
            assert [e["data"]["model"] for e in alpha_receiver.events(alpha_secret)] == ["alpha-model"] * 2
            assert [e["data"]["model"] for e in everything.events(all_secret)] == \
                ["alpha-model", "alpha-model", "beta-model", "beta-model"]
    assert [json.loads(r.body)["data"]["model"] for r in receiver.requests] == ["beta-model", "beta-model"]


def test_only_subscribed_events_and_active_endpoints(cast: Cast, client_for: Any, committed: Any,
                                                     receiver: Receiver) -> None:
    _policy()
    _hook(receiver.url, events=["promotion.promoted", "promotion.rejected"], name="outcomes")
    off, _ = _hook(receiver.url, name="off")
    notifications.webhook_update(actor=SYSTEM, endpoint=off, changes={"active": False})
    _scenario_approved(cast, client_for, committed)
    assert [json.loads(r.body)["type"] for r in receiver.requests] == ["promotion.promoted"]
    assert not WebhookDelivery.objects.filter(endpoint=off).exists()


# --- E-mail to the approvers whose turn it is ----------------------------------------------------

def _person(username: str, roles: list[str], teams: list[Any], **fields: Any) -> Any:
    """A user made through the service, then given ``fields`` (email, is_active) directly."""
    user = gov.user_create(actor=SYSTEM, username=username, email=f"{username}@example.org", roles=roles, teams=teams)
    type(user).objects.filter(pk=user.pk).update(**fields)
    user.refresh_from_db()
    return user


def test_approval_emails_go_exactly_to_those_who_may_approve_now(cast: Cast, client_for: Any, committed: Any,
                                                                 mailoutbox: list[Any]) -> None:
    from django.contrib.auth.models import Permission

    alpha, beta = cast.teams["alpha"], cast.teams["beta"]
    _policy(count=2, roles="approver, ml_engineer")
    approve = Permission.objects.get(codename="approve_promotion", content_type__app_label="governance")
    _person("second_approver", ["approver"], [])
    _person("approver_no_mail", ["approver"], [], email="")
    _person("retired_approver", ["approver"], [], is_active=False)
    for name, team in (("alpha_reviewer", alpha), ("beta_reviewer", beta)):
        # an engineer given the approval capability directly: sees only their team's models
        _person(name, ["ml_engineer"], [team]).user_permissions.add(approve)
    _person("co_no_role_in_policy", ["compliance_officer"], [])
    creator = _person("creator", ["approver", "data_scientist"], [alpha])
    for who in ("approver", "administrator", "viewer", "ml_engineer"):
        cast.users[who].email = f"{who}@example.org"
        cast.users[who].save()
    gov.role_grant(actor=SYSTEM, user=cast.users["ml_engineer"], role="approver")  # the requester
    version = VersionFactory(model=cast.models["alpha"], actor=Principal(user=creator))
    _validation(version, 0.95)

    pk = committed(_request, client_for("ml_engineer"), version=version.version)["id"]
    # not: the requester, the version's creator, the administrator and compliance officer (they hold
    # none of the policy's roles), the viewer, beta's reviewer (cannot see the model), no address, inactive
    assert sorted(m.to[0] for m in mailoutbox) == [
        "alpha_reviewer@example.org", "approver@example.org", "second_approver@example.org"]
    assert all(len(m.to) == 1 and not m.cc and not m.bcc for m in mailoutbox)
    message = mailoutbox[0]
    assert message.subject == f"[govaudit] Approval needed: alpha-model v{version.version} to production (#{pk})"
    assert f"/api/v1/promotions/{pk}/approve/" in message.body and "quarterly retrain" in message.body
    assert "ml_engineer asks to move alpha-model" in message.body

    mailoutbox.clear()
    committed(client_for("approver").post, f"/api/v1/promotions/{pk}/approve/", {}, format="json")
    assert _open(pk).state == "awaiting_approval"  # one of two approvals
    assert sorted(m.to[0] for m in mailoutbox) == ["alpha_reviewer@example.org", "second_approver@example.org"]

    mailoutbox.clear()
    second = Principal(user=type(creator).objects.get(username="second_approver"))
    committed(promotions.promotion_approve, actor=second, request=_open(pk))
    assert _open(pk).state == "promoted" and mailoutbox == []


def test_reevaluation_emails_only_when_the_turn_comes(cast: Cast, committed: Any, client_for: Any,
                                                      mailoutbox: list[Any]) -> None:
    from monitoring.models import Report

    _policy()
    cast.users["approver"].email = "approver@example.org"
    cast.users["approver"].save()
    queued = _validation(cast.versions["alpha2"], 0.9, status="queued")
    pk = committed(_request, client_for("ml_engineer"))["id"]
    assert _open(pk).state == "waiting_for_evidence" and mailoutbox == []
    Report.objects.filter(pk=queued.pk).delete()
    _validation(cast.versions["alpha2"], 0.9)
    committed(promotions.promotion_reevaluate, actor=SYSTEM, request=_open(pk))
    assert _open(pk).state == "awaiting_approval" and [m.to for m in mailoutbox] == [["approver@example.org"]]
    committed(promotions.promotion_reevaluate, actor=SYSTEM, request=_open(pk))  # nothing changed
    assert len(mailoutbox) == 1


def test_email_skips_people_who_decided_before_it_was_sent(cast: Cast, client_for: Any,
                                                          mailoutbox: list[Any]) -> None:
    _policy(count=2)
    cast.users["approver"].email = "approver@example.org"
    cast.users["approver"].save()
    _validation(cast.versions["alpha2"], 0.9)
    pk = _request(client_for("ml_engineer"))["id"]  # not committed: no e-mail yet
    assert [u.pk for u in notifications.approval_recipients(_open(pk))] == [cast.users["approver"].pk]
    promotions.promotion_approve(actor=Principal(user=cast.users["approver"]), request=_open(pk))
    assert _open(pk).state == "awaiting_approval"  # one of two
    assert tasks.send_approval_emails(pk) == 0 and mailoutbox == []  # the one who could have, already did
    promotions.promotion_cancel(actor=SYSTEM, request=_open(pk))
    assert notifications.approval_recipients(_open(pk)) == []  # closed: nobody's turn


# --- The API -------------------------------------------------------------------------------------

def test_secret_is_shown_once_and_never_again(cast: Cast, client_for: Any, committed: Any, receiver: Receiver,
                                              sequenced: Any, caplog: Any) -> None:
    caplog.set_level("DEBUG")
    co = client_for("compliance_officer")
    created = co.post("/api/v1/webhooks/", {"name": "siem", "url": receiver.url, "events": ALL}, format="json")
    assert created.status_code == 201, created.content
    secret = created.json()["secret"]
    assert secret.startswith("gvwh_") and len(secret) >= 40
    pk = created.json()["id"]
    _policy()
    _scenario_blocked(cast, client_for, committed)
    receiver.events(secret)  # the receiver verifies with the secret it was given
    seen = [co.get("/api/v1/webhooks/").content, co.get(f"/api/v1/webhooks/{pk}/").content,
            co.get(f"/api/v1/webhooks/{pk}/deliveries/").content,
            co.patch(f"/api/v1/webhooks/{pk}/", {"name": "siem-2"}, format="json").content]
    assert all(secret.encode() not in body and b"secret" not in body for body in seen)
    row = WebhookEndpoint.objects.get(pk=pk)
    assert secret not in row.secret_encrypted and secret.encode() not in bytes(WebhookDelivery.objects.first().payload)
    from django.test import Client

    portal = Client()
    portal.force_login(cast.users["administrator"])
    for url in ("/admin/governance/webhookendpoint/", f"/admin/governance/webhookendpoint/{pk}/change/"):
        page = portal.get(url)
        assert page.status_code == 200 and secret.encode() not in page.content
        assert row.secret_encrypted.encode() not in page.content
    rotated = co.patch(f"/api/v1/webhooks/{pk}/", {"rotate_secret": True}, format="json").json()
    new = rotated["secret"]
    assert new != secret and new.startswith("gvwh_")
    assert b"secret" not in co.get(f"/api/v1/webhooks/{pk}/").content
    events = [e for e in sequenced() if e.action.startswith("governance.webhook.")]
    assert [e.action for e in events] == ["governance.webhook.created", "governance.webhook.updated",
                                          "governance.webhook.updated"]
    leaves = b"".join(bytes(e.leaf) for e in events)
    assert secret.encode() not in leaves and new.encode() not in leaves and b"secret_encrypted" not in leaves
    assert json.loads(bytes(events[-1].leaf))["payload"] == {"changes": {}, "secret_rotated": True}
    assert secret not in caplog.text and new not in caplog.text
    # the rotated secret signs from now on
    receiver.requests.clear()
    committed(_request, client_for("ml_engineer"))  # blocked again (same evidence)
    assert [e["type"] for e in receiver.events(new)] == ["promotion.requested", "promotion.blocked"]
    with pytest.raises(ValueError, match="bad signature"):
        receiver.events(secret)


def test_crud_and_audit_through_the_api(cast: Cast, client_for: Any, sequenced: Any) -> None:
    co = client_for("compliance_officer")
    r = co.post("/api/v1/webhooks/", {"name": "chat", "url": "https://hooks.example.org/in",
                                      "events": ["promotion.promoted", "promotion.blocked", "promotion.promoted"],
                                      "team": "beta"}, format="json")
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["events"] == ["promotion.promoted", "promotion.blocked"] and body["team"] == "beta"
    assert body["created_by"] == "compliance_officer" and body["active"] is True
    pk = body["id"]
    listed = co.get("/api/v1/webhooks/").json()
    assert listed["count"] == 1 and "secret" not in listed["results"][0]
    changed = co.patch(f"/api/v1/webhooks/{pk}/", {"team": None, "active": False, "events": ["promotion.requested"]},
                       format="json")
    assert changed.status_code == 200 and changed.json()["team"] is None and changed.json()["active"] is False
    assert co.delete(f"/api/v1/webhooks/{pk}/").status_code == 204
    assert co.get(f"/api/v1/webhooks/{pk}/").status_code == 404
    events = [e for e in sequenced() if e.target_type == "governance.webhook"]
    assert [e.action for e in events] == ["governance.webhook.created", "governance.webhook.updated",
                                          "governance.webhook.deleted"]
    update = json.loads(bytes(events[1].leaf))["payload"]
    assert update["changes"] == {"active": {"from": True, "to": False}, "team": {"from": "beta", "to": None},
                                 "events": {"from": ["promotion.promoted", "promotion.blocked"],
                                            "to": ["promotion.requested"]}}
    deleted = json.loads(bytes(events[2].leaf))["payload"]
    assert deleted["name"] == "chat" and deleted["deliveries"] == {"pending": 0, "delivered": 0, "failed": 0}


@pytest.mark.parametrize(("body", "code", "fragment"), [
    ({"name": "x", "url": "ftp://example.org/", "events": ALL}, "invalid_url", "must start with"),
    ({"name": "x", "url": "https://u:p@example.org/", "events": ALL}, "invalid_url", "credentials"),
    ({"name": "x", "url": "https://example.org/", "events": ["promotion.exploded"]}, "invalid",
     "'promotion.exploded' is not an event type; known:"),
    ({"name": "x", "url": "https://example.org/", "events": []}, "invalid", "events"),
    ({"name": "x" * 101, "url": "https://example.org/", "events": ALL}, "invalid", "no more than 100"),
    ({"name": "x", "url": "https://example.org/" + "a" * 2000, "events": ALL}, "invalid", "no more than 2000"),
    ({"name": "x", "url": "https://example.org/", "events": ALL * 3}, "invalid", "no more than 8"),
    ({"name": "x", "url": "https://example.org/", "events": "promotion.promoted"}, "invalid", "JSON array"),
    ({"name": "x", "url": "https://example.org/", "events": ALL, "active": "yes"}, "invalid", "true or false"),
    ({"name": "x", "url": "https://example.org/", "events": ALL, "secret": "mine"}, "invalid", "not accepted"),
    ({"name": "x", "url": "https://example.org/", "events": ALL, "team": "gamma"}, "unknown_team", "No team"),
    ({"url": "https://example.org/", "events": ALL}, "invalid", "name: This field is required"),
])
def test_bad_input_answers_400_with_a_message(body: dict[str, Any], code: str, fragment: str, cast: Cast,
                                              client_for: Any) -> None:
    r = client_for("compliance_officer").post("/api/v1/webhooks/", body, format="json")
    assert r.status_code == 400, r.content
    error = r.json()["error"]
    assert error["code"] == code and fragment in error["message"], error
    assert not WebhookEndpoint.objects.exists()


def test_patch_and_conflicts(cast: Cast, client_for: Any, settings: Any) -> None:
    co = client_for("compliance_officer")
    first = co.post("/api/v1/webhooks/", {"name": "a", "url": "https://example.org/a", "events": ALL},
                    format="json").json()
    co.post("/api/v1/webhooks/", {"name": "b", "url": "https://example.org/b", "events": ALL}, format="json")
    again = co.post("/api/v1/webhooks/", {"name": "a", "url": "https://example.org/c", "events": ALL}, format="json")
    assert again.status_code == 409 and again.json()["error"]["code"] == "duplicate_webhook"
    url = f"/api/v1/webhooks/{first['id']}/"
    assert co.patch(url, {"name": "b"}, format="json").status_code == 409
    empty = co.patch(url, {}, format="json")
    assert empty.status_code == 400 and empty.json()["error"]["code"] == "nothing_to_change"
    assert co.patch(url, {"url": "nope"}, format="json").json()["error"]["code"] == "invalid_url"
    settings.GOVAUDIT_WEBHOOK_ALLOW_HTTP = False
    refused = co.post("/api/v1/webhooks/", {"name": "c", "url": "http://example.org/", "events": ALL}, format="json")
    assert refused.status_code == 400 and "GOVAUDIT_WEBHOOK_ALLOW_HTTP" in refused.json()["error"]["message"]
    bad = co.get(f"/api/v1/webhooks/{first['id']}/deliveries/", {"status": "lost"})
    assert bad.status_code == 400 and "lost" in bad.json()["error"]["message"]


@pytest.mark.parametrize("who", ["viewer", "data_scientist", "ml_engineer", "pipeline", "approver", "auditor",
                                 "beta_viewer"])
def test_only_compliance_officers_and_administrators(who: str, cast: Cast, client_for: Any, sequenced: Any) -> None:
    endpoint, _ = _hook("https://hooks.example.org/x")
    api = client_for(who)
    calls = [api.get("/api/v1/webhooks/"),
             api.post("/api/v1/webhooks/", {"name": "y", "url": "https://e.org/", "events": ALL}, format="json"),
             api.get(f"/api/v1/webhooks/{endpoint.pk}/"),
             api.patch(f"/api/v1/webhooks/{endpoint.pk}/", {"active": False}, format="json"),
             api.delete(f"/api/v1/webhooks/{endpoint.pk}/"),
             api.get(f"/api/v1/webhooks/{endpoint.pk}/deliveries/")]
    assert [c.status_code for c in calls] == [403] * 6
    assert WebhookEndpoint.objects.get().active and WebhookEndpoint.objects.count() == 1
    denied = [json.loads(bytes(e.leaf))["payload"]["attempted"] for e in sequenced()
              if e.action == "security.access.denied"]
    assert sorted(denied) == ["governance.webhook.created", "governance.webhook.deleted"] + \
        ["governance.webhook.read"] * 3 + ["governance.webhook.updated"]
    assert client_for("anonymous").get("/api/v1/webhooks/").status_code == 401
    assert client_for("administrator").get(f"/api/v1/webhooks/{endpoint.pk}/").status_code == 200
    assert client_for("compliance_officer").get("/api/v1/webhooks/999999/").status_code == 404


def test_team_scoped_token_manages_only_its_teams_hooks(cast: Cast) -> None:
    from rest_framework.test import APIClient

    officer = cast.users["compliance_officer"]
    gov.team_member_add(actor=SYSTEM, team=cast.teams["alpha"], user=officer)
    _, token = gov.token_create(actor=SYSTEM, user=officer, name="alpha-only", team=cast.teams["alpha"])
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    beta_hook, _ = _hook("https://hooks.example.org/beta", team=cast.teams["beta"], name="beta")
    alpha_hook, _ = _hook("https://hooks.example.org/alpha", team=cast.teams["alpha"], name="alpha")
    assert [h["name"] for h in api.get("/api/v1/webhooks/").json()["results"]] == ["alpha"]
    assert api.get(f"/api/v1/webhooks/{beta_hook.pk}/").status_code == 404
    assert api.get(f"/api/v1/webhooks/{alpha_hook.pk}/").status_code == 200
    unscoped = api.post("/api/v1/webhooks/", {"name": "all", "url": "https://e.org/", "events": ALL}, format="json")
    assert unscoped.status_code == 400 and unscoped.json()["error"]["code"] == "team_scope"
    widen = api.patch(f"/api/v1/webhooks/{alpha_hook.pk}/", {"team": None}, format="json")
    assert widen.status_code == 400 and widen.json()["error"]["code"] == "team_scope"
    ok = api.post("/api/v1/webhooks/", {"name": "a2", "url": "https://e.org/", "events": ALL, "team": "alpha"},
                  format="json")
    assert ok.status_code == 201


# --- A real Celery worker on Redis ---------------------------------------------------------------

WORKER_BROKER = os.environ.get("GOVAUDIT_TEST_NOTIFY_REDIS_URL", "redis://127.0.0.1:6379/6")


@pytest.fixture(scope="module")
def notify_worker(django_db_setup: Any, django_db_blocker: Any,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One ``celery worker`` subprocess on Redis database 6, the test database and a 1 s retry base."""
    import redis
    from django.conf import settings

    from tests import workers
    from tests.conftest import IN_CI
    from tests.monitoring.test_worker import Worker

    client = redis.Redis.from_url(WORKER_BROKER, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        reason = f"Redis is not reachable at {WORKER_BROKER} ({exc}); start it to run the worker test"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    client.flushdb()
    with django_db_blocker.unblock():
        db_url = workers.test_database_url()
    env = {**os.environ, "DATABASE_URL": db_url, "CELERY_BROKER_URL": WORKER_BROKER,
           "GOVAUDIT_DATA_DIR": str(settings.DATA_DIR), "GOVAUDIT_KEY_DIR": str(tmp_path_factory.getbasetemp() / "keys"),
           "GOVAUDIT_WEBHOOK_RETRY_BASE_SECONDS": "1", "GOVAUDIT_WEBHOOK_TIMEOUT_SECONDS": "5",
           "DJANGO_SETTINGS_MODULE": "governance.settings"}
    worker = Worker(env, tmp_path_factory.mktemp("notify-worker-logs"))
    try:
        yield worker
    finally:
        worker.kill()
        client.flushdb()


@pytest.fixture
def tasks_to_redis(notify_worker: Any) -> Iterator[None]:
    from governance.celery import app

    saved = (app.conf.task_always_eager, app.conf.broker_url)
    app.conf.task_always_eager = False
    app.conf.broker_url = WORKER_BROKER
    app._pool = None
    app.amqp._producer_pool = None
    try:
        yield
    finally:
        app.conf.task_always_eager, app.conf.broker_url = saved
        app._pool = None
        app.amqp._producer_pool = None


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_real_worker_delivers_after_a_5xx_retry(notify_worker: Any, tasks_to_redis: None, cast: Cast,
                                                client_for: Any, receiver: Receiver) -> None:
    notify_worker.ensure()
    _policy()
    endpoint, secret = _hook(receiver.url, events=["promotion.requested"])
    receiver.statuses = [503, 200]
    _validation(cast.versions["alpha2"], 0.9)
    started = time.monotonic()
    _request(client_for("ml_engineer"))  # really commits: the worker is told after commit
    deadline = time.monotonic() + 40
    delivery = None
    while time.monotonic() < deadline:
        delivery = WebhookDelivery.objects.filter(endpoint=endpoint).first()
        if delivery is not None and delivery.status != "pending":
            break
        time.sleep(0.1)
    assert delivery is not None and delivery.status == "delivered", (delivery and delivery.__dict__,
                                                                     notify_worker.log.read_text()[-3000:])
    elapsed = time.monotonic() - started
    assert delivery.attempts == 2 and delivery.last_status_code == 200
    events = receiver.events(secret)
    assert [e["type"] for e in events] == ["promotion.requested"] * 2 and events[0]["id"] == events[1]["id"]
    gap = receiver.requests[1].at - receiver.requests[0].at
    assert 0.5 <= gap < 10 and elapsed < 40, gap  # the retry waited its jittered 0.5-1 s delay
    assert "governance.deliver_webhook" in notify_worker.log.read_text()
