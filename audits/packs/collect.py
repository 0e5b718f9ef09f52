"""Reads for a pack: the models in scope and every fact the checks and the report need.

Runs as the pack generator (it sees everything; who may ask for a pack is decided before). The
audit events of the period are not loaded here: ``build.py`` streams them once, writing the
evidence files and gathering the few figures the report shows (see ``EventDigest``).
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Q

from audits.core.canonical import CanonicalError, canonical_bytes
from audits.core.note import NoteError, VerifierKey, open_note
from audits.packs.catalogue import catalogue
from audits.packs.facts import (AlertFact, DatasetFact, DeploymentFacts, EventRow, Facts, LogFacts, ModelFact,
                                PolicyFact, PromotionFact, ReportFact, ScheduleFact, SecurityFacts, StageMoveFact,
                                TokenFact, UserFact, VersionFact, WaiverFact)
from governance.errors import ValidationFailed

ACCESS_ACTIONS = ("governance.user.", "governance.role.", "governance.team.", "governance.token.")
SECURITY_PREFIX = "security."
PDF_SECURITY_ROWS = 500


def resolve_scope(framework: str, names: list[str]) -> list[Any]:
    """The models a pack covers: those named (each must fall under the framework), or all it governs."""
    from registry.models import RegisteredModel

    cat = catalogue(framework)
    if names:
        found = {m.name: m for m in RegisteredModel.objects.filter(name__in=names).select_related("team")}
        unknown = sorted(set(names) - set(found))
        if unknown:
            raise ValidationFailed(f"No model named {', '.join(map(repr, unknown))}.", code="unknown_model",
                                   details={"models": unknown})
        outside = sorted(n for n, m in found.items() if not cat.applies_to(m.data_categories))
        if outside:
            raise ValidationFailed(
                f"{cat.scope_rule()}; {', '.join(outside)} do(es) not: "
                + "; ".join(f"{n} has {found[n].data_categories or 'no data categories'}" for n in outside) + ".",
                code="model_out_of_scope", details={"models": outside})
        return sorted(found.values(), key=lambda m: m.name)
    return [m for m in RegisteredModel.objects.select_related("team").order_by("name")
            if cat.applies_to(m.data_categories)]


def actor_label(actor: dict[str, Any] | None) -> str:
    actor = actor or {}
    if actor.get("type") == "user":
        return str(actor.get("username"))
    if actor.get("type") == "system":
        return f"system:{actor.get('name')}"
    return str(actor.get("type") or "unknown")


def _detail(action: str, payload: dict[str, Any]) -> str:
    """A short, readable summary of an event's payload for tables (the leaf has it all)."""
    parts = []
    for key in sorted(payload):
        value = payload[key]
        if isinstance(value, (dict, list)):
            text = json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
            value = text if len(text) <= 40 else text[:39] + "\u2026"
        parts.append(f"{key}={value}")
    return " ".join(parts)[:300]


def event_row(seq: int, event: dict[str, Any]) -> EventRow:
    actor = event.get("actor") or {}
    target = event.get("target") or {}
    label = target.get("label") or (f"{target.get('type')}:{target.get('id')}" if target else "")
    return EventRow(seq=seq, ts=str(event.get("ts", "")), action=str(event.get("action", "")),
                    actor=actor_label(actor), actor_type=str(actor.get("type", "")),
                    actor_roles=tuple(actor.get("roles") or ()), target=str(label),
                    detail=_detail(str(event.get("action", "")), event.get("payload") or {}))


@dataclass
class EventDigest:
    """What the single pass over the period's events gathers for the report and the checks."""

    pdf_rows: int
    count: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    by_action: Counter = field(default_factory=Counter)
    rows: list[EventRow] = field(default_factory=list)
    access_changes: list[EventRow] = field(default_factory=list)
    security_rows: list[EventRow] = field(default_factory=list)
    security_total: int = 0
    failed_logins: Counter = field(default_factory=Counter)
    rejected_tokens: int = 0
    denials: int = 0
    successful_logins: int = 0

    def add(self, seq: int, event: dict[str, Any]) -> EventRow:
        row = event_row(seq, event)
        self.count += 1
        if self.first_seq is None:
            self.first_seq = seq
        self.last_seq = seq
        self.by_action[row.action] += 1
        if len(self.rows) < self.pdf_rows:
            self.rows.append(row)
        if row.action.startswith(ACCESS_ACTIONS):
            self.access_changes.append(row)
        if row.action.startswith(SECURITY_PREFIX):
            self.security_total += 1
            if len(self.security_rows) < PDF_SECURITY_ROWS:
                self.security_rows.append(row)
            payload = event.get("payload") or {}
            if row.action == "security.login.failed":
                self.failed_logins[str(payload.get("username", ""))] += 1
            elif row.action == "security.login.succeeded":
                self.successful_logins += 1
            elif row.action == "security.token.rejected":
                self.rejected_tokens += 1
            elif row.action == "security.access.denied":
                self.denials += 1
        return row

    def security(self) -> SecurityFacts:
        return SecurityFacts(failed_logins=dict(self.failed_logins), rejected_tokens=self.rejected_tokens,
                             denials=self.denials, successful_logins=self.successful_logins,
                             rows=tuple(self.security_rows), total=self.security_total)


def _report_fact(r: Any) -> ReportFact:
    ok = None
    if r.status == "succeeded":
        try:
            ok = hashlib.sha256(canonical_bytes(r.result)).hexdigest() == r.result_digest
        except CanonicalError:
            ok = False
    return ReportFact(id=r.pk, model=r.version.model.name, version=r.version.version, kind=r.kind, status=r.status,
                      created_at=r.created_at, finished_at=r.finished_at, result=r.result,
                      result_digest=r.result_digest, inputs_digest=r.inputs_digest, options=r.options or {},
                      error_code=r.error_code, digest_ok=ok)


def _dataset_fact(d: Any) -> DatasetFact:
    return DatasetFact(id=d.pk, name=d.name, version=d.version, sha256=d.sha256,
                       data_categories=tuple(d.data_categories or ()), created_at=d.created_at)


def _receipt_check(receipt: str, keys: list[VerifierKey]) -> tuple[bool | None, str]:
    if not receipt:
        return None, ""
    try:
        open_note(receipt.encode("utf-8"), keys)
    except NoteError as exc:
        return False, str(exc)
    return True, ""


def collect_facts(*, framework: str, models: list[Any], period_start: datetime, period_end: datetime,
                  generated_at: datetime, log: LogFacts, events: EventDigest,
                  log_keys: list[VerifierKey]) -> Facts:
    """Everything but the event stream, for the models in scope."""
    from governance.models import PromotionPolicy, PromotionRequest, Waiver
    from monitoring.models import Report
    from registry.models import ModelVersion, StageAssignment

    from audits.packs.models import Alert, PackSchedule

    model_ids = [m.pk for m in models]
    in_period = Q(created_at__gte=period_start, created_at__lt=period_end) | \
        Q(decided_at__gte=period_start, decided_at__lt=period_end)
    promotions_qs = (PromotionRequest.objects.filter(in_period, model_id__in=model_ids, created_at__lt=period_end)
                     .select_related("model", "version", "policy").prefetch_related("approvals__user")
                     .order_by("created_at", "id"))
    promotions_rows = list(promotions_qs)

    # Reports: of deployed versions, used by decisions in the period, or finished in the period.
    current = (StageAssignment.objects.filter(model_id__in=model_ids, ended_at__isnull=True,
                                              stage__in=["staging", "production"])
               .select_related("version", "model"))
    deployed_by_model: dict[int, list[Any]] = {}
    for sa in current:
        deployed_by_model.setdefault(sa.model_id, []).append(sa)
    used_ids = {e.get("id") for p in promotions_rows for r in (p.decision or {}).get("results", [])
                for e in r.get("evidence", []) if e.get("kind") == "report"}
    version_ids = {sa.version_id for sas in deployed_by_model.values() for sa in sas}
    report_qs = (Report.objects.filter(Q(version_id__in=version_ids) | Q(pk__in=used_ids)
                                       | Q(version__model_id__in=model_ids, finished_at__gte=period_start,
                                           finished_at__lt=period_end))
                 .filter(created_at__lt=period_end).select_related("version__model").order_by("created_at", "id"))
    reports = [_report_fact(r) for r in report_qs]
    reports_by_version: dict[tuple[str, int], list[ReportFact]] = {}
    for r in reports:
        reports_by_version.setdefault((r.model, r.version), []).append(r)

    model_facts = []
    for m in models:
        deployed = []
        for sa in sorted(deployed_by_model.get(m.pk, []), key=lambda s: s.stage != "production"):
            v = ModelVersion.objects.prefetch_related("training_datasets").get(pk=sa.version_id)
            deployed.append(VersionFact(model=m.name, version=v.version, artifact_sha256=v.artifact_sha256,
                                        stage=sa.stage,
                                        training_datasets=tuple(_dataset_fact(d) for d in v.training_datasets.all()),
                                        reports=tuple(reports_by_version.get((m.name, v.version), ()))))
        model_facts.append(ModelFact(name=m.name, team=m.team.slug, risk_tier=m.risk_tier,
                                     data_categories=tuple(m.data_categories or ()), intended_use=m.intended_use,
                                     archived=m.archived, deployed=tuple(deployed),
                                     version_count=m.versions.count()))

    report_kind = {r.id: r.kind for r in reports}
    waivers_rows = list(Waiver.objects.filter(version__model_id__in=model_ids, granted_at__lt=period_end)
                        .filter(Q(expires_at__gt=period_start))
                        .select_related("version__model", "granted_by").order_by("granted_at", "id"))
    promotion_facts = []
    used_waivers: dict[int, list[int]] = {}
    for p in promotions_rows:
        gates = tuple((p.decision or {}).get("results", []))
        waived_gates = {g.get("gate") for g in gates if g.get("waived")}
        waivers = []
        for w in waivers_rows:
            if w.version_id == p.version_id and w.gate in waived_gates:
                waivers.append({"id": w.pk, "gate": w.gate, "justification": w.justification,
                                "granted_by": w.granted_by.get_username() if w.granted_by else "system",
                                "expires_at": w.expires_at.isoformat()})
                used_waivers.setdefault(w.pk, []).append(p.pk)
        evidence = sorted({(e.get("id"), e.get("digest", "")) for g in gates for e in g.get("evidence", [])
                           if e.get("kind") == "report"}, key=lambda t: (t[0] or 0, t[1]))
        ok, detail = _receipt_check(p.receipt, log_keys)
        promotion_facts.append(PromotionFact(
            id=p.pk, model=p.model.name, version=p.version.version, kind=p.kind, target_stage=p.target_stage,
            state=p.state, reason=p.reason, requester=actor_label(p.requester), created_at=p.created_at,
            decided_at=p.decided_at, policy=(p.decision or {}).get("policy"), gates=gates,
            approvals=tuple({"user": a.user.get_username(), "roles": a.roles, "decision": a.decision,
                             "comment": a.comment, "decided_at": a.decided_at.isoformat()} for a in p.approvals.all()),
            waivers=tuple(waivers),
            evidence=tuple({"id": i, "kind": report_kind.get(i, "report"), "digest": d} for i, d in evidence),
            receipt=p.receipt, receipt_ok=ok, receipt_detail=detail))
    waiver_facts = tuple(WaiverFact(
        id=w.pk, model=w.version.model.name, version=w.version.version, gate=w.gate, justification=w.justification,
        granted_by=w.granted_by.get_username() if w.granted_by else "system", granted_at=w.granted_at,
        expires_at=w.expires_at, revoked_at=w.revoked_at, used_by=tuple(used_waivers.get(w.pk, ())))
        for w in waivers_rows)

    promoted_moves = {(p.version_id, p.target_stage): p.pk for p in promotions_rows if p.state == "promoted"}
    moves = []
    for sa in (StageAssignment.objects.filter(model_id__in=model_ids, started_at__gte=period_start,
                                              started_at__lt=period_end)
               .select_related("model", "version").order_by("started_at", "id")):
        via = promoted_moves.get((sa.version_id, sa.stage))
        if via is None and sa.reason.startswith("promotion #"):
            ref = sa.reason[len("promotion #"):].split(":", 1)[0]
            via = int(ref) if ref.isdigit() and PromotionRequest.objects.filter(
                pk=int(ref), state="promoted", version_id=sa.version_id).exists() else None
        moves.append(StageMoveFact(model=sa.model.name, version=sa.version.version, stage=sa.stage,
                                   started_at=sa.started_at, by=actor_label(sa.started_by), reason=sa.reason,
                                   promotion=via))

    User = get_user_model()
    users = tuple(UserFact(
        username=u.get_username(), active=u.is_active,
        roles=tuple(sorted(g.name for g in u.groups.all() if hasattr(g, "role"))),
        teams=tuple(sorted(g.team.slug for g in u.groups.all() if hasattr(g, "team"))),
        last_login=u.last_login, date_joined=u.date_joined)
        for u in User.objects.prefetch_related("groups__role", "groups__team").order_by("username"))
    from governance.models import ApiToken

    tokens = tuple(TokenFact(id=t.pk, name=t.name, prefix=t.prefix, user=t.user.get_username(),
                             user_active=t.user.is_active, team=t.team.slug if t.team else "",
                             created_at=t.created_at, expires_at=t.expires_at, revoked_at=t.revoked_at,
                             last_used_at=t.last_used_at)
                   for t in ApiToken.objects.select_related("user", "team").filter(created_at__lt=period_end)
                   .order_by("user__username", "created_at", "id"))
    policies = tuple(PolicyFact(name=p.name, version=p.version, digest=p.digest, target_stage=p.target_stage,
                                published_at=p.published_at, published_by=actor_label(p.published_by))
                     for p in PromotionPolicy.objects.filter(published_at__gte=period_start,
                                                             published_at__lt=period_end)
                     .order_by("published_at", "id"))
    alerts = tuple(AlertFact(id=a.pk, kind=a.kind, title=a.title, status=a.status, created_at=a.created_at,
                             resolved_at=a.resolved_at)
                   for a in Alert.objects.filter(created_at__lt=period_end).order_by("created_at", "id"))
    schedules = tuple(ScheduleFact(name=s.name, framework=s.framework, retention_days=s.retention_days,
                                   enabled=s.enabled, destination=s.destination)
                      for s in PackSchedule.objects.order_by("name"))
    deployment = DeploymentFacts(production=bool(settings.PRODUCTION),
                                 ssl_redirect=bool(getattr(settings, "SECURE_SSL_REDIRECT", False)),
                                 hsts_seconds=int(getattr(settings, "SECURE_HSTS_SECONDS", 0) or 0),
                                 secure_cookies=bool(getattr(settings, "SESSION_COOKIE_SECURE", False)
                                                     and getattr(settings, "CSRF_COOKIE_SECURE", False)))
    return Facts(framework=framework, period_start=period_start, period_end=period_end, generated_at=generated_at,
                 models=tuple(model_facts), promotions=tuple(promotion_facts), stage_moves=tuple(moves),
                 waivers=waiver_facts, reports=tuple(reports), users=users, tokens=tokens,
                 access_changes=tuple(events.access_changes), security=events.security(), log=log,
                 policies=policies, alerts=alerts, deployment=deployment, schedules=schedules,
                 minimum_retention_days=catalogue(framework).minimum_retention_days)
