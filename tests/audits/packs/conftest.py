"""A realistic governance world, built once per module through the services, with a pack per framework.

Three teams, five models across HIPAA / GDPR / SOC 2 scopes, datasets on disk, evidence reports
(bias and validation computed by the real detectors; drift from scipy's two-sample KS test in
the detector's result format, because alibi-detect's import alone costs ~15 s), gated promotions
with approvals, a rejection, a blocked request and a waiver, failed sign-ins, rejected tokens,
refused actions, access changes, an open alert and a HIPAA export schedule. The packs are
generated once and shared by the read-only tests (tamper cases work on copies); the database is
flushed when the module ends.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from tests.factories import SYSTEM, Cast, TeamFactory, build_cast

POLICY = """
name: production-high-risk
target_stage: production
applies_to:
  risk_tiers: [high, critical]
gates:
  - type: validation_metric
    metric: accuracy
    op: ">="
    threshold: 0.75
  - type: bias_metric
    metric: demographic_parity_difference
    sensitive_feature: sex
    op: "<="
    threshold: 0.1
  - type: approvals
    count: 1
    roles: [approver]
"""
BIAS_GATE = "bias_metric:demographic_parity_difference[sex]<=0.1"


@dataclass
class World:
    cast: Cast
    start: Any
    end: Any
    packs: dict[str, Any] = field(default_factory=dict)  # framework -> AuditPack
    files: dict[str, Path] = field(default_factory=dict)  # framework -> a private copy of the zip
    log_keys: list[str] = field(default_factory=list)
    cert_pem: bytes = b""
    tokens: dict[str, str] = field(default_factory=dict)
    dirs: dict[str, Path] = field(default_factory=dict)


def _csv(folder: Path, name: str, columns: dict[str, Any]) -> dict[str, Any]:
    import pandas as pd

    path = folder / f"{name}.csv"
    pd.DataFrame(columns).to_csv(path, index=False)
    data = path.read_bytes()
    return {"path": path, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def _evaluation(rs: np.random.RandomState, n: int, *, unfair: bool) -> dict[str, Any]:
    sex = rs.choice(["f", "m"], n)
    y = rs.randint(0, 2, n)
    pred = np.where(rs.rand(n) < 0.85, y, 1 - y)
    if unfair:  # men are selected far more often
        pred = np.where((sex == "m") & (rs.rand(n) < 0.5), 1, pred)
    score = np.clip(pred * 0.6 + rs.rand(n) * 0.4, 0, 1).round(4)
    return {"label": y, "pred": pred, "score": score, "sex": sex}


def _drift_result(ref: dict[str, Any], cur: dict[str, Any], p_val: float = 0.05) -> dict[str, Any]:
    """A drift result in the detector's format, with real KS statistics and Bonferroni flags."""
    from scipy.stats import ks_2samp

    names = sorted(ref)
    threshold = p_val / len(names)
    feats = []
    for name in names:
        stat, p = ks_2samp(ref[name], cur[name])
        feats.append({"name": name, "test": "ks", "statistic": round(float(stat), 6), "p_value": float(p),
                      "drifted": bool(p < threshold)})
    n_drifted = sum(f["drifted"] for f in feats)
    return {"detector": "KSDrift", "library": "alibi-detect 0.13.0", "drift": n_drifted > 0, "p_val": p_val,
            "correction": "bonferroni", "threshold": threshold, "n_features": len(names), "n_drifted": n_drifted,
            "share_drifted": n_drifted / len(names), "n_reference": len(ref[names[0]]),
            "n_current": len(cur[names[0]]), "features": feats, "notes": []}


def _report(mon: Any, version: Any, kind: str, datasets: dict[str, int], options: dict[str, Any],
            drift: dict[str, Any] | None = None) -> Any:
    report = mon.report_request(actor=SYSTEM, version=version, kind=kind, datasets=datasets, options=options,
                                enqueue=False)
    if drift is None:
        return mon.report_compute(report_id=report.pk)
    report = mon.report_start(actor=SYSTEM, report=report)
    return mon.report_finish(actor=SYSTEM, report=report, result=drift)


def build_world(base: Path) -> World:
    from audits.checkpoints import checkpoint_create
    from audits.packs import schedules, services as packs
    from governance import promotions
    from governance import services as gov
    from governance.access import Principal
    from monitoring import services as mon
    from registry import services as reg

    start = timezone.now() - timedelta(seconds=5)
    cast = build_cast()
    clinical = TeamFactory(name="Clinical AI", slug="clinical")
    gov.user_create(actor=SYSTEM, username="clinical_engineer", roles=["ml_engineer"], teams=[clinical])
    data_dir = base / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    rs = np.random.RandomState(7)

    def dataset(team: Any, name: str, columns: dict[str, Any], categories: list[str]) -> Any:
        return mon.dataset_ingest(actor=SYSTEM, team=team, name=name, data_categories=categories,
                                  **_csv(data_dir, name, columns))

    triage = reg.model_create(actor=SYSTEM, name="triage-risk", team=clinical, risk_tier="high",
                              data_categories=["phi", "special_category"],
                              intended_use="Orders emergency-department patients by predicted deterioration risk "
                                           "for a nurse's review; never decides treatment on its own.")
    claims = reg.model_create(actor=SYSTEM, name="claims-fraud", team=cast.teams["beta"], risk_tier="high",
                              data_categories=["personal"],
                              intended_use="Flags insurance claims for manual fraud review.")
    churn = reg.model_create(actor=SYSTEM, name="churn", team=cast.teams["alpha"], risk_tier="low",
                             intended_use="Predicts subscription churn for retention offers.")
    reg.model_update(actor=SYSTEM, model=cast.models["alpha"], changes={"intended_use": "Credit limit advice."})

    triage_train = dataset(clinical, "triage-train", _evaluation(rs, 300, unfair=False), ["phi", "special_category"])
    triage_eval = dataset(clinical, "triage-eval", _evaluation(rs, 400, unfair=True), ["phi", "special_category"])
    claims_eval = dataset(cast.teams["beta"], "claims-eval", _evaluation(rs, 400, unfair=False), ["personal"])
    ref = {"age": rs.normal(52, 12, 300).round(2), "heart_rate": rs.normal(80, 9, 300).round(2),
           "lactate": rs.normal(1.6, 0.5, 300).round(3)}
    cur = {"age": rs.normal(58, 12, 300).round(2), "heart_rate": rs.normal(80, 9, 300).round(2),
           "lactate": rs.normal(1.6, 0.5, 300).round(3)}
    triage_ref = dataset(clinical, "triage-vitals-ref", ref, ["phi"])
    triage_cur = dataset(clinical, "triage-vitals-week47", cur, ["phi"])

    t1 = reg.version_register(actor=SYSTEM, model=triage, artifact_uri="s3://models/triage/1.onnx",
                              artifact_sha256=hashlib.sha256(b"triage-1").hexdigest(), framework="xgboost",
                              training_datasets=[triage_train.pk])
    c1 = reg.version_register(actor=SYSTEM, model=claims, artifact_uri="s3://models/claims/1.onnx",
                              artifact_sha256=hashlib.sha256(b"claims-1").hexdigest(), framework="sklearn",
                              training_datasets=[cast.datasets["beta"].pk])
    c2 = reg.version_register(actor=SYSTEM, model=claims, artifact_uri="s3://models/claims/2.onnx",
                              artifact_sha256=hashlib.sha256(b"claims-2").hexdigest(), framework="sklearn")
    ch1 = reg.version_register(actor=SYSTEM, model=churn, artifact_uri="s3://models/churn/1.onnx",
                               artifact_sha256=hashlib.sha256(b"churn-1").hexdigest())

    options = {"label": "label", "prediction": "pred"}
    for version, ev in ((t1, triage_eval), (c1, claims_eval), (c2, claims_eval)):
        _report(mon, version, "validation", {"evaluation": ev.pk}, options | {"score": "score"})
        _report(mon, version, "bias", {"evaluation": ev.pk}, options | {"sensitive_features": ["sex"]})
    _report(mon, t1, "drift", {"reference": triage_ref.pk, "current": triage_cur.pk},
            {"features": ["age", "heart_rate", "lactate"]}, drift=_drift_result(ref, cur))

    compliance = Principal(user=cast.users["compliance_officer"])
    approver = Principal(user=cast.users["approver"])
    promotions.policy_publish(actor=compliance, text=POLICY)
    # triage's predictions favour one sex: a compliance officer waives the bias gate, an approver approves.
    promotions.waiver_grant(actor=compliance, version=t1, gate=BIAS_GATE,
                            justification="Bias traced to the evaluation sample's referral mix; re-evaluation on "
                                          "the Q1 cohort is scheduled. Nurses review every ranking.",
                            expires_at=timezone.now() + timedelta(days=30))
    req, _ = promotions.promotion_request(actor=SYSTEM, version=t1, target_stage="production",
                                          reason="Quarterly model refresh")
    promotions.promotion_approve(actor=approver, request=req, comment="Validated on the holdout set.")
    req, _ = promotions.promotion_request(actor=SYSTEM, version=c1, target_stage="production", reason="First release")
    promotions.promotion_approve(actor=approver, request=req, comment="Looks good.")
    req, _ = promotions.promotion_request(actor=SYSTEM, version=c2, target_stage="staging", reason="Candidate")
    promotions.promotion_request(actor=SYSTEM, version=ch1, target_stage="staging", reason="no policy: blocked")

    # Security events and access changes.
    for _ in range(6):
        gov.login_record_failure(username="mallory", ip="203.0.113.9")
    gov.login_record_failure(username="compliance_officer", ip="198.51.100.4")
    gov.login_record_success(user=cast.users["compliance_officer"], ip="198.51.100.4")
    for _ in range(3):
        gov.token_authenticate(secret="gva_not-a-real-token")
    try:
        reg.model_create(actor=Principal(user=cast.users["viewer"]), name="sneaky", team=cast.teams["alpha"])
    except Exception:  # noqa: BLE001 - the refusal (403) is the event we want
        pass
    gov.role_grant(actor=SYSTEM, user=cast.users["data_scientist"], role="viewer")
    gov.token_revoke(actor=SYSTEM, token=cast.users["beta_viewer"].api_tokens.first())
    packs.alert_raise(actor=SYSTEM, kind="audits.pack_schedule.failed", title="Nightly SOC 2 export failed",
                      message="The S3 bucket refused the upload.")
    schedules.pack_schedule_create(actor=compliance, name="hipaa-monthly", framework="hipaa", cron="0 3 1 * *",
                                   destination="hipaa", retention_days=2192, period_days=31)
    checkpoint_create()
    return World(cast=cast, start=start, end=timezone.now())


@pytest.fixture(scope="module")
def world(django_db_setup: Any, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from audits.keys import trusted_keys
    from audits.packs import services as packs
    from audits.packs.signing import organisation_signer
    from governance.access import Principal

    base = tmp_path_factory.mktemp("packs-world")
    dirs = {"packs": base / "packs", "exports": base / "exports", "storage": base / "storage"}
    with override_settings(KEY_DIR=tmp_path_factory.getbasetemp() / "keys", STORAGE_DIR=dirs["storage"],
                           GOVAUDIT_PACK_DIR=dirs["packs"], GOVAUDIT_PACK_EXPORT_ROOT=dirs["exports"]):
        with django_db_blocker.unblock():
            try:
                world = build_world(base)
                world.dirs = dirs
                officer = Principal(user=world.cast.users["compliance_officer"])
                for framework in ("hipaa", "gdpr", "soc2"):
                    pack = packs.pack_request(actor=officer, framework=framework, period_start=world.start,
                                              period_end=world.end, enqueue=False)
                    pack = packs.pack_generate(pack_id=pack.pk)
                    assert pack.status == "succeeded", (framework, pack.error_code, pack.error_message)
                    world.packs[framework] = pack
                    copy = base / f"{framework}.zip"
                    copy.write_bytes(packs.pack_path(pack).read_bytes())
                    world.files[framework] = copy
                world.log_keys = [k.verifier.encode() for k in trusted_keys()]
                world.cert_pem = organisation_signer().cert_pem
                world.tokens = dict(world.cast.tokens)
                yield world
            finally:
                call_command("flush", interactive=False, verbosity=0)
