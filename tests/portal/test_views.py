"""The portal's pages with Django's test client: what they show, and that actions go through the services."""
from __future__ import annotations

import json
from datetime import timedelta
from typing import Any, Callable

import pytest
from django.urls import reverse
from django.utils import timezone

from audits.models import AuditEvent, AuditVerification
from governance import promotions
from governance.access import Principal
from governance.models import Approval, PromotionPolicy, PromotionRequest, Waiver
from tests.factories import CAST_POLICY, SYSTEM, Cast, VersionFactory
from tests.portal.scenario import ALPHA_POLICY, Scenario


def _text(response: Any) -> str:
    return response.content.decode()


def _table(response: Any) -> str:
    """The audit log's table of events (the filter form's help texts mention actions too)."""
    return _text(response).split('class="portal-table audit-table"')[1].split("</table>")[0]


# --- Dashboard -------------------------------------------------------------------------------------

def test_dashboard_shows_models_waiting_blocked_alerts_and_the_log(scenario: Scenario, client_as: Callable,
                                                                  cast: Cast) -> None:
    from monitoring import services as mon

    failed = mon.report_request(actor=SYSTEM, version=cast.versions["alpha1"], kind="validation",
                                datasets={"evaluation": scenario.reports[0].evaluation_id},
                                options={"task": "classification", "label": "label", "prediction": "pred"},
                                enqueue=False)
    mon.report_fail(actor=SYSTEM, report=failed, code="labels_not_binary", message="labels are not binary")
    page = client_as("approver").get("/admin/")
    assert page.status_code == 200
    html = _text(page)
    awaiting = html.split('id="awaiting"')[1].split("</section>")[0]
    assert f"#{scenario.pending.pk}" in awaiting
    blocked = html.split('id="blocked"')[1].split("</section>")[0]
    assert f"#{scenario.blocked.pk}" in blocked and "validation_metric:accuracy&gt;=0.99" in blocked
    alerts = html.split('id="alerts"')[1].split("</section>")[0]
    assert f"report #{failed.pk}" in alerts and "labels_not_binary" in alerts
    matrix = html.split('id="models-by-stage"')[1].split("</section>")[0]
    assert "?tier=medium&amp;stage=production" in matrix


def test_awaiting_lists_only_what_the_person_may_decide(scenario: Scenario, client_as: Callable,
                                                        cast: Cast) -> None:
    """A policy counting only approvers: a compliance officer is not asked; the requester never is."""
    promotions.policy_publish(actor=SYSTEM, text=CAST_POLICY.replace("critical-staging", "beta-staging").replace(
        "risk_tiers: [critical]", "models: [beta-model]").replace("""  - type: validation_metric
    metric: accuracy
    op: ">="
    threshold: 0.9""", """  - type: approvals
    count: 1
    roles: [approver]"""))
    req, _ = promotions.promotion_request(actor=Principal(user=cast.users["administrator"]), version=scenario.beta_v2,
                                          target_stage="staging", reason="approvers only")
    assert req.state == "awaiting_approval"

    def awaiting(who: str) -> str:
        return _text(client_as(who).get("/admin/")).split('id="awaiting"')[1].split("</section>")[0]

    assert f"#{req.pk}" in awaiting("approver") and f"#{scenario.pending.pk}" in awaiting("approver")
    assert f"#{req.pk}" not in awaiting("compliance_officer") and f"#{scenario.pending.pk}" in awaiting(
        "compliance_officer")
    assert f"#{req.pk}" not in awaiting("administrator")  # the requester
    assert "Your roles do not approve promotions" in awaiting("auditor")


def test_failed_verification_and_overdue_checkpoint_are_alerts(cast: Cast, client_as: Callable,
                                                              settings: Any, sequenced: Any) -> None:
    promotions.policy_publish(actor=SYSTEM, text=CAST_POLICY.replace("0.9", "0.8"))
    sequenced()  # one event newer than the cast's checkpoint
    run = AuditVerification.objects.create(started_at=timezone.now(), finished_at=timezone.now(), size=10, ok=False,
                                           first_bad_seq=4, problem="hash_mismatch: the leaf hash stored for seq 4")
    settings.AUDIT_CHECKPOINT_EVERY_SECONDS = 0
    html = _text(client_as("auditor").get("/admin/"))
    alerts = html.split('id="alerts"')[1].split("</section>")[0]
    assert f"verification #{run.pk} failed" in alerts and "hash_mismatch" in alerts
    assert "not covered by a signed checkpoint" in alerts


def test_upcoming_scheduled_exports_and_failed_export_alerts(cast: Cast, client_as: Callable, settings: Any,
                                                            tmp_path: Any) -> None:
    from audits.packs import schedules as pack_schedules, services as packs
    from audits.packs.models import Alert

    settings.GOVAUDIT_PACK_EXPORT_ROOT = tmp_path / "exports"
    officer = Principal(user=cast.users["compliance_officer"])
    pack_schedules.pack_schedule_create(actor=officer, name="daily SOC 2 pack", framework="soc2", cron="30 2 * * *",
                                        destination="soc2")
    off = pack_schedules.pack_schedule_create(actor=officer, name="paused export", framework="soc2",
                                              cron="0 4 * * *", destination="soc2", enabled=False)
    html = _text(client_as("compliance_officer").get("/admin/"))
    scheduled = html.split('id="scheduled"')[1].split("</section>")[0]
    assert "daily SOC 2 pack" in scheduled and off.name not in scheduled
    now = timezone.now()
    due = now.replace(hour=2, minute=30, second=0, microsecond=0)
    due = due if due > now else due + timedelta(days=1)
    assert due.strftime("%Y-%m-%d %H:%M") in scheduled

    alert = packs.alert_raise(actor=packs.SCHEDULER, kind="audits.pack_schedule.failed",
                              title="Scheduled audit pack export 'daily SOC 2 pack' failed",
                              message="The destination refused the file.")
    alerts = _text(client_as("compliance_officer").get("/admin/")).split('id="alerts"')[1].split("</section>")[0]
    assert "destination refused the file" in alerts and "Resolve" in alerts
    auditor = _text(client_as("auditor").get("/admin/")).split('id="alerts"')[1].split("</section>")[0]
    assert "destination refused the file" in auditor and "Resolve" not in auditor  # sees it, may not close it
    approver = _text(client_as("approver").get("/admin/")).split('id="alerts"')[1].split("</section>")[0]
    assert "destination refused the file" not in approver  # packs and exports are for audit-log readers
    done = client_as("compliance_officer").post(reverse("admin:portal-alert-resolve", args=[alert.pk]),
                                                {"note": "destination permissions fixed"})
    assert done.status_code == 302
    alert.refresh_from_db()
    assert alert.status == "resolved" and alert.details["resolution"] == "destination permissions fixed"
    assert "destination refused" not in _text(client_as("compliance_officer").get("/admin/"))
    assert Alert.objects.count() == 1


# --- Evidence and decisions ----------------------------------------------------------------------

def test_evidence_page_shows_gates_reports_charts_digests_and_history(scenario: Scenario, client_as: Callable) -> None:
    html = _text(client_as("auditor").get(reverse("admin:portal-promotion", args=[scenario.pending.pk])))
    assert scenario.alpha_v2.artifact_sha256 in html
    assert scenario.pending.policy.digest in html and "alpha-production v1" in html
    for report in scenario.reports[:3]:
        assert report.result_digest in html and report.inputs_digest in html
    assert html.count('<svg xmlns="http://www.w3.org/2000/svg" class="portal-chart"') == 5
    assert "Drift per feature" in html and "Selection rate per group" in html and "Validation metrics" in html
    assert 'class="decision-form"' not in html  # the auditor decides nothing
    earlier = html.split('id="earlier"')[1].split("</section>")[0]
    assert "Blocked by gates" in earlier  # the cast's earlier request of alpha-model to staging


def test_approve_goes_through_the_promotion_service(scenario: Scenario, client_as: Callable, sequenced: Any) -> None:
    client = client_as("approver")
    page = _text(client.get(reverse("admin:portal-promotion", args=[scenario.pending.pk])))
    assert 'class="decision-form"' in page
    response = client.post(reverse("admin:portal-promotion-approve", args=[scenario.pending.pk]),
                           {"comment": "reviewed"})
    assert response.status_code == 302
    req = PromotionRequest.objects.get(pk=scenario.pending.pk)
    assert req.state == "promoted" and req.receipt
    assert Approval.objects.get(request=req).comment == "reviewed"
    actions = [e.action for e in sequenced()[-3:]]
    assert actions[-2:] == ["registry.stage.moved", "governance.promotion.approved"]
    # a second decision by the same person is refused by the service (409), shown on the page
    again = client.post(reverse("admin:portal-promotion-approve", args=[scenario.pending.pk]), {"comment": "x"})
    assert again.status_code == 409 and b"takes no more decisions" in again.content


def test_reject_needs_a_comment(scenario: Scenario, client_as: Callable) -> None:
    client = client_as("compliance_officer")
    url = reverse("admin:portal-promotion-reject", args=[scenario.pending.pk])
    empty = client.post(url, {"comment": "  "})
    assert empty.status_code == 400 and b"A rejection needs a comment" in empty.content
    assert client.post(url, {"comment": "bias evidence is too thin"}).status_code == 302
    assert PromotionRequest.objects.get(pk=scenario.pending.pk).state == "rejected"


def test_separation_of_duties_applies_exactly_as_in_the_api(scenario: Scenario, cast: Cast, client_as: Callable,
                                                           sequenced: Any) -> None:
    """The administrator asks for a promotion, then tries to approve it in the portal: the service refuses."""
    v3 = VersionFactory(model=cast.models["alpha"])
    req, _ = promotions.promotion_request(actor=Principal(user=cast.users["administrator"]), version=v3,
                                          target_stage="staging", reason="admin's own")
    promotions.policy_publish(actor=SYSTEM, text=CAST_POLICY.replace("critical-staging", "alpha-staging").replace(
        "risk_tiers: [critical]", "models: [alpha-model]"))
    client = client_as("administrator")
    page = _text(client.get(reverse("admin:portal-promotion", args=[req.pk])))
    assert 'class="decision-form"' not in page  # blocked already; and it is the admin's own request
    open_req = scenario.pending  # requested by ml_engineer: the administrator may decide it
    assert 'class="decision-form"' in _text(client.get(reverse("admin:portal-promotion", args=[open_req.pk])))

    # a request the administrator made, still open: the page says why there is no button, a post is refused
    own, _ = promotions.promotion_request(actor=Principal(user=cast.users["administrator"]),
                                          version=cast.versions["beta1"], target_stage="staging", reason="own")
    PromotionRequest.objects.filter(pk=own.pk).update(state="awaiting_approval")
    page = _text(client.get(reverse("admin:portal-promotion", args=[own.pk])))
    assert "You requested this promotion" in page and 'class="decision-form"' not in page
    before = len(sequenced())
    forged = client.post(reverse("admin:portal-promotion-approve", args=[own.pk]), {"comment": "mine"})
    assert forged.status_code == 403 and b"separation of duties" in forged.content
    events = sequenced()[before:]
    assert [e.action for e in events] == ["security.access.denied"]
    assert json.loads(bytes(events[0].leaf))["payload"]["code"] == "separation_of_duties"
    assert not Approval.objects.filter(request=own).exists()


# --- Audit log -------------------------------------------------------------------------------------

def test_audit_log_filters(scenario: Scenario, client_as: Callable, sequenced: Any) -> None:
    sequenced()
    client = client_as("auditor")
    by_actor = _table(client.get("/admin/portal/audit/?actor=ml_engineer"))
    assert "governance.promotion.requested" in by_actor and "registry.model.created" not in by_actor
    by_prefix = _table(client.get("/admin/portal/audit/?action=monitoring.report"))
    assert "monitoring.report.finished" in by_prefix and "governance.promotion" not in by_prefix
    by_model = _table(client.get("/admin/portal/audit/?model=beta-model"))
    assert "beta-model" in by_model and "alpha-model" not in by_model
    tomorrow = (timezone.now() + timedelta(days=1)).date().isoformat()
    assert "No event matches" in _text(client.get(f"/admin/portal/audit/?since={tomorrow}"))
    bad = client.get(f"/admin/portal/audit/?since={tomorrow}&until=2020-01-01")
    assert bad.status_code == 400 and b"must not be after" in bad.content
    unknown = client.get("/admin/portal/audit/?model=no-such-model")
    assert unknown.status_code == 404


def test_audit_log_pages_by_sequence(cast: Cast, client_as: Callable, sequenced: Any) -> None:
    from governance import services as gov

    for n in range(60):
        gov.token_create(actor=SYSTEM, user=cast.users["viewer"], name=f"paging-{n}")
    events = sequenced()
    client = client_as("auditor")
    first = _text(client.get("/admin/portal/audit/"))
    assert f"before={events[-50].seq}" in first
    older = _text(client.get(f"/admin/portal/audit/?before={events[-50].seq}"))
    assert f'portal/audit/events/{events[-51].seq}/"' in older
    assert f'portal/audit/events/{events[-50].seq}/"' not in older


def test_event_page_proves_inclusion_in_the_latest_signed_checkpoint(cast: Cast, client_as: Callable,
                                                                     sequenced: Any) -> None:
    from audits.checkpoints import checkpoint_create

    checkpoint_create()
    event = sequenced()[5]
    html = _text(client_as("auditor").get(reverse("admin:portal-audit-event", args=[event.seq])))
    assert "Verified: this event" in html and bytes(event.leaf_hash).hex() in html
    promotions.policy_publish(actor=SYSTEM, text=CAST_POLICY.replace("0.9", "0.8"))
    newest = sequenced()[-1]
    html = _text(client_as("auditor").get(reverse("admin:portal-audit-event", args=[newest.seq])))
    assert "newer than the latest signed checkpoint" in html


def test_verification_runs_and_reports_progress_and_result(cast: Cast, client_as: Callable, sequenced: Any) -> None:
    size = len(sequenced())
    client = client_as("auditor")
    response = client.post("/admin/portal/audit/verifications/")
    run = AuditVerification.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("admin:portal-verification", args=[run.pk])
    # the test's transaction never commits, so the task (enqueued on commit) is run here
    from governance.portal.services import verification_execute

    assert run.finished_at is None
    running = _text(client.get(response["Location"]))
    assert "<progress" in running and 'http-equiv="refresh"' in running
    verification_execute(verification_id=run.pk)
    run.refresh_from_db()
    assert run.ok is True and run.size >= size
    done = _text(client.get(response["Location"]))
    assert "Passed" in done and 'http-equiv="refresh"' not in done
    assert "audits.verification.requested" in [e.action for e in sequenced()]


# --- Policies and waivers ---------------------------------------------------------------------------

def test_publishing_a_policy_previews_the_diff_then_calls_the_service(scenario: Scenario, client_as: Callable) -> None:
    client = client_as("compliance_officer")
    changed = ALPHA_POLICY.replace("threshold: 0.7", "threshold: 0.75")
    preview = client.post("/admin/portal/policy-publish/", {"document": changed, "format": "yaml", "preview": "1"})
    html = _text(preview)
    assert preview.status_code == 200 and 'class="diff-del">-  threshold: 0.7' in html
    assert 'class="diff-add">+  threshold: 0.75' in html
    assert PromotionPolicy.objects.filter(name="alpha-production").count() == 1
    digest = preview.context["digest"]
    # publishing something other than what was previewed only previews it again
    other = ALPHA_POLICY.replace("threshold: 0.7", "threshold: 0.8")
    client.post("/admin/portal/policy-publish/", {"document": other, "format": "yaml", "previewed": digest,
                                                  "publish": "1"})
    assert PromotionPolicy.objects.filter(name="alpha-production").count() == 1
    done = client.post("/admin/portal/policy-publish/", {"document": changed, "format": "yaml", "previewed": digest,
                                                         "publish": "1"})
    assert done.status_code == 302 and done["Location"] == reverse("admin:portal-policy", args=["alpha-production"])
    latest = PromotionPolicy.objects.filter(name="alpha-production").order_by("-version").first()
    assert latest.version == 2 and latest.published_by["username"] == "compliance_officer"
    detail = _text(client.get(done["Location"]))
    assert "Changes from v1" in detail and "in force" in detail


def test_an_invalid_policy_lists_every_problem(cast: Cast, client_as: Callable) -> None:
    response = client_as("compliance_officer").post(
        "/admin/portal/policy-publish/", {"document": "name: Bad Name\ntarget_stage: moon\n", "format": "yaml"})
    html = _text(response)
    assert response.status_code == 400 and "was not published" in html
    assert html.count("<li>") >= 3
    unchanged = client_as("compliance_officer").post(
        "/admin/portal/policy-publish/", {"document": CAST_POLICY, "format": "yaml"})
    assert "publishing it would change nothing" in _text(unchanged)


def test_waivers_are_granted_and_revoked_through_the_services(scenario: Scenario, client_as: Callable) -> None:
    client = client_as("compliance_officer")
    page = _text(client.get("/admin/portal/waivers/"))
    assert "validation_metric:accuracy&gt;=0.99" in page  # offered from the blocked promotion
    expires = (timezone.now() + timedelta(days=10)).strftime("%Y-%m-%dT%H:%M")
    data = {"model": "beta-model", "version": str(scenario.beta_v2.version), "gate": "validation_metric:accuracy>=0.99",
            "justification": "short", "expires_at": expires}
    refused = client.post("/admin/portal/waivers/grant/", data)
    assert refused.status_code == 400 and b"at least 10 characters" in refused.content
    approvals = client.post("/admin/portal/waivers/grant/", data | {"gate": "approvals:1[approver]",
                                                                    "justification": "approvals never waived"})
    assert approvals.status_code == 400 and b"Approvals cannot be waived" in approvals.content
    ok = client.post("/admin/portal/waivers/grant/", data | {"justification": "agreed with model risk"})
    assert ok.status_code == 302
    waiver = Waiver.objects.get(version=scenario.beta_v2)
    assert waiver.granted_by.username == "compliance_officer"
    assert client.post(reverse("admin:portal-waiver-revoke", args=[waiver.pk])).status_code == 302
    waiver.refresh_from_db()
    assert waiver.revoked_at is not None


# --- Access review and team scoping ----------------------------------------------------------------

def test_access_review_lists_roles_teams_tokens_and_their_use(cast: Cast, client_as: Callable) -> None:
    from governance import services as gov

    gov.token_authenticate(secret=cast.tokens["pipeline"])  # marks it used
    html = _text(client_as("auditor").get("/admin/portal/access/"))
    people = html.split('id="people"')[1].split("</section>")[0]
    assert "beta_engineer" in people and "ML engineer" in people
    teams = html.split('id="teams"')[1].split("</section>")[0]
    assert "Beta" in teams and "beta_viewer: Viewer" in teams
    tokens = html.split('id="tokens"')[1].split("</section>")[0]
    assert "pipeline-token" in tokens and tokens.count("never") >= 1
    assert "Reset" not in html  # only administrators reset an authenticator


def test_a_portal_user_limited_to_one_team_sees_only_that_team(scenario: Scenario, portal_viewer: Any,
                                                              client_as: Callable, sequenced: Any) -> None:
    sequenced()
    client = client_as("alpha_portal_viewer")
    for url in ["/admin/", "/admin/portal/models/", "/admin/portal/promotions/", "/admin/portal/audit/",
                "/admin/portal/waivers/?show=all", "/admin/portal/models/?tier=medium"]:
        html = _text(client.get(url))
        assert "alpha-model" in html and "beta" not in html.split('id="content"')[1], url
    beta_event = AuditEvent.objects.filter(target_type="registry.model",
                                           target_id=str(scenario.beta_v2.model_id)).first()
    for url in [reverse("admin:portal-model", args=["beta-model"]),
                reverse("admin:portal-promotion", args=[scenario.blocked.pk]),
                reverse("admin:portal-audit-event", args=[beta_event.seq])]:
        assert client.get(url).status_code == 404, url
    assert client.get(reverse("admin:registry_registeredmodel_changelist")).status_code == 403


@pytest.mark.parametrize("tier", ["", "medium", "high"])
def test_model_list_filters(tier: str, scenario: Scenario, client_as: Callable) -> None:
    html = _text(client_as("auditor").get(f"/admin/portal/models/?tier={tier}&stage=production"))
    assert ("alpha-model" in html) == (tier in ("", "medium"))


def test_blocked_promotion_shows_its_validation_evidence(scenario: Scenario, client_as: Callable) -> None:
    html = _text(client_as("auditor").get(reverse("admin:portal-promotion", args=[scenario.blocked.pk])))
    assert "Confusion matrix" in html and "Validation metrics" in html
