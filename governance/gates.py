"""Promotion gates: small pure functions of the evidence, and the evaluator that runs a policy.

Gates are not permissions. A permission answers "may this person ask?"; a gate answers "may this
version go to that stage, on this evidence?". Each gate reads plain facts (dataclasses below, built
by the service layer from the ORM) and returns passed / failed / waiting with a reason a person can
act on and references to the evidence it used, so a decision can be recorded in the audit log and
re-checked later from the same facts. Nothing here reads a clock, a database or a setting: ``now``
is part of the evidence, which makes every decision reproducible.

Rules that hold across gates, and why:

* Only evidence about *this* artifact counts. A report computed on another artifact digest is
  ignored (and named in the reason), never used.
* "Undefined" is never "zero". A metric that is null in a report fails the gate with the reason;
  otherwise a group that could not be measured would look perfectly fair.
* "Waiting" is not "failed": a missing or still-running report, or too few approvals, means the
  decision is not ready yet, and a waiver cannot stand in for evidence that does not exist.
* Separation of duties is built into the approvals gate, not left to configuration.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal, TypeAlias

from audits.core.canonical import CanonicalError, canonical_bytes
from governance.policy import (
    ApprovalsGate, BiasMetricGate, DriftGate, EvidenceBindingGate, EvidenceFreshnessGate, GateSpec, Policy,
    ValidationMetricGate, compare, format_number,
)

__all__ = [
    "ApprovalFacts", "Decision", "Evidence", "EvidenceRef", "GateResult", "GateStatus", "ReportFacts",
    "VersionFacts", "WaiverFacts", "apply_waivers", "check_approvals", "check_bias_metric", "check_drift",
    "check_evidence_binding", "check_evidence_freshness", "check_validation_metric", "evaluate",
]

GateStatus: TypeAlias = Literal["passed", "failed", "waiting"]
PENDING = ("queued", "running")  # monitoring.models.ReportStatus, mirrored; tests hold them equal
SUCCEEDED = "succeeded"
FAILED = "failed"


# --- evidence ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class VersionFacts:
    """The model version asking for promotion: its immutable artifact digest and who registered it."""

    artifact_sha256: str
    created_by_id: int | None


@dataclass(frozen=True)
class ReportFacts:
    """One drift/bias/validation report of the version, as stored.

    ``artifact_sha256`` is the artifact the report was requested on (its version's digest);
    ``datasets_registered`` says every dataset it read is a registered dataset; ``inputs_intact``
    says its recorded inputs digest still matches this version's artifact, the datasets the report
    points at and its options (false for a report moved to another version or re-pointed at other
    data after it was requested); ``options`` are
    the normalised request options (for bias: ``sensitive_features``), known even before the
    report has run.
    """

    id: int
    kind: str
    status: str
    artifact_sha256: str
    datasets_registered: bool
    finished_at: datetime | None = None
    result: Mapping[str, Any] | None = None
    result_digest: str = ""
    inputs_intact: bool = True
    error_code: str = ""
    error_message: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ApprovalFacts:
    """One person's decision on the promotion, with the roles they held when they decided."""

    id: int
    user_id: int
    roles: frozenset[str]
    decided_at: datetime
    decision: Literal["approved", "rejected"]


@dataclass(frozen=True)
class WaiverFacts:
    """An exception granted for one gate (by its key) until ``expires_at``, with the reason why."""

    id: int
    gate: str
    expires_at: datetime
    justification: str
    granted_by_id: int


@dataclass(frozen=True)
class Evidence:
    """Everything a policy is judged on. ``now`` must be timezone-aware."""

    version: VersionFacts
    requester_id: int | None
    now: datetime
    reports: Sequence[ReportFacts] = ()
    approvals: Sequence[ApprovalFacts] = ()
    waivers: Sequence[WaiverFacts] = ()


# --- results -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EvidenceRef:
    """A pointer to what a gate relied on: a report (with its result digest), an approval or a waiver."""

    kind: Literal["report", "approval", "waiver"]
    id: int
    digest: str = ""

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "id": self.id}
        if self.digest:
            data["digest"] = self.digest
        return data


@dataclass(frozen=True)
class GateResult:
    """The verdict of one gate. ``gate`` is the spec's stable key, which waivers refer to."""

    gate: str
    type: str
    status: GateStatus
    reason: str
    evidence: tuple[EvidenceRef, ...] = ()
    waived: bool = False

    def to_data(self) -> dict[str, Any]:
        return {"gate": self.gate, "type": self.type, "status": self.status, "reason": self.reason,
                "evidence": [ref.to_data() for ref in self.evidence], "waived": self.waived}


@dataclass(frozen=True)
class Decision:
    """A policy's verdict on the evidence: failed if any gate failed, else waiting if any waits, else passed."""

    status: GateStatus
    results: tuple[GateResult, ...]
    policy_name: str
    policy_digest: str
    evaluated_at: datetime

    def to_data(self) -> dict[str, Any]:
        """JSON-ready (RFC 8785-encodable) form for the audit log and the API."""
        return {"status": self.status, "policy": {"name": self.policy_name, "digest": self.policy_digest},
                "evaluated_at": self.evaluated_at.isoformat(), "results": [r.to_data() for r in self.results]}


# --- helpers -------------------------------------------------------------------------------------

def _ref(report: ReportFacts) -> EvidenceRef:
    return EvidenceRef("report", report.id, report.result_digest)


def _ids(reports: Sequence[ReportFacts]) -> str:
    return ", ".join(str(r.id) for r in reports)


def _when(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _select(spec: GateSpec, evidence: Evidence, kind: str, label: str,
            matches: Callable[[ReportFacts], bool] = lambda r: True) -> ReportFacts | GateResult:
    """The newest succeeded report of ``kind`` on this artifact, or the waiting/failed result explaining why not.

    Reports on another artifact are never used; if they are all there is, the reason says so.
    """
    candidates = [r for r in evidence.reports if r.kind == kind and matches(r)]
    mine = [r for r in candidates if r.artifact_sha256 == evidence.version.artifact_sha256]
    foreign = [r for r in candidates if r.artifact_sha256 != evidence.version.artifact_sha256]
    succeeded = [r for r in mine if r.status == SUCCEEDED]
    if succeeded:
        floor = datetime.min.replace(tzinfo=evidence.now.tzinfo)
        return max(succeeded, key=lambda r: (r.finished_at or floor, r.id))
    pending = [r for r in mine if r.status in PENDING]
    failed = sorted((r for r in mine if r.status == FAILED), key=lambda r: r.id)
    note = (f" Report(s) {_ids(foreign)} were computed on another artifact and are not evidence for this version."
            if foreign else "")
    if pending:
        earlier = (f" The previous attempt, report {failed[-1].id}, failed: {failed[-1].error_message}"
                   if failed else "")
        return GateResult(spec.key, spec.type, "waiting",
                          f"Waiting for {label} report(s) {_ids(pending)} to finish.{earlier}{note}",
                          tuple(EvidenceRef("report", r.id) for r in pending))
    if failed:
        last = failed[-1]
        code = f" ({last.error_code})" if last.error_code else ""
        return GateResult(spec.key, spec.type, "failed",
                          f"The {label} report {last.id} failed{code}: {last.error_message or 'no message'}. "
                          f"Fix the cause and request a new {label} report.{note}",
                          (EvidenceRef("report", last.id),))
    return GateResult(spec.key, spec.type, "waiting",
                      f"No {label} report for this version yet; request one.{note}")


def _threshold_result(spec: ValidationMetricGate | BiasMetricGate, report: ReportFacts, value: Any,
                      where: str, undefined_hint: str) -> GateResult:
    """Compare a report's value with the gate's threshold; null or non-numeric fails, never counts as 0."""
    refs = (_ref(report),)
    wanted = f"{spec.op} {format_number(spec.threshold)}"
    if value is None:
        return GateResult(spec.key, spec.type, "failed",
                          f"{spec.metric} is undefined in {where}{undefined_hint}; the policy requires {wanted}, "
                          f"and an undefined metric is never treated as 0. Fix the evaluation data so the metric "
                          f"can be computed and request a new report, or ask for a waiver.", refs)
    if not _is_number(value):
        return GateResult(spec.key, spec.type, "failed",
                          f"{spec.metric} in {where} is not a number ({value!r}); request a new report.", refs)
    shown = format_number(value)
    if compare(float(value), spec.op, spec.threshold):
        return GateResult(spec.key, spec.type, "passed", f"{spec.metric} is {shown} in {where} ({wanted} required).",
                          refs)
    return GateResult(spec.key, spec.type, "failed",
                      f"{spec.metric} is {shown} in {where}; the policy requires {wanted}. Improve the model and "
                      f"register a new version, or ask for a waiver.", refs)


# --- report gates --------------------------------------------------------------------------------

def check_validation_metric(spec: ValidationMetricGate, evidence: Evidence) -> GateResult:
    """``metrics[metric] op threshold`` on the newest succeeded validation report of this artifact."""
    chosen = _select(spec, evidence, "validation", "validation")
    if isinstance(chosen, GateResult):
        return chosen
    result = chosen.result or {}
    metrics = result.get("metrics") or {}
    where = f"validation report {chosen.id}"
    if spec.metric not in metrics:
        task = result.get("task", "unknown")
        return GateResult(spec.key, spec.type, "failed",
                          f"{where} has no {spec.metric} (task: {task}); request a validation report that "
                          f"computes it.", (_ref(chosen),))
    why = (result.get("undefined") or {}).get(spec.metric)
    return _threshold_result(spec, chosen, metrics[spec.metric], where, f" ({why})" if why else "")


def _bias_features(report: ReportFacts) -> tuple[str, ...]:
    """The sensitive features a bias report was computed on: from the result when it has one, else the request."""
    source = (report.result or {}).get("sensitive_features") if report.status == SUCCEEDED else None
    if source is None:
        source = report.options.get("sensitive_features") or ()
    return tuple(source)


def check_bias_metric(spec: BiasMetricGate, evidence: Evidence) -> GateResult:
    """A fairness metric of the newest succeeded bias report computed on exactly ``sensitive_feature``.

    A report on several sensitive features measures intersectional groups, a different quantity,
    so it does not count for a gate on one of them.
    """
    chosen = _select(spec, evidence, "bias", f"bias (sensitive feature {spec.sensitive_feature!r})",
                     lambda r: _bias_features(r) == (spec.sensitive_feature,))
    if isinstance(chosen, GateResult):
        return chosen
    result = chosen.result or {}
    where = f"bias report {chosen.id}"
    if spec.metric not in result:
        return GateResult(spec.key, spec.type, "failed", f"{where} has no {spec.metric}; request a new bias report.",
                          (_ref(chosen),))
    undefined = result.get("undefined") or []
    hint = f" ({len(undefined)} group rate(s) undefined; see the report's 'undefined' list)" if undefined else ""
    return _threshold_result(spec, chosen, result[spec.metric], where, hint)


def _flag_features(p_values: list[float], p_val: float, correction: str) -> list[bool] | None:
    """Which features are drifted at ``p_val`` under the report's correction (as alibi-detect decides).

    Bonferroni: p < p_val / n. FDR: Benjamini-Hochberg, p < p_val * k / n for the largest k with
    p(k) < p_val * k / n. None for an unknown correction.
    """
    n = len(p_values)
    if correction == "bonferroni":
        threshold = p_val / n
    elif correction == "fdr":
        ranked = sorted(p_values)
        ks = [k for k in range(1, n + 1) if ranked[k - 1] < p_val * k / n]
        if not ks:
            return [False] * n
        threshold = p_val * max(ks) / n
    else:
        return None
    return [p < threshold for p in p_values]


def check_drift(spec: DriftGate, evidence: Evidence) -> GateResult:
    """Drift limits on the newest succeeded drift report of this artifact.

    A feature whose test is undefined (null p-value) fails the gate: an untested feature is not a
    stable one. With ``p_val`` set, features are re-judged from their p-values at the policy's
    level (with the report's correction), so the verdict does not depend on the level the report
    happened to be requested with.
    """
    chosen = _select(spec, evidence, "drift", "drift")
    if isinstance(chosen, GateResult):
        return chosen
    refs = (_ref(chosen),)
    result = chosen.result or {}
    where = f"drift report {chosen.id}"
    features = result.get("features")
    if not isinstance(features, list) or not features:
        return GateResult(spec.key, spec.type, "failed", f"{where} lists no tested features; request a new one.",
                          refs)
    untested = [str(f.get("name")) for f in features if not _is_number(f.get("p_value"))]
    if untested:
        return GateResult(spec.key, spec.type, "failed",
                          f"{where} could not test feature(s) {', '.join(repr(n) for n in untested)} (p-value "
                          f"undefined); an untested feature is not counted as stable. Impute or drop the missing "
                          f"values and request a new drift report, or ask for a waiver.", refs)
    correction = str(result.get("correction", "bonferroni"))
    if spec.p_val is not None:
        flags = _flag_features([float(f["p_value"]) for f in features], spec.p_val, correction)
        if flags is None:
            return GateResult(spec.key, spec.type, "failed",
                              f"{where} used an unknown correction {correction!r}; request a new drift report.", refs)
        drifted = [str(f.get("name")) for f, flag in zip(features, flags) if flag]
        share: Any = len(drifted) / len(features)
        is_drift: Any = bool(drifted)
        level = format_number(spec.p_val)
    else:
        drifted = [str(f.get("name")) for f in features if f.get("drifted") is True]
        share, is_drift = result.get("share_drifted"), result.get("drift")
        if not _is_number(share) or not isinstance(is_drift, bool):
            return GateResult(spec.key, spec.type, "failed",
                              f"{where} has no defined share_drifted/drift verdict; request a new drift report.",
                              refs)
        level = format_number(result["p_val"]) if _is_number(result.get("p_val")) else "?"
    summary = (f"{len(drifted)} of {len(features)} feature(s) drifted at p_val {level} ({correction})"
               + (f": {', '.join(drifted)}" if drifted else ""))
    problems = []
    if spec.require_no_drift and is_drift:
        problems.append("the policy requires no drift")
    if spec.max_share_drifted is not None and share > spec.max_share_drifted:
        problems.append(f"the share {format_number(share)} exceeds the maximum {format_number(spec.max_share_drifted)}")
    if problems:
        return GateResult(spec.key, spec.type, "failed",
                          f"In {where}, {summary}; {' and '.join(problems)}. Retrain on current data or ask for "
                          f"a waiver.", refs)
    return GateResult(spec.key, spec.type, "passed", f"In {where}, {summary} (share {format_number(share)}).", refs)


# --- evidence gates ------------------------------------------------------------------------------

def check_evidence_freshness(spec: EvidenceFreshnessGate, evidence: Evidence,
                             used: Sequence[ReportFacts]) -> GateResult:
    """Every report used by the other gates finished within ``max_age_days`` of ``now``."""
    if not used:
        return GateResult(spec.key, spec.type, "waiting",
                          "No report is in use yet; freshness is judged once the other gates have reports.")
    limit = timedelta(days=spec.max_age_days)
    refs = tuple(_ref(r) for r in used)
    stale = []
    for report in used:
        if report.finished_at is None:
            stale.append(f"report {report.id} has no finish time")
        elif evidence.now - report.finished_at > limit:
            age = (evidence.now - report.finished_at).total_seconds() / 86400
            stale.append(f"report {report.id} finished {age:.1f} days ago ({_when(report.finished_at)})")
    if stale:
        return GateResult(spec.key, spec.type, "failed",
                          f"Stale evidence: {'; '.join(stale)}; the policy accepts reports at most "
                          f"{spec.max_age_days} days old. Request new reports.", refs)
    oldest = min(used, key=lambda r: r.finished_at)  # type: ignore[arg-type, return-value]
    age = (evidence.now - oldest.finished_at).total_seconds() / 86400  # type: ignore[operator]
    return GateResult(spec.key, spec.type, "passed",
                      f"All {len(used)} report(s) used finished within {spec.max_age_days} days "
                      f"(oldest: report {oldest.id}, {age:.1f} days).", refs)


def _digest_matches(report: ReportFacts) -> bool:
    """The stored result still hashes to the digest recorded when the report finished."""
    if report.result is None or not report.result_digest:
        return False
    try:
        return hashlib.sha256(canonical_bytes(dict(report.result))).hexdigest() == report.result_digest
    except CanonicalError:
        return False


def check_evidence_binding(spec: EvidenceBindingGate, evidence: Evidence, used: Sequence[ReportFacts]) -> GateResult:
    """Every report used was computed on this artifact and on registered datasets, and its result is intact."""
    if not used:
        return GateResult(spec.key, spec.type, "waiting",
                          "No report is in use yet; binding is judged once the other gates have reports.")
    artifact = evidence.version.artifact_sha256
    problems = []
    for report in used:
        if report.artifact_sha256 != artifact:
            problems.append(f"report {report.id} was computed on artifact {report.artifact_sha256[:12]}..., "
                            f"not this version's {artifact[:12]}...")
        if not report.datasets_registered:
            problems.append(f"report {report.id} read a dataset that is not registered")
        if not report.inputs_intact:
            problems.append(f"report {report.id}'s recorded inputs digest does not match this version's artifact, "
                            "the datasets it points at and its options")
        if not _digest_matches(report):
            problems.append(f"report {report.id}'s result does not match its recorded digest")
    refs = tuple(_ref(r) for r in used)
    if problems:
        return GateResult(spec.key, spec.type, "failed",
                          f"Unbound evidence: {'; '.join(problems)}. Request new reports on registered datasets "
                          f"for this version.", refs)
    return GateResult(spec.key, spec.type, "passed",
                      f"All {len(used)} report(s) used were computed on artifact {artifact[:12]}... and on "
                      f"registered datasets, and their results match their digests.", refs)


def check_approvals(spec: ApprovalsGate, evidence: Evidence) -> GateResult:
    """``count`` distinct eligible people approved; any eligible rejection fails.

    Eligible: holds one of the gate's roles at decision time, and is neither the requester nor
    the version's creator (separation of duties). A person's latest decision is the one that
    counts, so two approvals by one person count once and a later approval replaces a rejection.
    """
    ignored: list[str] = []
    latest: dict[int, ApprovalFacts] = {}
    ordered = sorted(enumerate(evidence.approvals), key=lambda pair: (pair[1].decided_at, pair[0]))
    for _, approval in ordered:
        if approval.decision not in ("approved", "rejected"):
            ignored.append(f"approval {approval.id} has an unknown decision {approval.decision!r}")
        elif approval.user_id == evidence.requester_id:
            ignored.append(f"user {approval.user_id} requested the promotion")
        elif approval.user_id == evidence.version.created_by_id:
            ignored.append(f"user {approval.user_id} registered the version")
        elif not approval.roles & set(spec.roles):
            ignored.append(f"user {approval.user_id} held none of the roles {', '.join(spec.roles)}")
        else:
            latest[approval.user_id] = approval
    note = f" Not counted: {'; '.join(dict.fromkeys(ignored))}." if ignored else ""
    rejections = sorted((a for a in latest.values() if a.decision == "rejected"), key=lambda a: a.user_id)
    approvers = sorted((a for a in latest.values() if a.decision == "approved"), key=lambda a: a.user_id)
    if rejections:
        who = ", ".join(f"user {a.user_id} at {_when(a.decided_at)}" for a in rejections)
        return GateResult(spec.key, spec.type, "failed",
                          f"Rejected by {who}. Address the objection; a later approval by the same person "
                          f"replaces the rejection.{note}", tuple(EvidenceRef("approval", a.id) for a in rejections))
    refs = tuple(EvidenceRef("approval", a.id) for a in approvers)
    names = ", ".join(str(a.user_id) for a in approvers)
    if len(approvers) >= spec.count:
        return GateResult(spec.key, spec.type, "passed",
                          f"Approved by {len(approvers)} eligible people (users {names}); {spec.count} required.{note}",
                          refs)
    return GateResult(spec.key, spec.type, "waiting",
                      f"{len(approvers)} of {spec.count} approvals from {' or '.join(spec.roles)}"
                      + (f" (users {names})" if approvers else "")
                      + f"; waiting for {spec.count - len(approvers)} more from people other than the requester "
                        f"and the version's creator.{note}", refs)


# --- waivers and evaluation ----------------------------------------------------------------------

def apply_waivers(result: GateResult, evidence: Evidence) -> GateResult:
    """Turn a failed gate into a waived pass when an unexpired, independently granted waiver names it.

    Waivers never apply to approvals (a waiver is itself a human exception; it cannot replace the
    people the policy requires), nor to waiting gates (a waiver cannot stand in for evidence that
    does not exist). A waiver granted by the requester or the version's creator is ignored.
    """
    waivers = [w for w in evidence.waivers if w.gate == result.gate]
    if not waivers or result.status != "failed":
        return result
    if result.type == "approvals":
        return replace(result, reason=f"{result.reason} Waiver(s) {', '.join(str(w.id) for w in waivers)} ignored: "
                                      f"waivers never apply to approvals gates.")
    conflicted = {evidence.requester_id, evidence.version.created_by_id} - {None}
    valid = [w for w in waivers if w.expires_at > evidence.now and w.granted_by_id not in conflicted]
    if valid:
        waiver = max(valid, key=lambda w: (w.expires_at, w.id))
        return replace(result, status="passed", waived=True,
                       reason=f"Waived by user {waiver.granted_by_id} until {_when(waiver.expires_at)}: "
                              f"{waiver.justification} (the gate itself failed: {result.reason})",
                       evidence=result.evidence + (EvidenceRef("waiver", waiver.id),))
    notes = []
    for waiver in sorted(waivers, key=lambda w: w.id):
        if waiver.granted_by_id in conflicted:
            notes.append(f"waiver {waiver.id} was granted by the requester or the version's creator and is ignored")
        else:
            notes.append(f"waiver {waiver.id} expired at {_when(waiver.expires_at)} and is ignored")
    return replace(result, reason=f"{result.reason} ({'; '.join(notes)}.)")


_REPORT_CHECKS: dict[str, Callable[[Any, Evidence], GateResult]] = {
    "validation_metric": check_validation_metric,
    "bias_metric": check_bias_metric,
    "drift": check_drift,
    "approvals": check_approvals,
}


def evaluate(policy: Policy, evidence: Evidence) -> Decision:
    """Run every gate of ``policy`` on ``evidence``; results in policy order.

    Report and approvals gates run first; freshness and binding then judge the succeeded reports
    those gates used. Waivers are applied last. The decision is failed if any gate failed, else
    waiting if any is waiting, else passed.
    """
    if evidence.now.tzinfo is None:
        raise ValueError("evidence.now must be timezone-aware")
    results: dict[int, GateResult] = {}
    for index, gate in enumerate(policy.gates):
        if gate.type in _REPORT_CHECKS:
            results[index] = _REPORT_CHECKS[gate.type](gate, evidence)
    by_id = {r.id: r for r in evidence.reports}
    used_ids = dict.fromkeys(ref.id for index in sorted(results) for ref in results[index].evidence
                             if ref.kind == "report" and by_id.get(ref.id) is not None
                             and by_id[ref.id].status == SUCCEEDED)
    used = [by_id[i] for i in used_ids]
    for index, gate in enumerate(policy.gates):
        if isinstance(gate, EvidenceFreshnessGate):
            results[index] = check_evidence_freshness(gate, evidence, used)
        elif isinstance(gate, EvidenceBindingGate):
            results[index] = check_evidence_binding(gate, evidence, used)
    ordered = tuple(apply_waivers(results[i], evidence) for i in range(len(policy.gates)))
    statuses = {r.status for r in ordered}
    status: GateStatus = "failed" if "failed" in statuses else "waiting" if "waiting" in statuses else "passed"
    return Decision(status, ordered, policy.name, policy.digest(), evidence.now)
