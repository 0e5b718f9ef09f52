"""Promotion gates, each alone, then waivers and the evaluator. Pure: facts in, verdicts out, no database."""
from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from audits.core.canonical import canonical_bytes
from governance.gates import (
    ApprovalFacts, Evidence, EvidenceRef, ReportFacts, VersionFacts, WaiverFacts, apply_waivers, check_approvals,
    check_bias_metric, check_drift, check_evidence_binding, check_evidence_freshness, check_validation_metric,
    evaluate,
)
from governance.policy import (
    ApprovalsGate, BiasMetricGate, DriftGate, EvidenceBindingGate, EvidenceFreshnessGate, ValidationMetricGate,
    parse_policy,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
ARTIFACT = "a" * 64
OTHER = "b" * 64
CREATOR, REQUESTER, ALICE, BOB, CAROL = 1, 2, 10, 11, 12

ACCURACY = ValidationMetricGate("accuracy", ">=", 0.85)
DPD = BiasMetricGate("demographic_parity_difference", "sex", "<=", 0.1)
TWO_APPROVALS = ApprovalsGate(2, ("approver", "compliance_officer"))


def report(id: int, kind: str, result: dict[str, Any] | None = None, *, status: str = "succeeded",
           artifact: str = ARTIFACT, age_days: float = 1, registered: bool = True, **extra: Any) -> ReportFacts:
    """A report as the service layer would build it, with a correct result digest when it has a result."""
    digest = hashlib.sha256(canonical_bytes(result)).hexdigest() if result is not None else ""
    finished = NOW - timedelta(days=age_days) if status in ("succeeded", "failed") else None
    return ReportFacts(id=id, kind=kind, status=status, artifact_sha256=artifact, datasets_registered=registered,
                       finished_at=finished, result=result, result_digest=digest, **extra)


def validation(id: int = 1, accuracy: float | None = 0.9, **kw: Any) -> ReportFacts:
    undefined = {} if accuracy is not None else {"accuracy": "no rows"}
    return report(id, "validation", {"task": "classification", "metrics": {"accuracy": accuracy, "f1": 0.8},
                                     "undefined": undefined}, **kw)


def bias(id: int = 2, dpd: float | None = 0.05, features: tuple[str, ...] = ("sex",), **kw: Any) -> ReportFacts:
    undefined = [] if dpd is not None else [{"group": "sex='x'", "metric": "selection_rate", "reason": "0/0"}]
    return report(id, "bias", {"sensitive_features": list(features), "demographic_parity_difference": dpd,
                               "equalized_odds_difference": None, "undefined": undefined},
                  options={"sensitive_features": list(features)}, **kw)


def drift(id: int = 3, p_values: tuple[float | None, ...] = (0.5, 0.001, 0.9, 0.2), p_val: float = 0.05,
          correction: str = "bonferroni", **kw: Any) -> ReportFacts:
    threshold = p_val / len(p_values)
    flags = [p is not None and p < threshold for p in p_values]
    features = [{"name": f"f{i}", "p_value": p, "drifted": flag} for i, (p, flag) in enumerate(zip(p_values, flags))]
    return report(id, "drift", {"drift": any(flags), "p_val": p_val, "correction": correction,
                                "n_features": len(p_values), "n_drifted": sum(flags),
                                "share_drifted": sum(flags) / len(p_values), "features": features}, **kw)


def evidence(*reports: ReportFacts, approvals: tuple[ApprovalFacts, ...] = (),
             waivers: tuple[WaiverFacts, ...] = ()) -> Evidence:
    return Evidence(version=VersionFacts(ARTIFACT, CREATOR), requester_id=REQUESTER, now=NOW, reports=reports,
                    approvals=approvals, waivers=waivers)


def approval(id: int, user: int, roles: set[str] = {"approver"}, decision: str = "approved",
             minutes: int = 0) -> ApprovalFacts:
    decided = NOW - timedelta(hours=1) + timedelta(minutes=minutes)
    return ApprovalFacts(id=id, user_id=user, roles=frozenset(roles), decided_at=decided,
                         decision=decision)  # type: ignore[arg-type]


def test_mirrored_statuses_match_the_report_model() -> None:
    from governance import gates
    from monitoring.models import ReportKind, ReportStatus

    assert set(gates.PENDING) | {gates.SUCCEEDED, gates.FAILED} == set(ReportStatus.values)
    assert {"validation", "bias", "drift"} == set(ReportKind.values)


# --- report selection (shown on the validation gate) ---------------------------------------------

def test_validation_passes_and_names_its_report() -> None:
    result = check_validation_metric(ACCURACY, evidence(validation(accuracy=0.9)))
    assert result.status == "passed"
    assert result.gate == "validation_metric:accuracy>=0.85"
    assert result.reason == "accuracy is 0.9 in validation report 1 (>= 0.85 required)."
    assert result.evidence == (EvidenceRef("report", 1, validation().result_digest),)


def test_validation_fails_below_threshold() -> None:
    result = check_validation_metric(ACCURACY, evidence(validation(accuracy=0.8)))
    assert result.status == "failed"
    assert result.reason.startswith("accuracy is 0.8 in validation report 1; the policy requires >= 0.85.")


def test_strict_and_inclusive_operators_at_the_boundary() -> None:
    assert check_validation_metric(ACCURACY, evidence(validation(accuracy=0.85))).status == "passed"
    strict = ValidationMetricGate("accuracy", ">", 0.85)
    assert check_validation_metric(strict, evidence(validation(accuracy=0.85))).status == "failed"


def test_undefined_metric_fails_and_is_never_zero() -> None:
    lenient = ValidationMetricGate("log_loss", "<=", 5.0)
    rep = report(1, "validation", {"task": "classification", "metrics": {"log_loss": None},
                                   "undefined": {"log_loss": "scores outside [0, 1]"}})
    result = check_validation_metric(lenient, evidence(rep))
    assert result.status == "failed"
    assert result.reason.startswith("log_loss is undefined in validation report 1 (scores outside [0, 1]); "
                                    "the policy requires <= 5, and an undefined metric is never treated as 0.")


def test_metric_missing_from_report_fails() -> None:
    rmse = ValidationMetricGate("rmse", "<=", 1.0)
    result = check_validation_metric(rmse, evidence(validation()))
    assert (result.status, result.reason) == (
        "failed",
        "validation report 1 has no rmse (task: classification); request a validation report that computes it.")


def test_no_report_is_waiting() -> None:
    result = check_validation_metric(ACCURACY, evidence(bias()))
    assert (result.status, result.reason) == ("waiting", "No validation report for this version yet; request one.")


@pytest.mark.parametrize("status", ["queued", "running"])
def test_pending_report_is_waiting(status: str) -> None:
    result = check_validation_metric(ACCURACY, evidence(report(4, "validation", status=status)))
    assert (result.status, result.reason) == ("waiting", "Waiting for validation report(s) 4 to finish.")


def test_only_failed_reports_fail_with_the_error() -> None:
    failed = report(5, "validation", status="failed", error_code="missing_columns",
                    error_message="column 'label' is missing; did you mean 'Label'?")
    result = check_validation_metric(ACCURACY, evidence(failed))
    assert (result.status, result.reason) == (
        "failed", "The validation report 5 failed (missing_columns): column 'label' is missing; did you mean 'Label'?."
                  " Fix the cause and request a new validation report.")
    rerun = check_validation_metric(ACCURACY, evidence(failed, report(6, "validation", status="queued")))
    assert rerun.status == "waiting"
    assert "The previous attempt, report 5, failed" in rerun.reason


def test_newest_succeeded_report_is_used() -> None:
    old_good = validation(1, accuracy=0.95, age_days=10)
    new_bad = validation(2, accuracy=0.7, age_days=2)
    newer_failed = report(3, "validation", status="failed", age_days=1, error_message="boom")
    newest_queued = report(4, "validation", status="queued")
    result = check_validation_metric(ACCURACY, evidence(old_good, new_bad, newer_failed, newest_queued))
    assert result.status == "failed"
    assert result.evidence[0].id == 2


def test_report_on_another_artifact_is_not_evidence() -> None:
    wrong = validation(7, accuracy=0.99, artifact=OTHER)
    result = check_validation_metric(ACCURACY, evidence(wrong))
    assert (result.status, result.reason) == (
        "waiting", "No validation report for this version yet; request one. Report(s) 7 were computed on another "
                   "artifact and are not evidence for this version.")
    mixed = check_validation_metric(ACCURACY, evidence(validation(1, accuracy=0.8, age_days=5),
                                                       replace(wrong, finished_at=NOW)))
    assert mixed.status == "failed" and mixed.evidence[0].id == 1


# --- bias ----------------------------------------------------------------------------------------

def test_bias_passes_and_fails() -> None:
    assert check_bias_metric(DPD, evidence(bias(dpd=0.05))).status == "passed"
    result = check_bias_metric(DPD, evidence(bias(dpd=0.2)))
    assert result.status == "failed"
    assert result.reason.startswith(
        "demographic_parity_difference is 0.2 in bias report 2; the policy requires <= 0.1.")
    assert result.gate == "bias_metric:demographic_parity_difference[sex]<=0.1"


def test_bias_undefined_metric_fails() -> None:
    eod = BiasMetricGate("equalized_odds_difference", "sex", "<=", 0.5)
    result = check_bias_metric(eod, evidence(bias()))
    assert result.status == "failed"
    assert result.reason.startswith("equalized_odds_difference is undefined in bias report 2;")
    undefined = check_bias_metric(DPD, evidence(bias(dpd=None)))
    assert undefined.status == "failed"
    assert "(1 group rate(s) undefined; see the report's 'undefined' list)" in undefined.reason


def test_bias_report_must_be_on_exactly_the_sensitive_feature() -> None:
    other = bias(2, dpd=0.0, features=("race",))
    intersectional = bias(3, dpd=0.0, features=("sex", "race"))
    result = check_bias_metric(DPD, evidence(other, intersectional))
    assert (result.status, result.reason) == (
        "waiting", "No bias (sensitive feature 'sex') report for this version yet; request one.")
    queued = report(4, "bias", status="queued", options={"sensitive_features": ["sex"]})
    assert check_bias_metric(DPD, evidence(other, queued)).reason == (
        "Waiting for bias (sensitive feature 'sex') report(s) 4 to finish.")
    newest_on_race = bias(5, dpd=0.9, features=("race",), age_days=0)
    assert check_bias_metric(DPD, evidence(bias(2, dpd=0.01), newest_on_race)).status == "passed"


# --- drift ---------------------------------------------------------------------------------------

def test_drift_share_limit() -> None:
    gate = DriftGate(0.25, False, None)
    result = check_drift(gate, evidence(drift()))  # f1 drifted: 1 of 4
    assert (result.status, result.reason) == (
        "passed", "In drift report 3, 1 of 4 feature(s) drifted at p_val 0.05 (bonferroni): f1 (share 0.25).")
    tight = check_drift(DriftGate(0.2, False, None), evidence(drift()))
    assert tight.status == "failed"
    assert tight.reason == ("In drift report 3, 1 of 4 feature(s) drifted at p_val 0.05 (bonferroni): f1; the share "
                            "0.25 exceeds the maximum 0.2. Retrain on current data or ask for a waiver.")


def test_drift_require_no_drift() -> None:
    gate = DriftGate(None, True, None)
    assert check_drift(gate, evidence(drift(p_values=(0.5, 0.6)))).status == "passed"
    result = check_drift(gate, evidence(drift()))
    assert result.status == "failed" and "the policy requires no drift" in result.reason


def test_drift_p_val_rejudges_features_at_the_policy_level() -> None:
    """The report ran at 0.01 (threshold 0.0025: nothing drifted); the policy's 0.2 (0.05 each) flags f1 and f3."""
    rep = drift(p_values=(0.5, 0.01, 0.9, 0.04), p_val=0.01)
    assert check_drift(DriftGate(None, True, None), evidence(rep)).status == "passed"
    result = check_drift(DriftGate(None, True, 0.2), evidence(rep))
    assert result.status == "failed"
    assert result.reason.startswith("In drift report 3, 2 of 4 feature(s) drifted at p_val 0.2 (bonferroni): f1, f3;")


def test_drift_p_val_with_fdr_uses_benjamini_hochberg() -> None:
    """docs/detectors.md's example: q = 0.05 flags four features under FDR, none under Bonferroni."""
    p_values = (0.02, 0.025, 0.03, 0.035, 0.9)
    fdr = check_drift(DriftGate(0.5, False, 0.05), evidence(drift(p_values=p_values, correction="fdr")))
    assert fdr.status == "failed" and "4 of 5 feature(s) drifted" in fdr.reason
    bonf = check_drift(DriftGate(0.5, False, 0.05), evidence(drift(p_values=p_values)))
    assert bonf.status == "passed" and "0 of 5 feature(s) drifted" in bonf.reason


def test_drift_untested_feature_fails() -> None:
    result = check_drift(DriftGate(1.0, False, None), evidence(drift(p_values=(0.5, None))))
    assert result.status == "failed"
    assert result.reason.startswith("drift report 3 could not test feature(s) 'f1' (p-value undefined); an untested "
                                    "feature is not counted as stable.")


def test_drift_waiting_without_report() -> None:
    assert check_drift(DriftGate(0.2, False, None), evidence(validation())).status == "waiting"


# --- freshness and binding -----------------------------------------------------------------------

def test_freshness() -> None:
    gate = EvidenceFreshnessGate(30)
    fresh, stale = validation(1, age_days=29.5), bias(2, age_days=45)
    assert check_evidence_freshness(gate, evidence(fresh), [fresh]).reason == (
        "All 1 report(s) used finished within 30 days (oldest: report 1, 29.5 days).")
    result = check_evidence_freshness(gate, evidence(fresh, stale), [fresh, stale])
    assert (result.status, result.reason) == (
        "failed", "Stale evidence: report 2 finished 45.0 days ago (2026-01-15T12:00:00+00:00); the policy accepts "
                  "reports at most 30 days old. Request new reports.")
    assert [ref.id for ref in result.evidence] == [1, 2]
    assert check_evidence_freshness(gate, evidence(), []).status == "waiting"


def test_binding_wrong_artifact_unregistered_dataset_and_tampered_result() -> None:
    gate = EvidenceBindingGate()
    good = validation(1)
    assert check_evidence_binding(gate, evidence(good), [good]).status == "passed"
    wrong = validation(2, artifact=OTHER)
    unregistered = bias(3, registered=False)
    tampered = replace(drift(4), result={**drift(4).result, "share_drifted": 0.0})  # type: ignore[dict-item]
    result = check_evidence_binding(gate, evidence(good, wrong, unregistered, tampered),
                                    [good, wrong, unregistered, tampered])
    assert (result.status, result.reason) == (
        "failed", "Unbound evidence: report 2 was computed on artifact bbbbbbbbbbbb..., not this version's "
                  "aaaaaaaaaaaa...; report 3 read a dataset that is not registered; report 4's result does not match "
                  "its recorded digest. Request new reports on registered datasets for this version.")
    assert check_evidence_binding(gate, evidence(), []).status == "waiting"


def test_binding_fails_a_report_whose_inputs_digest_no_longer_matches() -> None:
    gate = EvidenceBindingGate()
    moved = replace(validation(5), inputs_intact=False)
    result = check_evidence_binding(gate, evidence(moved), [moved])
    assert (result.status, result.reason) == (
        "failed", "Unbound evidence: report 5's recorded inputs digest does not match this version's artifact, the "
                  "datasets it points at and its options. Request new reports on registered datasets for this "
                  "version.")


# --- approvals -----------------------------------------------------------------------------------

def test_approvals_pass_with_two_distinct_eligible_people() -> None:
    result = check_approvals(TWO_APPROVALS, evidence(approvals=(
        approval(1, ALICE), approval(2, BOB, {"compliance_officer"}))))
    assert (result.status, result.reason) == ("passed", "Approved by 2 eligible people (users 10, 11); 2 required.")
    assert result.evidence == (EvidenceRef("approval", 1), EvidenceRef("approval", 2))


def test_requester_approval_is_ignored() -> None:
    result = check_approvals(TWO_APPROVALS, evidence(approvals=(approval(1, ALICE), approval(2, REQUESTER))))
    assert result.status == "waiting"
    assert result.reason == ("1 of 2 approvals from approver or compliance_officer (users 10); waiting for 1 more from "
                             "people other than the requester and the version's creator. Not counted: user 2 "
                             "requested the promotion.")


def test_creator_approval_is_ignored() -> None:
    result = check_approvals(TWO_APPROVALS, evidence(approvals=(approval(1, ALICE), approval(2, CREATOR))))
    assert result.status == "waiting"
    assert result.reason.endswith("Not counted: user 1 registered the version.")


def test_same_person_twice_counts_once() -> None:
    result = check_approvals(TWO_APPROVALS, evidence(approvals=(approval(1, ALICE), approval(2, ALICE, minutes=5))))
    assert result.status == "waiting" and result.reason.startswith("1 of 2 approvals")


def test_wrong_role_is_ignored() -> None:
    result = check_approvals(TWO_APPROVALS, evidence(approvals=(approval(1, ALICE), approval(2, BOB, {"auditor"}))))
    assert result.status == "waiting"
    assert result.reason.endswith("Not counted: user 11 held none of the roles approver, compliance_officer.")


def test_rejection_by_eligible_person_fails() -> None:
    result = check_approvals(TWO_APPROVALS, evidence(approvals=(
        approval(1, ALICE), approval(2, BOB), approval(3, CAROL, decision="rejected"))))
    assert result.status == "failed"
    assert result.reason.startswith("Rejected by user 12 at 2026-03-01T11:00:00+00:00.")
    assert result.evidence == (EvidenceRef("approval", 3),)


def test_rejection_by_ineligible_person_is_ignored_and_latest_decision_counts() -> None:
    ignored = check_approvals(TWO_APPROVALS, evidence(approvals=(
        approval(1, ALICE), approval(2, BOB), approval(3, REQUESTER, decision="rejected"))))
    assert ignored.status == "passed"
    changed_mind = check_approvals(TWO_APPROVALS, evidence(approvals=(
        approval(1, ALICE), approval(2, BOB, decision="rejected"), approval(3, BOB, minutes=10))))
    assert changed_mind.status == "passed"
    withdrew = check_approvals(TWO_APPROVALS, evidence(approvals=(
        approval(1, ALICE), approval(2, BOB), approval(3, BOB, decision="rejected", minutes=10))))
    assert withdrew.status == "failed"


# --- waivers -------------------------------------------------------------------------------------

def waiver(id: int, gate: str, *, days: float = 7, by: int = CAROL) -> WaiverFacts:
    return WaiverFacts(id=id, gate=gate, expires_at=NOW + timedelta(days=days),
                       justification="Known label noise; retraining scheduled for Q2.", granted_by_id=by)


def test_waiver_turns_failure_into_waived_pass() -> None:
    ev = evidence(validation(accuracy=0.8), waivers=(waiver(9, ACCURACY.key),))
    result = apply_waivers(check_validation_metric(ACCURACY, ev), ev)
    assert (result.status, result.waived) == ("passed", True)
    assert result.reason.startswith("Waived by user 12 until 2026-03-08T12:00:00+00:00: Known label noise; "
                                    "retraining scheduled for Q2. (the gate itself failed: accuracy is 0.8")
    assert result.evidence[-1] == EvidenceRef("waiver", 9)


def test_expired_waiver_is_ignored_and_says_so() -> None:
    ev = evidence(validation(accuracy=0.8), waivers=(waiver(9, ACCURACY.key, days=-1),))
    result = apply_waivers(check_validation_metric(ACCURACY, ev), ev)
    assert (result.status, result.waived) == ("failed", False)
    assert result.reason.endswith("(waiver 9 expired at 2026-02-28T12:00:00+00:00 and is ignored.)")
    exactly_now = evidence(validation(accuracy=0.8), waivers=(waiver(9, ACCURACY.key, days=0),))
    assert apply_waivers(check_validation_metric(ACCURACY, exactly_now), exactly_now).status == "failed"


def test_waiver_by_requester_or_creator_is_ignored() -> None:
    for by in (REQUESTER, CREATOR):
        ev = evidence(validation(accuracy=0.8), waivers=(waiver(9, ACCURACY.key, by=by),))
        result = apply_waivers(check_validation_metric(ACCURACY, ev), ev)
        assert result.status == "failed"
        assert "waiver 9 was granted by the requester or the version's creator and is ignored" in result.reason


def test_waiver_never_applies_to_approvals_or_waiting_or_other_gates() -> None:
    rejected = evidence(approvals=(approval(1, ALICE, decision="rejected"),),
                        waivers=(waiver(9, TWO_APPROVALS.key),))
    result = apply_waivers(check_approvals(TWO_APPROVALS, rejected), rejected)
    assert result.status == "failed"
    assert result.reason.endswith("Waiver(s) 9 ignored: waivers never apply to approvals gates.")
    waiting = evidence(waivers=(waiver(9, ACCURACY.key),))
    assert apply_waivers(check_validation_metric(ACCURACY, waiting), waiting).status == "waiting"
    elsewhere = evidence(validation(accuracy=0.8), waivers=(waiver(9, "validation_metric:accuracy>=0.8"),))
    assert apply_waivers(check_validation_metric(ACCURACY, elsewhere), elsewhere).status == "failed"


# --- evaluation ----------------------------------------------------------------------------------

POLICY = parse_policy("""
name: production-high-risk
target_stage: production
applies_to: {risk_tiers: [high, critical]}
gates:
  - {type: validation_metric, metric: accuracy, op: ">=", threshold: 0.85}
  - {type: bias_metric, metric: demographic_parity_difference, sensitive_feature: sex, op: "<=", threshold: 0.1}
  - {type: drift, max_share_drifted: 0.25}
  - {type: evidence_freshness, max_age_days: 30}
  - {type: evidence_binding}
  - {type: approvals, count: 2, roles: [approver, compliance_officer]}
""")
APPROVED = (approval(1, ALICE), approval(2, BOB, {"compliance_officer"}))


def test_everything_in_order_passes() -> None:
    decision = evaluate(POLICY, evidence(validation(), bias(), drift(), approvals=APPROVED))
    assert decision.status == "passed"
    assert [r.gate for r in decision.results] == [g.key for g in POLICY.gates]
    assert [r.status for r in decision.results] == ["passed"] * 6
    assert [ref.id for ref in decision.results[3].evidence] == [1, 2, 3]
    assert decision.policy_digest == POLICY.digest()
    data = decision.to_data()
    assert canonical_bytes(data)  # JSON-ready for the audit log
    assert data["policy"] == {"name": "production-high-risk", "digest": POLICY.digest()}


def test_waiting_when_nothing_failed_but_something_is_missing() -> None:
    decision = evaluate(POLICY, evidence(validation(), bias(), approvals=APPROVED[:1]))
    assert decision.status == "waiting"
    assert [r.status for r in decision.results] == ["passed", "passed", "waiting", "passed", "passed", "waiting"]


def test_any_failure_fails_even_with_waiting_gates() -> None:
    decision = evaluate(POLICY, evidence(validation(accuracy=0.5), bias()))
    assert decision.status == "failed"
    assert [r.status for r in decision.results] == ["failed", "passed", "waiting", "passed", "passed", "waiting"]


def test_stale_and_unbound_evidence_fail_the_decision() -> None:
    stale = evaluate(POLICY, evidence(validation(age_days=31), bias(), drift(), approvals=APPROVED))
    assert stale.status == "failed" and stale.results[3].status == "failed"
    unregistered = evaluate(POLICY, evidence(validation(), bias(registered=False), drift(), approvals=APPROVED))
    assert unregistered.status == "failed" and unregistered.results[4].status == "failed"
    assert "report 2 read a dataset that is not registered" in unregistered.results[4].reason


def test_freshness_ignores_reports_no_gate_used() -> None:
    ancient_unused = validation(99, accuracy=0.1, age_days=400)  # older than the one in use
    decision = evaluate(POLICY, evidence(ancient_unused, validation(), bias(), drift(), approvals=APPROVED))
    assert decision.status == "passed"


def test_waived_failure_lets_the_decision_pass() -> None:
    ev = evidence(validation(accuracy=0.8), bias(), drift(), approvals=APPROVED,
                  waivers=(waiver(9, ACCURACY.key),))
    decision = evaluate(POLICY, ev)
    assert decision.status == "passed"
    assert decision.results[0].waived and not any(r.waived for r in decision.results[1:])


def test_evaluation_is_deterministic_and_needs_an_aware_clock() -> None:
    ev = evidence(validation(), bias(), drift(), approvals=APPROVED)
    assert evaluate(POLICY, ev) == evaluate(POLICY, replace(ev, reports=tuple(reversed(ev.reports)),
                                                            approvals=tuple(reversed(ev.approvals))))
    with pytest.raises(ValueError, match="timezone-aware"):
        evaluate(POLICY, replace(ev, now=NOW.replace(tzinfo=None)))
