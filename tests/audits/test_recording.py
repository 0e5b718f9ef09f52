"""Every state-changing service appends exactly one event, atomically with its change."""
from __future__ import annotations

import inspect
import json
from typing import Any, Callable

import pytest
from django.db import transaction

from audits.models import AuditEvent, AuditPending
from audits.packs import schedules as pack_schedules
from audits.packs import services as packs
from governance import services as gov
from governance.access import Principal
from governance.portal import services as portal
from governance import notifications, promotions
from monitoring import services as mon
from registry import services as reg
from tests.factories import CAST_POLICY, SYSTEM, Cast, digest


def _csv_file(stem: str) -> dict[str, Any]:
    """A small labelled CSV under the storage folder (the import root), with its digest and size."""
    import hashlib

    from django.conf import settings

    path = settings.STORAGE_DIR / f"{stem}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        rows = "\n".join(f"{i % 2},{(i // 2) % 2},{['f', 'm'][i % 3 == 0]}" for i in range(60))
        path.write_text("label,pred,sex\n" + rows + "\n")
    data = path.read_bytes()
    return {"path": path, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def _upload(cast: Cast) -> Any:
    """A file as the upload handler leaves it in staging."""
    import shutil

    from monitoring import storage

    info = _csv_file("upload")
    staging = storage.datasets_dir() / ".incoming" / "test"
    staging.mkdir(parents=True, exist_ok=True)
    shutil.copy(info["path"], staging / "upload.csv")
    staged = storage.StagedFile(staging / "upload.csv", "upload.csv", info["sha256"], info["size"])
    return mon.dataset_upload(actor=SYSTEM, team=cast.teams["alpha"], name="uploaded", staged=staged)


def _queued_report(cast: Cast) -> Any:
    """A validation report queued (not enqueued) on alpha v2; its setup events precede the one under test."""
    from monitoring.models import Report

    existing = Report.objects.filter(status="queued").first()
    if existing:
        return existing
    info = _csv_file("evaluation")
    ds = mon.dataset_ingest(actor=SYSTEM, team=cast.teams["alpha"], name="evaluation", **info)
    return mon.report_request(actor=SYSTEM, version=cast.versions["alpha2"], kind="validation",
                              datasets={"evaluation": ds.pk},
                              options={"task": "classification", "label": "label", "prediction": "pred"},
                              enqueue=False)


def _open_promotion(cast: Cast) -> Any:
    """An open request (awaiting approval) on a critical model; its setup events precede the one under test."""
    from governance.models import PromotionRequest

    existing = PromotionRequest.objects.filter(state="awaiting_approval").first()
    if existing:
        return existing
    text = CAST_POLICY.replace("name: critical-staging", "name: beta-approvals").replace(
        "risk_tiers: [critical]", "models: [beta-model]").replace(
        """  - type: validation_metric
    metric: accuracy
    op: ">="
    threshold: 0.9""", """  - type: approvals
    count: 1
    roles: [approver]""")
    promotions.policy_publish(actor=SYSTEM, text=text)
    return promotions.promotion_request(actor=SYSTEM, version=cast.versions["beta1"], target_stage="staging",
                                        reason="needs approval")[0]


def _webhook(cast: Cast) -> Any:
    """A webhook endpoint; its setup event precedes the one under test."""
    from governance.models import WebhookEndpoint

    return WebhookEndpoint.objects.first() or notifications.webhook_create(
        actor=SYSTEM, name="recorded", url="https://hooks.example.org/in", events=["promotion.promoted"])[0]


def _failed_delivery(cast: Cast) -> Any:
    """A delivery the worker gave up on (a plain row: attempts record no audit event)."""
    import uuid

    from governance.models import WebhookDelivery

    return WebhookDelivery.objects.create(endpoint=_webhook(cast), event_id=uuid.uuid4(), event_type="promotion.promoted",
                                          payload=b"{}", status="failed", attempts=8, last_error="HTTP 503")


def _queued_pack(cast: Cast) -> Any:
    """A SOC 2 pack of the last day, queued (not enqueued); its request event precedes the one under test."""
    from datetime import timedelta

    from django.utils import timezone

    from audits.packs.models import AuditPack

    return AuditPack.objects.filter(status="queued").first() or packs.pack_request(
        actor=SYSTEM, framework="soc2", period_start=timezone.now() - timedelta(days=1), enqueue=False)


def _built_pack(cast: Cast) -> Any:
    """A succeeded pack row with a file (made directly: only the download is under test)."""
    from django.conf import settings
    from django.utils import timezone

    from audits.packs.models import AuditPack

    folder = settings.GOVAUDIT_PACK_DIR
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "recording.zip").write_bytes(b"PK\x05\x06" + b"\x00" * 18)
    return AuditPack.objects.create(framework="soc2", period_start=timezone.now(), period_end=timezone.now(),
                                    status="succeeded", file_name="recording.zip", sha256="0" * 64)


def _pack_schedule(cast: Cast) -> Any:
    from audits.packs.models import PackSchedule

    return PackSchedule.objects.first() or pack_schedules.pack_schedule_create(
        actor=SYSTEM, name="recording", framework="soc2", cron="0 3 * * *", destination="recording", period_days=1)


def _otp_enrolled(cast: Cast) -> Any:
    """The viewer with a confirmed authenticator; its enrolment event precedes the one under test."""
    from django_otp.oath import TOTP
    from django_otp.plugins.otp_totp.models import TOTPDevice

    user = cast.users["viewer"]
    if not TOTPDevice.objects.filter(user=user).exists():
        key = "3132333435363738393031323334353637383930"
        portal.otp_device_enrol(actor=Principal(user=user), key_hex=key, token=str(TOTP(bytes.fromhex(key)).token()))
    return user


def _otp_wrong_code(cast: Cast) -> None:
    """A wrong code is recorded, then refused (400)."""
    from governance.errors import ValidationFailed

    with pytest.raises(ValidationFailed):
        portal.otp_verify(actor=Principal(user=cast.users["auditor"]), token="000000", ip="127.0.0.1")


def _password_changed(cast: Cast) -> None:
    user = cast.users["auditor"]
    user.set_password("old-password-for-the-test")
    user.save(update_fields=["password"])
    portal.password_change(actor=Principal(user=user), old_password="old-password-for-the-test",
                           new_password="a-new-long-password-2026")


# service -> (expected action, a call that performs it on the cast)
CALLS: dict[str, tuple[str, Callable[[Cast], Any]]] = {
    "governance.user_create": ("governance.user.created",
                               lambda c: gov.user_create(actor=SYSTEM, username="newbie", roles=["viewer"])),
    "governance.role_grant": ("governance.role.granted",
                              lambda c: gov.role_grant(actor=SYSTEM, user=c.users["viewer"], role="auditor")),
    "governance.role_revoke": ("governance.role.revoked",
                               lambda c: gov.role_revoke(actor=SYSTEM, user=c.users["viewer"], role="viewer")),
    "governance.team_create": ("governance.team.created", lambda c: gov.team_create(actor=SYSTEM, name="Gamma")),
    "governance.team_member_add": ("governance.team.member_added", lambda c: gov.team_member_add(
        actor=SYSTEM, team=c.teams["beta"], user=c.users["viewer"])),
    "governance.team_member_remove": ("governance.team.member_removed", lambda c: gov.team_member_remove(
        actor=SYSTEM, team=c.teams["alpha"], user=c.users["viewer"])),
    "governance.token_create": ("governance.token.created",
                                lambda c: gov.token_create(actor=SYSTEM, user=c.users["viewer"], name="x")),
    "governance.token_revoke": ("governance.token.revoked", lambda c: gov.token_revoke(
        actor=SYSTEM, token=c.users["viewer"].api_tokens.first())),
    "governance.token_authenticate": ("security.token.rejected",
                                      lambda c: gov.token_authenticate(secret="gva_wrong")),
    "governance.login_record_success": ("security.login.succeeded",
                                        lambda c: gov.login_record_success(user=c.users["viewer"], ip="127.0.0.1")),
    "governance.login_record_failure": ("security.login.failed",
                                        lambda c: gov.login_record_failure(username="mallory", ip="127.0.0.1")),
    "governance.login_record_lockout": ("security.login.locked_out",
                                        lambda c: portal.login_record_lockout(username="mallory", ip="127.0.0.1")),
    "governance.password_change": ("security.password.changed", lambda c: _password_changed(c)),
    "governance.otp_device_enrol": ("security.otp.enrolled", lambda c: _otp_enrolled(c)),
    "governance.otp_verify": ("security.otp.failed", lambda c: _otp_wrong_code(c)),
    "governance.otp_device_reset": ("security.otp.reset", lambda c: portal.otp_device_reset(
        actor=SYSTEM, user=_otp_enrolled(c))),
    "governance.verification_request": ("audits.verification.requested", lambda c: portal.verification_request(
        actor=Principal(user=c.users["auditor"]))),
    "registry.model_create": ("registry.model.created",
                              lambda c: reg.model_create(actor=SYSTEM, name="m-new", team=c.teams["alpha"])),
    "registry.model_update": ("registry.model.updated", lambda c: reg.model_update(
        actor=SYSTEM, model=c.models["alpha"], changes={"description": "new words"})),
    "registry.model_archive": ("registry.model.archived", lambda c: reg.model_archive(
        actor=SYSTEM, model=reg.model_create(actor=SYSTEM, name="m-arch", team=c.teams["alpha"]))),
    "registry.model_delete": ("registry.model.deleted", lambda c: reg.model_delete(
        actor=SYSTEM, model=reg.model_create(actor=SYSTEM, name="m-del", team=c.teams["alpha"]))),
    "registry.version_register": ("registry.version.registered", lambda c: reg.version_register(
        actor=SYSTEM, model=c.models["alpha"], artifact_uri="s3://x", artifact_sha256=digest("rec"))),
    "registry.version_update": ("registry.version.updated", lambda c: reg.version_update(
        actor=SYSTEM, version=c.versions["alpha2"], changes={"tags": {"k": "v"}})),
    "registry.dataset_register": ("registry.dataset.registered", lambda c: reg.dataset_register(
        actor=SYSTEM, team=c.teams["alpha"], name="ds", sha256=digest("ds-rec"), storage_uri="s3://d")),
    "registry.stage_move": ("registry.stage.moved", lambda c: reg.stage_move(
        actor=SYSTEM, version=c.versions["alpha2"], stage="staging")),
    "governance.policy_publish": ("governance.policy.published", lambda c: promotions.policy_publish(
        actor=SYSTEM, text=CAST_POLICY.replace("0.9", "0.95"))),
    "governance.waiver_grant": ("governance.waiver.granted", lambda c: promotions.waiver_grant(
        actor=SYSTEM, version=c.versions["alpha1"], gate="drift", justification="known seasonal shift",
        expires_at=__import__("django.utils.timezone", fromlist=["now"]).now() + __import__(
            "datetime").timedelta(days=2))),
    "governance.waiver_revoke": ("governance.waiver.revoked", lambda c: promotions.waiver_revoke(
        actor=SYSTEM, waiver=c.versions["alpha2"].waivers.first())),
    "governance.promotion_request": ("governance.promotion.requested", lambda c: promotions.promotion_request(
        actor=SYSTEM, version=c.versions["beta1"], target_stage="staging", reason="test")),
    "governance.promotion_rollback": ("governance.promotion.requested", lambda c: (
        reg.stage_move(actor=SYSTEM, version=c.versions["alpha2"], stage="production", reason="setup"),
        promotions.promotion_rollback(actor=SYSTEM, model=c.models["alpha"], stage="production", reason="test"))),
    "governance.promotion_approve": ("governance.promotion.approved", lambda c: promotions.promotion_approve(
        actor=Principal(user=c.users["approver"]), request=_open_promotion(c))),
    "governance.promotion_reject": ("governance.promotion.rejected", lambda c: promotions.promotion_reject(
        actor=Principal(user=c.users["approver"]), request=_open_promotion(c), comment="not yet")),
    "governance.promotion_cancel": ("governance.promotion.cancelled", lambda c: promotions.promotion_cancel(
        actor=SYSTEM, request=_open_promotion(c))),
    "governance.promotion_reevaluate": ("governance.promotion.reevaluated", lambda c: promotions.promotion_reevaluate(
        actor=SYSTEM, request=_open_promotion(c))),
    "governance.promotion_expire": ("governance.promotion.expired", lambda c: (_open_promotion(c), promotions.promotion_expire(
        actor=SYSTEM, older_than=__import__("datetime").timedelta(seconds=-1)))),
    "governance.webhook_create": ("governance.webhook.created", lambda c: notifications.webhook_create(
        actor=SYSTEM, name="hook", url="https://hooks.example.org/in", events=["promotion.promoted"])),
    "governance.webhook_update": ("governance.webhook.updated", lambda c: notifications.webhook_update(
        actor=SYSTEM, endpoint=_webhook(c), changes={"active": False})),
    "governance.webhook_delete": ("governance.webhook.deleted", lambda c: notifications.webhook_delete(
        actor=SYSTEM, endpoint=_webhook(c))),
    "governance.webhook_redeliver": ("governance.webhook.redelivered", lambda c: notifications.webhook_redeliver(
        actor=SYSTEM, endpoint=_webhook(c), delivery_id=_failed_delivery(c).pk)),
    "monitoring.dataset_ingest": ("registry.dataset.registered", lambda c: mon.dataset_ingest(
        actor=SYSTEM, team=c.teams["alpha"], name="ingested", **_csv_file("ingest"))),
    "monitoring.dataset_upload": ("registry.dataset.registered", lambda c: _upload(c)),
    "monitoring.dataset_register_file": ("registry.dataset.registered", lambda c: mon.dataset_register_file(
        actor=SYSTEM, team=c.teams["alpha"], name="by-path", path=str(_csv_file("regfile")["path"]),
        sha256=_csv_file("regfile")["sha256"])),
    "monitoring.report_request": ("monitoring.report.queued", lambda c: _queued_report(c)),
    "monitoring.report_start": ("monitoring.report.started", lambda c: mon.report_start(
        actor=SYSTEM, report=_queued_report(c))),
    "monitoring.report_finish": ("monitoring.report.finished", lambda c: mon.report_finish(
        actor=SYSTEM, report=mon.report_start(actor=SYSTEM, report=_queued_report(c)), result={"ok": True})),
    "monitoring.report_fail": ("monitoring.report.failed", lambda c: mon.report_fail(
        actor=SYSTEM, report=_queued_report(c), code="bad_data", message="labels are not binary")),
    "monitoring.report_reap": ("monitoring.report.failed", lambda c: (
        mon.report_start(actor=SYSTEM, report=_queued_report(c)),
        mon.report_reap(actor=SYSTEM, older_than=__import__("datetime").timedelta(seconds=-1)))),
    "monitoring.report_compute": ("monitoring.report.finished", lambda c: mon.report_compute(
        report_id=_queued_report(c).pk)),
    "audits.pack_request": ("audits.pack.requested", lambda c: _queued_pack(c)),
    "audits.pack_start": ("audits.pack.started", lambda c: packs.pack_start(actor=SYSTEM, pack=_queued_pack(c))),
    "audits.pack_finish": ("audits.pack.generated", lambda c: packs.pack_finish(
        actor=SYSTEM, pack=packs.pack_start(actor=SYSTEM, pack=_queued_pack(c)), file_name="x.zip",
        result=__import__("audits.packs.build", fromlist=["BuildResult"]).BuildResult(
            sha256="0" * 64, size_bytes=1, manifest_sha256="1" * 64, pages=1, event_count=0, checkpoint_size=1,
            checkpoint_root="2" * 64, scope=[]))),
    "audits.pack_fail": ("audits.pack.failed", lambda c: packs.pack_fail(
        actor=SYSTEM, pack=_queued_pack(c), code="test", message="failed for the test")),
    "audits.pack_generate": ("audits.pack.generated", lambda c: packs.pack_generate(pack_id=_queued_pack(c).pk)),
    "audits.pack_download": ("audits.pack.downloaded", lambda c: packs.pack_download(actor=SYSTEM,
                                                                                    pack=_built_pack(c))),
    "audits.alert_raise": ("audits.alert.raised", lambda c: packs.alert_raise(
        actor=SYSTEM, kind="test.alert", title="Test", message="Something to look at.")),
    "audits.alert_resolve": ("audits.alert.resolved", lambda c: packs.alert_resolve(actor=SYSTEM, alert=packs.alert_raise(
        actor=SYSTEM, kind="test.alert", title="Test", message="Something to look at."), note="handled")),
    "audits.pack_schedule_create": ("audits.pack_schedule.created", lambda c: _pack_schedule(c)),
    "audits.pack_schedule_update": ("audits.pack_schedule.updated", lambda c: pack_schedules.pack_schedule_update(
        actor=SYSTEM, schedule=_pack_schedule(c), changes={"cron": "0 4 * * *"})),
    "audits.pack_schedule_delete": ("audits.pack_schedule.deleted", lambda c: pack_schedules.pack_schedule_delete(
        actor=SYSTEM, schedule=_pack_schedule(c))),
    "audits.pack_schedule_run": ("audits.pack_schedule.ran", lambda c: pack_schedules.pack_schedule_run(
        schedule_id=_pack_schedule(c).pk)),
}

SERVICE_MODULES = [gov, reg, promotions, notifications, mon, packs, pack_schedules, portal]
# Services that record through the service they delegate to (the event is that service's).
DELEGATING = {"monitoring.dataset_ingest", "monitoring.dataset_upload", "monitoring.dataset_register_file",
              "monitoring.report_compute", "audits.pack_generate", "audits.pack_schedule_run"}
# Services whose actor is not a Principal argument (the caller is not yet known, or anonymous).
ACTORLESS_WRITES = {"token_authenticate", "login_record_success", "login_record_failure", "login_record_lockout"}


def _public_services() -> set[str]:
    """Every public function of a services module that takes an actor or is a known actorless write."""
    found = set()
    for module in SERVICE_MODULES:
        app = module.__name__.split(".")[0]
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            if fn.__module__ != module.__name__ or name.startswith("_"):
                continue
            if "actor" in inspect.signature(fn).parameters or name in ACTORLESS_WRITES or \
                    f"{app}.{name}" in DELEGATING:
                found.add(f"{app}.{name}")
    return found


def test_every_service_is_enumerated() -> None:
    """A new service without a case here fails: decide its audit event before it ships."""
    assert _public_services() == set(CALLS), sorted(_public_services() ^ set(CALLS))


@pytest.mark.parametrize("service", sorted(CALLS))
def test_service_appends_exactly_one_event(service: str, cast: Cast, sequenced: Any, settings: Any,
                                           tmp_path: Any) -> None:
    settings.STORAGE_DIR = tmp_path / "storage"
    action, call = CALLS[service]
    before = len(sequenced())
    call(cast)
    events = sequenced()[before:]
    # services that create a helper object first (archive/delete) append two; the last is the one under test
    assert events, f"{service} appended nothing"
    assert events[-1].action == action
    setup_events = {"registry.model_archive": 1, "governance.promotion_rollback": 1, "registry.model_delete": 1, "governance.promotion_approve": 2,
                    "governance.promotion_reject": 2, "governance.promotion_cancel": 2,
                    "governance.promotion_reevaluate": 2, "governance.promotion_expire": 2,
                    "governance.webhook_update": 1, "governance.webhook_delete": 1, "governance.webhook_redeliver": 1,
                    "monitoring.report_request": 1, "monitoring.report_start": 2, "monitoring.report_finish": 3,
                    "monitoring.report_fail": 2, "monitoring.report_reap": 3, "monitoring.report_compute": 3,
                    "audits.pack_start": 1, "audits.pack_finish": 2, "audits.pack_fail": 1, "audits.pack_generate": 2,
                    "audits.alert_resolve": 1, "audits.pack_schedule_update": 1, "audits.pack_schedule_delete": 1,
                    "audits.pack_schedule_run": 4, "governance.otp_device_reset": 1,
                    }.get(service, 0)
    # a promotion that completes calls the stage service, which records its own move
    nested = sum(1 for e in events[setup_events:] if e.action == "registry.stage.moved" != action)
    assert len(events) == 1 + setup_events + nested, [e.action for e in events]
    leaf = json.loads(bytes(events[-1].leaf))
    assert leaf["seq"] == events[-1].seq and leaf["action"] == action
    assert set(leaf) == {"seq", "ts", "actor", "action", "target", "request_id", "payload"}


def test_denied_action_is_audited_and_changes_nothing(cast: Cast, sequenced: Any) -> None:
    before = len(sequenced())
    with pytest.raises(Exception) as info:
        reg.model_create(actor=Principal(user=cast.users["viewer"]), name="nope", team=cast.teams["alpha"])
    assert getattr(info.value, "status_code", None) == 403
    events = sequenced()[before:]
    assert [e.action for e in events] == ["security.access.denied"]
    assert json.loads(bytes(events[0].leaf))["actor"]["username"] == "viewer"


def test_rolled_back_change_leaves_no_event(cast: Cast, sequenced: Any) -> None:
    before = len(sequenced())
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            reg.model_create(actor=SYSTEM, name="ghost", team=cast.teams["alpha"])
            raise RuntimeError("the caller fails after the service")
    assert len(sequenced()) == before
    from registry.models import RegisteredModel

    assert not RegisteredModel.objects.filter(name="ghost").exists()


def test_failed_append_rolls_the_change_back(cast: Cast, monkeypatch: Any) -> None:
    from registry.models import RegisteredModel

    from django.db import DatabaseError

    # The queue table is unavailable: the append's INSERT fails inside the service's transaction.
    monkeypatch.setattr(AuditPending._meta, "db_table", "audits_queue_gone")
    with pytest.raises(DatabaseError):
        reg.model_create(actor=SYSTEM, name="unrecorded", team=cast.teams["alpha"])
    monkeypatch.undo()
    assert not RegisteredModel.objects.filter(name="unrecorded").exists()


def _along_cases() -> list[tuple[str, list[Any], list[tuple[Any, ...]]]]:
    """A caller's statements: plain, returning rows, and one that brings its own WITH."""
    table = '"governance_team"'
    return [
        (f"UPDATE {table} SET name = %s WHERE slug = %s", ["Alpha renamed", "alpha"], []),
        (f"UPDATE {table} SET name = %s WHERE slug = %s RETURNING slug", ["Alpha again", "alpha"], [("alpha",)]),
        (f"WITH t AS (SELECT %s AS slug) UPDATE {table} SET name = %s FROM t WHERE {table}.slug = t.slug "
         f"RETURNING {table}.slug", ["alpha", "Alpha thrice"], [("alpha",)]),
    ]


@pytest.mark.parametrize("case", range(3))
def test_an_event_sent_along_a_callers_write_is_recorded_with_it(case: int, cast: Cast, sequenced: Any) -> None:
    """``audit_append(along=...)``: one round trip on PostgreSQL, two elsewhere; atomic either way."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from audits.services import Target, audit_append
    from governance.models import Team

    sql, params, expected = _along_cases()[case]
    before = len(sequenced())
    with CaptureQueriesContext(connection) as ctx, transaction.atomic():
        rows = audit_append(actor={"type": "system", "name": "test"}, action="test.along", target=Target("t", "1"),
                            payload={"case": case}, along=(sql, params))
    assert rows == expected
    sent = [q["sql"] for q in ctx.captured_queries if "governance_team" in q["sql"] or "auditpending" in q["sql"]]
    assert len([q for q in sent if "INSERT INTO audits_auditpending" in q]) == 1
    assert len(sent) == (1 if connection.vendor == "postgresql" else 2), sent
    assert Team.objects.get(slug="alpha").name == (params[0] if case < 2 else params[1])
    events = sequenced()
    assert len(events) == before + 1 and events[-1].action == "test.along"
    # A failing caller's statement records nothing, and its transaction goes.
    with pytest.raises(Exception), transaction.atomic():
        audit_append(actor={"type": "system", "name": "test"}, action="test.along", target=None, payload={},
                     along=('UPDATE "governance_team" SET no_such_column = 1', []))
    assert len(sequenced()) == before + 1


def test_events_carry_actor_snapshot_and_request_id(cast: Cast, client_for: Any, sequenced: Any) -> None:
    r = client_for("ml_engineer").post("/api/v1/models/", {"name": "traced"}, format="json",
                                       HTTP_X_REQUEST_ID="req-12345")
    assert r.status_code == 201 and r["X-Request-ID"] == "req-12345"
    event = [e for e in sequenced() if e.action == "registry.model.created" and e.target_id == str(
        __import__("registry.models", fromlist=["RegisteredModel"]).RegisteredModel.objects.get(name="traced").pk)][0]
    leaf = json.loads(bytes(event.leaf))
    assert leaf["request_id"] == "req-12345"
    assert leaf["actor"]["username"] == "ml_engineer" and leaf["actor"]["roles"] == ["ml_engineer"]
    assert leaf["actor"]["token"]["name"] == "ml_engineer-token"
    assert leaf["target"] == {"type": "registry.model", "id": event.target_id, "label": "traced"}


def test_seq_is_dense_from_zero(cast: Cast, sequenced: Any) -> None:
    events = sequenced()
    assert [e.seq for e in events] == list(range(len(events)))
    assert AuditEvent.objects.count() == len(events)
