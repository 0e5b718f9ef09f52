"""Gated promotions end to end through the API: policies, gates, separation of duties, waivers, receipts."""
from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from audits.core.canonical import canonical_bytes
from audits.core.note import open_note
from audits.keys import trusted_keys
from governance import promotions
from governance.models import PromotionRequest
from registry.models import StageAssignment
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
  - type: bias_metric
    metric: demographic_parity_difference
    sensitive_feature: sex
    op: "<="
    threshold: 0.1
  - type: evidence_binding
  - type: approvals
    count: 1
    roles: [approver]
"""


def _report(version: Any, kind: str, result: dict[str, Any], *, status: str = "succeeded",
            options: dict[str, Any] | None = None) -> Any:
    from monitoring.models import Report
    from monitoring.services import report_inputs_digest

    inputs = report_inputs_digest(kind=kind, artifact_sha256=version.artifact_sha256, datasets={},
                                  options=options or {})
    return Report.objects.create(version=version, kind=kind, status=status, options=options or {},
                                 result=result if status == "succeeded" else None,
                                 result_digest=_digest(result) if status == "succeeded" else "",
                                 inputs_digest=inputs, finished_at=timezone.now() if status != "queued" else None)


def _digest(result: dict[str, Any]) -> str:
    import hashlib

    return hashlib.sha256(canonical_bytes(result)).hexdigest()


def _good_evidence(version: Any, *, dpd: float = 0.04) -> None:
    _report(version, "validation", {"task": "classification", "metrics": {"accuracy": 0.91}})
    _report(version, "bias", {"sensitive_features": ["sex"], "demographic_parity_difference": dpd,
                              "undefined": []}, options={"sensitive_features": ["sex"]})


@pytest.fixture
def policy(cast: Cast, client_for: Any) -> dict[str, Any]:
    r = client_for("compliance_officer").post("/api/v1/policies/", {"document": POLICY}, format="json")
    assert r.status_code == 201, r.content
    return r.json()


def _request(client: APIClient, version: int = 2, key: str = "", stage: str = "production") -> Any:
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return client.post(f"/api/v1/models/alpha-model/versions/{version}/promotions/",
                       {"target_stage": stage, "reason": "quarterly retrain"}, format="json", **headers)


def test_policy_versions_are_immutable_and_exportable(policy: dict[str, Any], client_for: Any) -> None:
    co = client_for("compliance_officer")
    assert policy["version"] == 1
    same = co.post("/api/v1/policies/", {"document": POLICY}, format="json")
    assert same.status_code == 409 and same.json()["error"]["code"] == "policy_unchanged"
    v2 = co.post("/api/v1/policies/", {"document": POLICY.replace("0.85", "0.9")}, format="json")
    assert v2.status_code == 201 and v2.json()["version"] == 2 and v2.json()["digest"] != policy["digest"]
    old = co.get("/api/v1/policies/alpha-production/", {"version": 1}).json()
    assert old["digest"] == policy["digest"]
    exported = co.get("/api/v1/policies/alpha-production/", {"export": "yaml", "version": 1}).content.decode()
    again = co.post("/api/v1/policies/", {"document": exported}, format="json")
    assert again.status_code == 201 and again.json()["digest"] == policy["digest"]  # v3 == v1's content


def test_bad_policy_answers_400_with_located_errors(cast: Cast, client_for: Any) -> None:
    bad = POLICY.replace('op: ">="', 'op: "~"').replace("count: 1", "count: 0")
    r = client_for("compliance_officer").post("/api/v1/policies/", {"document": bad}, format="json")
    assert r.status_code == 400
    errors = r.json()["error"]["details"]["errors"]
    assert any("gates[0].op" in e for e in errors) and any("gates[3].count" in e for e in errors)
    assert client_for("ml_engineer").post("/api/v1/policies/", {"document": POLICY},
                                          format="json").status_code == 403


def test_no_policy_means_blocked(cast: Cast, client_for: Any) -> None:
    r = _request(client_for("ml_engineer"))
    assert r.status_code == 201 and r.json()["state"] == "blocked"
    assert "No promotion policy applies" in r.json()["decision"]["results"][0]["reason"]


def test_gated_promotion_with_separation_of_duties(policy: dict[str, Any], cast: Cast, client_for: Any,
                                                   sequenced: Any) -> None:
    v2 = cast.versions["alpha2"]
    _good_evidence(v2)
    r = _request(client_for("ml_engineer"))
    body = r.json()
    assert r.status_code == 201 and body["state"] == "awaiting_approval", body
    assert [g["status"] for g in body["decision"]["results"]] == ["passed", "passed", "passed", "waiting"]
    pk = body["id"]
    # the requester may not approve, even holding an approver role
    from governance import services as gov

    gov.role_grant(actor=SYSTEM, user=cast.users["ml_engineer"], role="approver")
    me = APIClient()
    me.force_authenticate(cast.users["ml_engineer"])
    sod = me.post(f"/api/v1/promotions/{pk}/approve/", {}, format="json")
    assert sod.status_code == 403 and sod.json()["error"]["code"] == "separation_of_duties"
    assert client_for("viewer").post(f"/api/v1/promotions/{pk}/approve/", {}, format="json").status_code == 403
    ok = client_for("approver").post(f"/api/v1/promotions/{pk}/approve/", {"comment": "evidence reviewed"},
                                     format="json")
    assert ok.status_code == 200 and ok.json()["state"] == "promoted", ok.json()
    holder = StageAssignment.objects.get(model=cast.models["alpha"], stage="production", ended_at__isnull=True)
    assert holder.version == v2
    assert StageAssignment.objects.get(version=cast.versions["alpha1"], ended_at__isnull=True).stage == "archived"
    # the receipt is a signed note over canonical JSON, verifiable with the audit log's public keys
    receipt = ok.json()["receipt"].encode()
    text, _ = open_note(receipt, [k.verifier for k in trusted_keys()])
    decided = json.loads(text)
    assert decided["outcome"] == "promoted" and decided["artifact_sha256"] == v2.artifact_sha256
    assert decided["policy"] == {"name": "alpha-production", "version": 1, "digest": policy["digest"]}
    assert [a["user"] for a in decided["approvals"]] == ["approver"]
    assert len(decided["reports"]) == 2 and all(len(r["result_digest"]) == 64 for r in decided["reports"])
    assert canonical_bytes(decided) + b"\n" == text.encode()
    events = sequenced()
    mine = [e.action for e in events if e.target_type == "governance.promotion" and e.target_id == str(pk)]
    assert mine.count("governance.promotion.requested") == 1
    assert mine.count("governance.promotion.approved") == 1 and mine.count("security.access.denied") >= 1
    assert any(e.action == "registry.stage.moved" and e.target_id == str(v2.pk) for e in events)
    again = client_for("approver").post(f"/api/v1/promotions/{pk}/approve/", {}, format="json")
    assert again.status_code == 409


def test_version_creator_cannot_approve(policy: dict[str, Any], cast: Cast, client_for: Any) -> None:
    from governance import services as gov
    from governance.access import Principal

    creator = cast.users["approver"]
    gov.team_member_add(actor=SYSTEM, team=cast.teams["alpha"], user=creator)
    gov.role_grant(actor=SYSTEM, user=creator, role="data_scientist")
    v3 = VersionFactory(model=cast.models["alpha"], actor=Principal(user=creator))
    _good_evidence(v3)
    r = _request(client_for("ml_engineer"), version=v3.version)
    assert r.json()["state"] == "awaiting_approval"
    denied = client_for("approver").post(f"/api/v1/promotions/{r.json()['id']}/approve/", {}, format="json")
    assert denied.status_code == 403 and "registered this version" in denied.json()["error"]["message"]


def test_biased_model_is_blocked_and_a_waiver_lets_it_pass(policy: dict[str, Any], cast: Cast,
                                                           client_for: Any) -> None:
    v2 = cast.versions["alpha2"]
    _good_evidence(v2, dpd=0.3)
    blocked = _request(client_for("ml_engineer")).json()
    assert blocked["state"] == "blocked"
    bias = blocked["decision"]["results"][1]
    assert bias["status"] == "failed" and "0.3" in bias["reason"]
    assert blocked["receipt"]  # blocked is a decision too: signed
    waiver = client_for("compliance_officer").post(
        "/api/v1/models/alpha-model/versions/2/waivers/",
        {"gate": bias["gate"], "justification": "Known sampling skew, remediation ticket RISK-42",
         "expires_at": (timezone.now() + timedelta(days=7)).isoformat()}, format="json")
    assert waiver.status_code == 201, waiver.content
    retried = _request(client_for("ml_engineer")).json()
    assert retried["state"] == "awaiting_approval"
    assert retried["decision"]["results"][1]["waived"] is True
    approve_all = client_for("approver").post(f"/api/v1/promotions/{retried['id']}/approve/", {}, format="json")
    assert approve_all.json()["state"] == "promoted"
    assert "RISK-42" in approve_all.json()["receipt"]


def test_waivers_cannot_cover_approvals_and_expire(policy: dict[str, Any], cast: Cast, client_for: Any) -> None:
    co = client_for("compliance_officer")
    r = co.post("/api/v1/models/alpha-model/versions/2/waivers/",
                {"gate": "approvals:1", "justification": "we are in a hurry today",
                 "expires_at": (timezone.now() + timedelta(days=1)).isoformat()}, format="json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "not_waivable"
    r = co.post("/api/v1/models/alpha-model/versions/2/waivers/",
                {"gate": "x", "justification": "long enough text", "expires_at": timezone.now().isoformat()},
                format="json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_expiry"
    assert client_for("approver").post("/api/v1/models/alpha-model/versions/2/waivers/", {},
                                       format="json").status_code == 403


def test_waiting_for_evidence_then_reevaluated(policy: dict[str, Any], cast: Cast, client_for: Any) -> None:
    from monitoring.models import Report

    v2 = cast.versions["alpha2"]
    _report(v2, "validation", {"metrics": {"accuracy": 0.9}})
    pending = _report(v2, "bias", {}, status="queued", options={"sensitive_features": ["sex"]})
    r = _request(client_for("ml_engineer")).json()
    assert r["state"] == "waiting_for_evidence"
    result = {"sensitive_features": ["sex"], "demographic_parity_difference": 0.02, "undefined": []}
    Report.objects.filter(pk=pending.pk).update(status="succeeded", result=result, result_digest=_digest(result),
                                                finished_at=timezone.now())
    req = promotions.promotion_reevaluate(actor=SYSTEM, request=PromotionRequest.objects.get(pk=r["id"]))
    assert req.state == "awaiting_approval"


def test_idempotency_and_one_open_request(policy: dict[str, Any], cast: Cast, client_for: Any) -> None:
    _good_evidence(cast.versions["alpha2"])
    api = client_for("ml_engineer")
    first = _request(api, key="run-77")
    replay = _request(api, key="run-77")
    assert first.status_code == 201 and replay.status_code == 200 and replay.json() == first.json()
    other = api.post("/api/v1/models/alpha-model/versions/2/promotions/",
                     {"target_stage": "production", "reason": "different"}, format="json",
                     HTTP_IDEMPOTENCY_KEY="run-77")
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_key_reused"
    second = _request(client_for("pipeline"), version=1)
    assert second.status_code == 409 and second.json()["error"]["code"] == "promotion_open"
    assert api.post(f"/api/v1/promotions/{first.json()['id']}/cancel/", {}, format="json").json()["state"] == \
        "cancelled"
    assert _request(client_for("pipeline"), version=1).status_code == 201


def test_reject_needs_a_comment(policy: dict[str, Any], cast: Cast, client_for: Any) -> None:
    _good_evidence(cast.versions["alpha2"])
    pk = _request(client_for("ml_engineer")).json()["id"]
    approver = client_for("approver")
    assert approver.post(f"/api/v1/promotions/{pk}/reject/", {}, format="json").status_code == 400
    r = approver.post(f"/api/v1/promotions/{pk}/reject/", {"comment": "calibration plot missing"}, format="json")
    assert r.json()["state"] == "rejected" and r.json()["receipt"]
    assert StageAssignment.objects.get(model=cast.models["alpha"], stage="production",
                                       ended_at__isnull=True).version == cast.versions["alpha1"]


def test_other_teams_promotions_are_invisible(policy: dict[str, Any], cast: Cast, client_for: Any) -> None:
    _good_evidence(cast.versions["alpha2"])
    pk = _request(client_for("ml_engineer")).json()["id"]
    assert client_for("beta_viewer").get(f"/api/v1/promotions/{pk}/").status_code == 404
    assert client_for("beta_viewer").get("/api/v1/promotions/").json()["results"] == []
    assert client_for("auditor").get(f"/api/v1/promotions/{pk}/").status_code == 200


def test_no_path_moves_a_stage_without_the_gates(cast: Cast, client_for: Any) -> None:
    from django.test import Client

    admin = Client()
    admin.force_login(cast.users["administrator"])
    assert admin.post("/admin/registry/stageassignment/add/", {"stage": "production"}).status_code == 403
    api = client_for("administrator")
    assert api.patch("/api/v1/models/alpha-model/versions/2/", {"stage": "production"},
                     format="json").status_code == 400
    from django.core.management import get_commands

    assert not [c for c in get_commands() if "stage" in c or "promot" in c]
    assert StageAssignment.objects.get(model=cast.models["alpha"], stage="production",
                                       ended_at__isnull=True).version == cast.versions["alpha1"]


ROLLBACK_POLICY = """
name: alpha-production-rollback
kind: rollback
target_stage: production
applies_to:
  models: [alpha-model]
gates:
  - type: approvals
    count: 1
    roles: [approver]
"""


def _rollback(client: APIClient, key: str = "", stage: str = "production", model: str = "alpha-model") -> Any:
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return client.post(f"/api/v1/models/{model}/stages/{stage}/rollback/", {"reason": "v2 misbehaves in production"},
                       format="json", **headers)


def _promote_v2(cast: Cast, client_for: Any) -> None:
    _good_evidence(cast.versions["alpha2"])
    pk = _request(client_for("ml_engineer")).json()["id"]
    r = client_for("approver").post(f"/api/v1/promotions/{pk}/approve/", {"comment": "ok"}, format="json")
    assert r.json()["state"] == "promoted", r.json()


def test_rollback_is_a_gated_promotion_under_its_own_policy(policy: dict[str, Any], cast: Cast, client_for: Any,
                                                            sequenced: Any) -> None:
    _promote_v2(cast, client_for)
    co = client_for("compliance_officer")
    published = co.post("/api/v1/policies/", {"document": ROLLBACK_POLICY}, format="json")
    assert published.status_code == 201 and published.json()["kind"] == "rollback", published.content
    assert published.json()["document"]["kind"] == "rollback"
    r = _rollback(client_for("ml_engineer"), key="rb-1")
    body = r.json()
    assert r.status_code == 201, body
    assert body["kind"] == "rollback" and body["version"] == 1 and body["state"] == "awaiting_approval"
    assert body["policy"]["name"] == "alpha-production-rollback"  # not the promotion policy's evidence gates
    assert _rollback(client_for("ml_engineer"), key="rb-1").json()["id"] == body["id"]  # replay
    assert _rollback(client_for("ml_engineer")).status_code == 409  # one open request per stage
    ok = client_for("approver").post(f"/api/v1/promotions/{body['id']}/approve/", {"comment": "roll back"},
                                     format="json")
    assert ok.status_code == 200 and ok.json()["state"] == "promoted", ok.json()
    holder = StageAssignment.objects.get(model=cast.models["alpha"], stage="production", ended_at__isnull=True)
    assert holder.version == cast.versions["alpha1"]
    assert StageAssignment.objects.get(version=cast.versions["alpha2"], ended_at__isnull=True).stage == "archived"
    text, _ = open_note(ok.json()["receipt"].encode(), [k.verifier for k in trusted_keys()])
    assert json.loads(text)["kind"] == "rollback" and json.loads(text)["version"] == 1
    events = [e for e in sequenced() if e.target_type == "governance.promotion" and e.target_id == str(body["id"])]
    requested = [json.loads(bytes(e.leaf))["payload"] for e in events if e.action == "governance.promotion.requested"]
    assert len(requested) == 1 and requested[0]["kind"] == "rollback"


def test_rollback_without_a_rollback_policy_faces_the_promotion_policy(policy: dict[str, Any], cast: Cast,
                                                                      client_for: Any) -> None:
    _promote_v2(cast, client_for)
    body = _rollback(client_for("ml_engineer")).json()
    assert body["kind"] == "rollback" and body["policy"]["name"] == "alpha-production"
    # alpha v1 has no reports on record: the promotion policy's evidence gates hold it back
    assert body["state"] in ("waiting_for_evidence", "blocked"), body
    assert StageAssignment.objects.get(model=cast.models["alpha"], stage="production",
                                       ended_at__isnull=True).version == cast.versions["alpha2"]


def test_rollback_refusals(policy: dict[str, Any], cast: Cast, client_for: Any) -> None:
    eng = client_for("ml_engineer")
    bad_stage = _rollback(eng, stage="archived")
    assert bad_stage.status_code == 400 and bad_stage.json()["error"]["code"] == "invalid_stage"
    # staging of alpha has no earlier holder: nothing to return to
    nothing = _rollback(eng, stage="staging")
    assert nothing.status_code == 409 and nothing.json()["error"]["code"] == "nothing_to_roll_back", nothing.json()
    assert _rollback(client_for("viewer")).status_code == 403
    assert _rollback(client_for("beta_viewer")).status_code in (403, 404)
    missing = eng.post("/api/v1/models/alpha-model/stages/production/rollback/", {}, format="json")
    assert missing.status_code == 400 and "reason" in json.dumps(missing.json())
    bogus = client_for("compliance_officer").post(
        "/api/v1/policies/", {"document": ROLLBACK_POLICY.replace("kind: rollback", "kind: rollbak")}, format="json")
    assert bogus.status_code == 400 and "kind" in json.dumps(bogus.json())


STAGING_POLICY = """
name: alpha-staging
target_stage: staging
applies_to:
  models: [alpha-model]
gates:
  - type: validation_metric
    metric: accuracy
    op: ">="
    threshold: 0.85
  - type: evidence_binding
"""


def _own_queries(captured: list[dict[str, Any]]) -> list[str]:
    """The statements of a request itself: not transaction control, not the audit log's numbering.

    Numbering runs inline here (no sequencer process in tests; on SQLite always), so it is left
    out to give one bound for both databases; served beside ``audit_sequencer`` it is one query.
    """
    skip = ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE", "ROLLBACK")
    return [q["sql"] for q in captured if not q["sql"].lstrip().upper().startswith(skip)
            and "audits_auditevent" not in q["sql"] and "advisory" not in q["sql"]
            and "FROM audits_auditpending" not in q["sql"] and "DELETE FROM audits_auditpending" not in q["sql"]]


def test_the_pipelines_register_and_promote_stay_within_their_query_budget(cast: Cast, client_for: Any) -> None:
    """The hot path of every pipeline run (docs/benchmarks/promotions.md): 10 and 15 statements at most.

    On PostgreSQL, 7 and 11: the version, its lineage and its audit event go in one statement;
    the promotion request, its key reserved with the model's lock, is inserted once, decided,
    with its audit event; the stage's new stints go with theirs.

    Before the access snapshot, the one-query visibility filter and the single evidence read,
    they were 19 and 33. Then the token lookup brought the user's access along, the replay check
    moved into the locked read of the open request, and the waivers are read only when a gate
    failed (11 and 18 before those). A change that brings back a per-check or per-row query fails
    here.
    """
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.factories import digest

    assert client_for("compliance_officer").post("/api/v1/policies/", {"document": STAGING_POLICY},
                                                 format="json").status_code == 201
    pipeline = client_for("pipeline")
    body = {"artifact_uri": "s3://b/alpha/budget", "artifact_sha256": digest("budget"), "metrics": {"auc": 0.9},
            "training_datasets": [cast.datasets["alpha"].pk], "evaluation_datasets": [cast.datasets["alpha"].pk]}
    with CaptureQueriesContext(connection) as register:
        r = pipeline.post("/api/v1/models/alpha-model/versions/", body, format="json")
    assert r.status_code == 201, r.content
    assert len(r.json()["training_datasets"]) == 1  # the lineage in the answer, without reading it back
    number = r.json()["version"]
    from registry.models import ModelVersion

    _report(ModelVersion.objects.get(model__name="alpha-model", version=number), "validation",
            {"task": "classification", "metrics": {"accuracy": 0.91}})
    with CaptureQueriesContext(connection) as promote:
        r = pipeline.post(f"/api/v1/models/alpha-model/versions/{number}/promotions/",
                          {"target_stage": "staging", "reason": "nightly"}, format="json", HTTP_IDEMPOTENCY_KEY="b-1")
    assert r.status_code == 201 and r.json()["state"] == "promoted", r.content
    own_register, own_promote = _own_queries(register.captured_queries), _own_queries(promote.captured_queries)
    # PostgreSQL writes the version, its two lineage links and its audit event in one statement.
    assert len(own_register) <= (7 if connection.vendor == "postgresql" else 10), "\n".join(own_register)
    assert len(own_promote) <= (11 if connection.vendor == "postgresql" else 15), "\n".join(own_promote)
    # On PostgreSQL the request is judged first and inserted once, decided (its key reserved
    # ahead); SQLite, with no sequence to reserve from, inserts it and then saves the decision.
    table = '"governance_promotionrequest"'
    inserts = [q for q in own_promote if f"INSERT INTO {table}" in q]
    updates = [q for q in own_promote if q.startswith(f"UPDATE {table}")]
    assert len(inserts) == 1 and len(updates) == (0 if connection.vendor == "postgresql" else 1), own_promote
    # The key comes with the model's lock, not in a statement of its own.
    reserving = [q for q in own_promote if "nextval" in q]
    assert reserving == ([q for q in own_promote if "FOR UPDATE" in q and "registry_registeredmodel" in q]
                         if connection.vendor == "postgresql" else []), own_promote
    row = PromotionRequest.objects.get(pk=r.json()["id"])
    assert (row.state, row.decided_at is not None) == ("promoted", True)
    assert json.loads(row.receipt.split("\n", 1)[0])["promotion"] == row.pk  # the receipt names the stored row


def test_the_hand_built_promotion_answer_equals_the_serializer(policy: dict[str, Any], cast: Cast,
                                                                client_for: Any) -> None:
    """``promotion_answer`` (the API's answer) renders exactly what ``PromotionOut`` (the schema) does."""
    from rest_framework.renderers import JSONRenderer

    from governance.api.promotions import PromotionOut, promotion_answer

    _good_evidence(cast.versions["alpha2"])
    pk = _request(client_for("ml_engineer"), key="equal").json()["id"]
    assert client_for("approver").post(f"/api/v1/promotions/{pk}/approve/", {"comment": "ok"},
                                       format="json").json()["state"] == "promoted"
    rows = list(PromotionRequest.objects.select_related("model", "version", "policy"))
    assert {r.state for r in rows} >= {"blocked", "promoted"} and any(r.policy is None for r in rows)
    assert any(r.approvals.exists() for r in rows)
    for row in rows:
        fresh = PromotionRequest.objects.select_related("model", "version", "policy").get(pk=row.pk)
        render = JSONRenderer().render
        assert json.loads(render(promotion_answer(row))) == json.loads(render(PromotionOut(fresh).data)), row.pk



def test_a_report_moved_to_another_version_is_not_evidence_for_it(policy: dict[str, Any], cast: Cast,
                                                                  client_for: Any) -> None:
    """Evidence binding recomputes each report's inputs digest from the version it now belongs to."""
    from monitoring.models import Report

    other = VersionFactory(model=cast.models["alpha"])
    _good_evidence(other)  # honest reports of another version of the same model...
    Report.objects.filter(version=other).update(version=cast.versions["alpha2"])  # ...re-pointed in the database
    body = _request(client_for("ml_engineer")).json()
    assert body["state"] == "blocked", body
    binding = next(r for r in body["decision"]["results"] if r["type"] == "evidence_binding")
    assert binding["status"] == "failed" and "inputs digest does not match" in binding["reason"], binding
