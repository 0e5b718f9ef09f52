"""Evidence checks: pure functions from collected facts to satisfied / exception / not applicable.

Each check looks at one kind of evidence and says, with reasons a person can follow, whether it
answers its controls. A control's status is the worst of its checks' (exception over satisfied
over not applicable). Thresholds are constants here so the report and docs/audit-packs.md can
quote them.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from audits.core.canonical import CanonicalError, canonical_bytes
from audits.packs.facts import Facts

SATISFIED = "satisfied"
EXCEPTION = "exception"
NOT_APPLICABLE = "not_applicable"
_RANK = {NOT_APPLICABLE: 0, SATISFIED: 1, EXCEPTION: 2}

FAILED_LOGIN_THRESHOLD = 5  # failed sign-ins for one username in the period that need a look
REJECTED_TOKEN_THRESHOLD = 10  # rejected bearer tokens in the period (guessing?)
STALE_TOKEN_DAYS = 90  # an active token unused this long should be revoked
DATASET_REVIEW_DAYS = 365  # personal data older than this is due for a storage review
HSTS_MIN_SECONDS = 31_536_000  # one year
SENSITIVE = {"personal", "special_category", "phi"}


@dataclass(frozen=True)
class CheckResult:
    id: str
    status: str
    summary: str
    findings: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()


@dataclass(frozen=True)
class ControlResult:
    id: str
    title: str
    requirement: str
    status: str
    reason: str
    checks: tuple[CheckResult, ...] = field(default_factory=tuple)

    @property
    def evidence(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for c in self.checks:
            for e in c.evidence:
                seen.setdefault(e)
        return tuple(seen)


def _result(check_id: str, status: str, summary: str, findings: list[str] | None = None) -> CheckResult:
    return CheckResult(check_id, status, summary, tuple(findings or ()), EVIDENCE[check_id])


def _deployed(facts: Facts):  # type: ignore[no-untyped-def]
    return [(m, v) for m in facts.models for v in m.deployed]


def _no_models(check_id: str, facts: Facts) -> CheckResult:
    return _result(check_id, NOT_APPLICABLE, "No model in scope for this framework.")


# --- model evidence ------------------------------------------------------------------------------

def inventory_complete(facts: Facts) -> CheckResult:
    """Every model in scope is inventoried, and its training data carries no undeclared categories."""
    cid = "inventory_complete"
    if not facts.models:
        return _no_models(cid, facts)
    findings = []
    for m, v in _deployed(facts):
        for ds in v.training_datasets:
            undeclared = sorted(set(ds.data_categories) - set(m.data_categories))
            if undeclared:
                findings.append(f"{m.name} v{v.version} is trained on {ds.name} v{ds.version}, which holds "
                                f"{', '.join(undeclared)} data the model does not declare")
    if findings:
        return _result(cid, EXCEPTION, "Models use data categories they do not declare.", findings)
    return _result(cid, SATISFIED, f"{len(facts.models)} model(s) inventoried with team, risk tier and data "
                                   "categories; training data matches the declared categories.")


def model_risk_assessment(facts: Facts) -> CheckResult:
    """Every deployed version has a succeeded validation report."""
    cid = "model_risk_assessment"
    deployed = _deployed(facts)
    if not deployed:
        return _result(cid, NOT_APPLICABLE, "No version of a model in scope is in staging or production.")
    missing = [f"{m.name} v{v.version} ({v.stage}, {m.risk_tier} risk) has no succeeded validation report"
               for m, v in deployed if v.latest("validation") is None]
    if missing:
        return _result(cid, EXCEPTION, "Deployed versions without validation.", missing)
    return _result(cid, SATISFIED, f"All {len(deployed)} deployed version(s) have a succeeded validation report.")


def fairness_assessment(facts: Facts) -> CheckResult:
    """Deployed versions of models about people at high or critical risk (or on special-category data) have a bias report."""
    cid = "fairness_assessment"
    relevant = [(m, v) for m, v in _deployed(facts)
                if "special_category" in m.data_categories
                or (m.risk_tier in ("high", "critical") and set(m.data_categories) & SENSITIVE)]
    if not relevant:
        return _result(cid, NOT_APPLICABLE, "No deployed model in scope is high or critical risk on personal "
                                            "data, or uses special-category data.")
    missing = [f"{m.name} v{v.version} ({v.stage}, {m.risk_tier} risk, {', '.join(m.data_categories)}) has no "
               "succeeded bias report" for m, v in relevant if v.latest("bias") is None]
    if missing:
        return _result(cid, EXCEPTION, "Deployed versions without a bias assessment.", missing)
    return _result(cid, SATISFIED, f"All {len(relevant)} deployed version(s) that need one have a bias report.")


def drift_monitoring(facts: Facts) -> CheckResult:
    """Production versions had a drift report finish within the period."""
    cid = "drift_monitoring"
    prod = [(m, v) for m, v in _deployed(facts) if v.stage == "production"]
    if not prod:
        return _result(cid, NOT_APPLICABLE, "No model in scope is in production.")
    findings = []
    drifted = []
    for m, v in prod:
        recent = [r for r in v.reports if r.kind == "drift" and r.status == "succeeded" and r.finished_at
                  and facts.period_start <= r.finished_at < facts.period_end]
        if not recent:
            findings.append(f"{m.name} v{v.version} (production) had no drift report in the period")
        elif (recent[-1].result or {}).get("drift"):
            drifted.append(f"{m.name} v{v.version}")
    if findings:
        return _result(cid, EXCEPTION, "Production versions not monitored for drift in the period.", findings)
    note = f" Drift was detected for {', '.join(drifted)} (see the report summaries)." if drifted else ""
    return _result(cid, SATISFIED, f"All {len(prod)} production version(s) were checked for drift in the period."
                   + note)


def purpose_documented(facts: Facts) -> CheckResult:
    cid = "purpose_documented"
    if not facts.models:
        return _no_models(cid, facts)
    missing = [f"{m.name} has no intended use recorded" for m in facts.models if not m.intended_use.strip()]
    if missing:
        return _result(cid, EXCEPTION, "Models without a stated purpose.", missing)
    return _result(cid, SATISFIED, f"All {len(facts.models)} model(s) state their intended use.")


def lineage_recorded(facts: Facts) -> CheckResult:
    cid = "lineage_recorded"
    deployed = _deployed(facts)
    if not deployed:
        return _result(cid, NOT_APPLICABLE, "No version of a model in scope is in staging or production.")
    missing = [f"{m.name} v{v.version} ({v.stage}) has no registered training dataset"
               for m, v in deployed if not v.training_datasets]
    if missing:
        return _result(cid, EXCEPTION, "Deployed versions whose training data is not recorded.", missing)
    return _result(cid, SATISFIED, f"All {len(deployed)} deployed version(s) name their training datasets "
                                   "(by SHA-256).")


def dataset_review(facts: Facts) -> CheckResult:
    cid = "dataset_review"
    old: dict[int, str] = {}
    seen = 0
    for m, v in _deployed(facts):
        for ds in v.training_datasets:
            if not set(ds.data_categories) & SENSITIVE:
                continue
            seen += 1
            age = (facts.period_end - ds.created_at).days
            if age > DATASET_REVIEW_DAYS:
                old[ds.id] = (f"{ds.name} v{ds.version} ({', '.join(ds.data_categories)}) was registered {age} days "
                              f"before the period's end: review whether it must still be kept")
    if not seen:
        return _result(cid, NOT_APPLICABLE, "No deployed version in scope is trained on personal data.")
    if old:
        return _result(cid, EXCEPTION, f"Personal datasets older than {DATASET_REVIEW_DAYS} days.", list(old.values()))
    return _result(cid, SATISFIED, f"Every personal dataset used by a deployed version is younger than "
                                   f"{DATASET_REVIEW_DAYS} days.")


def evidence_integrity(facts: Facts) -> CheckResult:
    """Every stored report still hashes to its recorded digest, and decisions name those digests."""
    cid = "evidence_integrity"
    if not facts.reports and not facts.promotions:
        return _result(cid, NOT_APPLICABLE, "No report or promotion for the models in scope.")
    findings = []
    digests = {}
    for r in facts.reports:
        if r.status != "succeeded":
            continue
        digests[r.id] = r.result_digest
        try:
            actual = hashlib.sha256(canonical_bytes(r.result)).hexdigest()
        except CanonicalError:
            actual = "not canonical JSON"
        if actual != r.result_digest:
            findings.append(f"report {r.id} ({r.kind}, {r.model} v{r.version}) hashes to {actual[:16]}..., "
                            f"its recorded digest is {r.result_digest[:16]}...")
    for p in facts.promotions:
        for e in p.evidence:
            known = digests.get(e.get("id"))
            if known is not None and e.get("digest") and e["digest"] != known:
                findings.append(f"promotion #{p.id} rests on report {e['id']} with digest {e['digest'][:16]}..., "
                                f"which now has {known[:16]}...")
    if findings:
        return _result(cid, EXCEPTION, "Evidence changed after it was recorded.", findings)
    return _result(cid, SATISFIED, f"{len(digests)} report result(s) match their SHA-256 digests; decisions cite "
                                   "the same digests.")


# --- changes and decisions -----------------------------------------------------------------------

def gated_changes(facts: Facts) -> CheckResult:
    """Every stage move in the period came from a gated promotion; waived gates are exceptions."""
    cid = "gated_changes"
    moves = [m for m in facts.stage_moves if m.stage in ("staging", "production")]
    if not moves and not facts.promotions:
        return _result(cid, NOT_APPLICABLE, "No version of a model in scope changed stage in the period.")
    findings = [f"{m.model} v{m.version} entered {m.stage} on {m.started_at:%Y-%m-%d %H:%M} UTC without a "
                f"promotion (by {m.by}: {m.reason or 'no reason given'})" for m in moves if m.promotion is None]
    by_id = {w.id: w for w in facts.waivers}
    for p in facts.promotions:
        if p.state != "promoted":
            continue
        for g in p.gates:
            if g.get("waived"):
                w = next((by_id[i] for i in by_id if by_id[i].gate == g.get("gate") and p.id in by_id[i].used_by),
                         None)
                who = f" by {w.granted_by} until {w.expires_at:%Y-%m-%d}: {w.justification}" if w else ""
                findings.append(f"promotion #{p.id} ({p.model} v{p.version} to {p.target_stage}) passed with gate "
                                f"{g.get('gate')} waived{who}")
    if findings:
        return _result(cid, EXCEPTION, "Stage changes without gates, or with waived gates.", findings)
    promoted = sum(1 for p in facts.promotions if p.state == "promoted")
    return _result(cid, SATISFIED, f"{len(moves)} stage change(s) in the period, all through promotions whose "
                                   f"gates passed ({promoted} promoted, "
                                   f"{sum(1 for p in facts.promotions if p.state == 'blocked')} blocked by gates).")


def human_approval(facts: Facts) -> CheckResult:
    cid = "human_approval"
    promoted = [p for p in facts.promotions if p.state == "promoted"]
    if not promoted:
        return _result(cid, NOT_APPLICABLE, "No promotion of a model in scope completed in the period.")
    findings = [f"promotion #{p.id} ({p.model} v{p.version} to {p.target_stage}) completed without a person's "
                "approval" for p in promoted if not any(a.get("decision") == "approved" for a in p.approvals)]
    if findings:
        return _result(cid, EXCEPTION, "Promotions completed without human approval.", findings)
    return _result(cid, SATISFIED, f"All {len(promoted)} completed promotion(s) were approved by a person other "
                                   "than the requester and the version's author.")


def decision_receipts(facts: Facts) -> CheckResult:
    cid = "decision_receipts"
    final = [p for p in facts.promotions if p.decided_at is not None]
    if not final:
        return _result(cid, NOT_APPLICABLE, "No promotion of a model in scope was decided in the period.")
    findings = [f"promotion #{p.id}: {'no receipt' if not p.receipt else 'receipt does not verify: ' + p.receipt_detail}"
                for p in final if not p.receipt_ok]
    if findings:
        return _result(cid, EXCEPTION, "Decisions without a valid signed receipt.", findings)
    return _result(cid, SATISFIED, f"All {len(final)} decision(s) carry a receipt signed by the log's key.")


def policy_changes(facts: Facts) -> CheckResult:
    cid = "policy_changes"
    if not facts.policies:
        return _result(cid, NOT_APPLICABLE, "No promotion policy was published in the period.")
    return _result(cid, SATISFIED, f"{len(facts.policies)} policy version(s) published in the period, each recorded "
                                   "with its digest and author: " + ", ".join(
                                       f"{p.name} v{p.version} by {p.published_by}" for p in facts.policies[:10]))


def recovery_rollbacks(facts: Facts) -> CheckResult:
    cid = "recovery_rollbacks"
    rollbacks = [p for p in facts.promotions if p.kind == "rollback"]
    if not rollbacks:
        return _result(cid, NOT_APPLICABLE, "No rollback of a model in scope in the period.")
    open_or_failed = [f"rollback #{p.id} of {p.model} to v{p.version} is {p.state}" for p in rollbacks
                      if p.state not in ("promoted", "cancelled")]
    if open_or_failed:
        return _result(cid, EXCEPTION, "Rollbacks that did not complete.", open_or_failed)
    return _result(cid, SATISFIED, f"{len(rollbacks)} rollback(s) completed and recorded.")


# --- the log, people and security --------------------------------------------------------------

def audit_log_integrity(facts: Facts) -> CheckResult:
    cid = "audit_log_integrity"
    v = facts.log.verification
    findings = []
    if not v.get("ok"):
        findings.append(f"verification of the whole log failed: {v.get('problem')}: {v.get('detail')}")
    if not facts.log.proofs_ok:
        findings.append("inclusion proofs of the period's events do not reach the signed checkpoint's root")
    if findings:
        return _result(cid, EXCEPTION, "The audit log does not verify.", findings)
    return _result(cid, SATISFIED, f"The whole log ({v.get('size')} events) verified; the period's "
                                   f"{facts.log.events_in_period} events are proven against the signed checkpoint "
                                   f"of size {facts.log.checkpoint_size}.")


def login_monitoring(facts: Facts) -> CheckResult:
    cid = "login_monitoring"
    s = facts.security
    flagged = sorted((n, u) for u, n in s.failed_logins.items() if n >= FAILED_LOGIN_THRESHOLD)
    findings = [f"{n} failed sign-ins for '{u}' in the period (threshold {FAILED_LOGIN_THRESHOLD}): investigate"
                for n, u in reversed(flagged)]
    if findings:
        return _result(cid, EXCEPTION, "Repeated failed sign-ins.", findings)
    return _result(cid, SATISFIED, f"Sign-ins are recorded: {s.successful_logins} succeeded, "
                                   f"{sum(s.failed_logins.values())} failed, none at or above "
                                   f"{FAILED_LOGIN_THRESHOLD} for one username.")


def security_events_review(facts: Facts) -> CheckResult:
    cid = "security_events_review"
    s = facts.security
    findings = []
    if s.rejected_tokens >= REJECTED_TOKEN_THRESHOLD:
        findings.append(f"{s.rejected_tokens} rejected API tokens in the period (threshold "
                        f"{REJECTED_TOKEN_THRESHOLD}): someone may be guessing tokens")
    flagged = [u for u, n in s.failed_logins.items() if n >= FAILED_LOGIN_THRESHOLD]
    if flagged:
        findings.append(f"repeated failed sign-ins for {', '.join(sorted(flagged))}")
    if findings:
        return _result(cid, EXCEPTION, "Security events that need a look.", findings)
    return _result(cid, SATISFIED, f"{s.total} security event(s) reviewed: {sum(s.failed_logins.values())} failed "
                                   f"sign-ins, {s.rejected_tokens} rejected tokens, {s.denials} refused actions.")


def access_review(facts: Facts) -> CheckResult:
    cid = "access_review"
    now = facts.generated_at
    stale = timedelta(days=STALE_TOKEN_DAYS)
    findings = []
    for t in facts.tokens:
        if not t.active(now):
            continue
        if not t.user_active:
            findings.append(f"token {t.prefix}... ('{t.name}') of deactivated user {t.user} is still active")
        elif (t.last_used_at or t.created_at) < now - stale:
            last = f"last used {t.last_used_at:%Y-%m-%d}" if t.last_used_at else "never used"
            findings.append(f"token {t.prefix}... ('{t.name}') of {t.user} is active but {last} "
                            f"(over {STALE_TOKEN_DAYS} days): revoke it")
    no_role = [u.username for u in facts.users if u.active and not u.roles]
    findings += [f"active user {u} holds no role" for u in no_role]
    if findings:
        return _result(cid, EXCEPTION, "Access that should be removed.", findings)
    active = sum(1 for t in facts.tokens if t.active(now))
    return _result(cid, SATISFIED, f"{sum(1 for u in facts.users if u.active)} active people and service accounts, "
                                   f"each with a role; {active} active token(s), all used within "
                                   f"{STALE_TOKEN_DAYS} days.")


def access_changes_authorised(facts: Facts) -> CheckResult:
    cid = "access_changes_authorised"
    changes = facts.access_changes
    if not changes:
        return _result(cid, NOT_APPLICABLE, "No user, role, team or token change in the period.")
    findings = []
    for e in changes:
        if e.action.startswith("governance.token."):
            continue  # people create and revoke their own tokens
        if e.actor_type != "system" and "administrator" not in e.actor_roles:
            findings.append(f"#{e.seq} {e.action} on {e.target} by {e.actor}, who is not an administrator")
    if findings:
        return _result(cid, EXCEPTION, "Access changes by people not entitled to make them.", findings)
    return _result(cid, SATISFIED, f"{len(changes)} access change(s) in the period, each made by an administrator "
                                   "(or the system) and recorded in the log.")


def authentication(facts: Facts) -> CheckResult:
    cid = "authentication"
    now = facts.generated_at
    findings = [f"token {t.prefix}... of deactivated user {t.user} is still active" for t in facts.tokens
                if t.active(now) and not t.user_active]
    if facts.security.rejected_tokens >= REJECTED_TOKEN_THRESHOLD:
        findings.append(f"{facts.security.rejected_tokens} rejected tokens in the period")
    if findings:
        return _result(cid, EXCEPTION, "Authentication needs attention.", findings)
    return _result(cid, SATISFIED, "Every API call is authenticated by a bearer token (stored only as its SHA-256, "
                                   "expiring within a year) or a portal session; "
                                   f"{facts.security.rejected_tokens} rejected token(s) in the period.")


def transmission_security(facts: Facts) -> CheckResult:
    cid = "transmission_security"
    d = facts.deployment
    findings = []
    if not d.production:
        findings.append("the service runs in development mode: HTTPS is not enforced")
    else:
        if not d.ssl_redirect:
            findings.append("plain HTTP is not redirected to HTTPS (SECURE_SSL_REDIRECT is off)")
        if d.hsts_seconds < HSTS_MIN_SECONDS:
            findings.append(f"HSTS lasts {d.hsts_seconds} s, less than a year")
        if not d.secure_cookies:
            findings.append("cookies are not marked secure")
    if findings:
        return _result(cid, EXCEPTION, "Transport is not protected everywhere.", findings)
    return _result(cid, SATISFIED, f"HTTPS enforced (redirect, HSTS {d.hsts_seconds} s, secure cookies).")


def retention_schedule(facts: Facts) -> CheckResult:
    cid = "retention_schedule"
    need = max(facts.minimum_retention_days, 1)
    mine = [s for s in facts.schedules if s.framework == facts.framework and s.enabled]
    good = [s for s in mine if s.retention_days >= need]
    if not good:
        have = ", ".join(f"{s.name} keeps {s.retention_days} days" for s in mine) or "no enabled schedule"
        return _result(cid, EXCEPTION, "Packs are not exported on a schedule that keeps them long enough.",
                       [f"needs an enabled {facts.framework} export schedule keeping packs at least {need} days; "
                        f"found: {have}"])
    return _result(cid, SATISFIED, "Packs are exported on a schedule and kept at least "
                                   f"{min(s.retention_days for s in good)} days: "
                                   + ", ".join(f"{s.name} to {s.destination}" for s in good))


def incident_alerts(facts: Facts) -> CheckResult:
    cid = "incident_alerts"
    relevant = [a for a in facts.alerts if a.created_at < facts.period_end]
    still_open = [f"alert #{a.id} '{a.title}' ({a.kind}) raised {a.created_at:%Y-%m-%d} is still open"
                  for a in relevant if a.status == "open"]
    if still_open:
        return _result(cid, EXCEPTION, "Alerts not yet resolved.", still_open)
    resolved = sum(1 for a in relevant if a.status == "resolved")
    return _result(cid, SATISFIED, f"No open alert; {resolved} alert(s) raised before the period's end were resolved.")


CheckFn = Callable[[Facts], CheckResult]
CHECKS: dict[str, CheckFn] = {
    "inventory_complete": inventory_complete,
    "model_risk_assessment": model_risk_assessment,
    "fairness_assessment": fairness_assessment,
    "drift_monitoring": drift_monitoring,
    "purpose_documented": purpose_documented,
    "lineage_recorded": lineage_recorded,
    "dataset_review": dataset_review,
    "evidence_integrity": evidence_integrity,
    "gated_changes": gated_changes,
    "human_approval": human_approval,
    "decision_receipts": decision_receipts,
    "policy_changes": policy_changes,
    "recovery_rollbacks": recovery_rollbacks,
    "audit_log_integrity": audit_log_integrity,
    "login_monitoring": login_monitoring,
    "security_events_review": security_events_review,
    "access_review": access_review,
    "access_changes_authorised": access_changes_authorised,
    "authentication": authentication,
    "transmission_security": transmission_security,
    "retention_schedule": retention_schedule,
    "incident_alerts": incident_alerts,
}

# The pack files that hold each check's evidence (relative to the pack's root).
EVIDENCE: dict[str, tuple[str, ...]] = {
    "inventory_complete": ("evidence/models.csv", "evidence/models.json"),
    "model_risk_assessment": ("evidence/models.json", "evidence/reports.csv", "evidence/reports.json"),
    "fairness_assessment": ("evidence/reports.csv", "evidence/reports.json"),
    "drift_monitoring": ("evidence/reports.csv", "evidence/reports.json"),
    "purpose_documented": ("evidence/models.csv", "evidence/models.json"),
    "lineage_recorded": ("evidence/models.json",),
    "dataset_review": ("evidence/models.json",),
    "evidence_integrity": ("evidence/reports.json", "evidence/decisions.json"),
    "gated_changes": ("evidence/decisions.csv", "evidence/decisions.json", "evidence/waivers.csv"),
    "human_approval": ("evidence/decisions.json",),
    "decision_receipts": ("evidence/decisions.json",),
    "policy_changes": ("evidence/events.csv", "evidence/events.jsonl"),
    "recovery_rollbacks": ("evidence/decisions.csv", "evidence/decisions.json"),
    "audit_log_integrity": ("evidence/verification.json", "evidence/events.jsonl", "checkpoint"),
    "login_monitoring": ("evidence/security_events.csv",),
    "security_events_review": ("evidence/security_events.csv", "evidence/events.jsonl"),
    "access_review": ("evidence/access_review.json", "evidence/access_users.csv", "evidence/access_tokens.csv"),
    "access_changes_authorised": ("evidence/access_changes.csv", "evidence/events.jsonl"),
    "authentication": ("evidence/access_tokens.csv", "evidence/security_events.csv"),
    "transmission_security": ("evidence/deployment.json",),
    "retention_schedule": ("evidence/deployment.json",),
    "incident_alerts": ("evidence/alerts.csv",),
}
assert set(EVIDENCE) == set(CHECKS)


def evaluate_controls(facts: Facts) -> list[ControlResult]:
    """Run every check the framework's catalogue names and fold them into control results."""
    from audits.packs.catalogue import catalogue

    cat = catalogue(facts.framework)
    cache: dict[str, CheckResult] = {}
    out = []
    for control in cat.controls:
        results = tuple(cache.setdefault(name, CHECKS[name](facts)) for name in control.checks)
        status = max((r.status for r in results), key=_RANK.__getitem__)
        if status == EXCEPTION:
            reason = "; ".join(f for r in results if r.status == EXCEPTION for f in r.findings)
        elif status == SATISFIED:
            reason = " ".join(r.summary for r in results if r.status == SATISFIED)
        else:
            reason = " ".join(r.summary for r in results)
        out.append(ControlResult(control.id, control.title, control.requirement, status, reason, results))
    return out
