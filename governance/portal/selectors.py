"""Reads behind the portal's pages, always narrowed to what the principal may see.

They build on the project's selectors (``registry.selectors.model_list``,
``governance.selectors.promotion_list``, ``audits.selectors.event_list``), so a person limited to
one team sees that team's models, promotions and events here exactly as in the API.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from audits.checkpoints import latest_checkpoint, tree_size
from audits.models import AuditCheckpoint, AuditPending, AuditVerification
from governance.access import Principal
from governance.models import OPEN_PROMOTION_STATES, PromotionRequest, PromotionState, Waiver
from governance.roles import ROLES
from governance.selectors import promotion_list
from monitoring.models import Report, ReportStatus
from registry.models import RegisteredModel, RiskTier, StageAssignment
from registry.selectors import model_list

STAGE_COLUMNS = (("production", "In production"), ("staging", "In staging only"),
                 ("none", "Not deployed"), ("archived", "Archived"))


# --- Models ------------------------------------------------------------------------------------------

def models_with_stage(*, principal: Principal) -> QuerySet[RegisteredModel]:
    """Visible models, each annotated with whether a version holds production / staging now."""
    current = StageAssignment.objects.filter(model=OuterRef("pk"), ended_at__isnull=True)
    return model_list(principal=principal).annotate(
        in_production=Exists(current.filter(stage="production")),
        in_staging=Exists(current.filter(stage="staging")))


def stage_column(model: Any) -> str:
    """Where a model stands: archived, else the highest stage one of its versions holds."""
    if model.archived:
        return "archived"
    if model.in_production:
        return "production"
    return "staging" if model.in_staging else "none"


def filter_by_stage(qs: QuerySet[RegisteredModel], column: str) -> QuerySet[RegisteredModel]:
    if column == "archived":
        return qs.filter(archived=True)
    live = qs.filter(archived=False)
    if column == "production":
        return live.filter(in_production=True)
    if column == "staging":
        return live.filter(in_production=False, in_staging=True)
    if column == "none":
        return live.filter(in_production=False, in_staging=False)
    return qs


@dataclass
class StageMatrix:
    """Counts of visible models by risk tier (rows) and stage column."""

    rows: list[dict[str, Any]]
    totals: list[int]  # per column, in STAGE_COLUMNS order
    total: int


def models_by_stage_and_tier(*, principal: Principal) -> StageMatrix:
    counts: dict[tuple[str, str], int] = {}
    for model in models_with_stage(principal=principal).select_related(None).only("risk_tier", "archived"):
        key = (model.risk_tier, stage_column(model))
        counts[key] = counts.get(key, 0) + 1
    rows = []
    for tier, label in reversed(RiskTier.choices):
        cells = [{"column": col, "count": counts.get((tier, col), 0)} for col, _ in STAGE_COLUMNS]
        rows.append({"tier": tier, "label": label, "cells": cells, "total": sum(c["count"] for c in cells)})
    totals = [sum(counts.get((t, col), 0) for t, _ in RiskTier.choices) for col, _ in STAGE_COLUMNS]
    return StageMatrix(rows=rows, totals=totals, total=sum(totals))


# --- Promotions --------------------------------------------------------------------------------------

def approval_roles(req: PromotionRequest) -> set[str]:
    """The roles whose approvals count for this request's policy (empty: no approvals gate)."""
    document = req.policy.document if req.policy else {}
    return {role for gate in document.get("gates", []) if gate.get("type") == "approvals"
            for role in gate.get("roles", [])}


def failing_gates(req: PromotionRequest) -> list[dict[str, Any]]:
    """The gate results that failed (and were not waived) in the request's latest decision."""
    return [r for r in (req.decision or {}).get("results", []) if r.get("status") == "failed" and not r.get("waived")]


@dataclass(frozen=True)
class DecisionOptions:
    """Whether the principal may approve or reject now, and if not, a sentence saying why."""

    can_decide: bool
    reason: str = ""


def decision_options(*, principal: Principal, req: PromotionRequest) -> DecisionOptions:
    """What the evidence page offers. The service decides for real; this only hides useless buttons."""
    if not principal.can("approve_promotion") or principal.user is None:
        return DecisionOptions(False)  # read-only roles: no buttons, no explanation needed
    user = principal.user
    if req.state not in OPEN_PROMOTION_STATES:
        return DecisionOptions(False, f"This promotion is {req.get_state_display().lower()}; it takes no more "
                                      "decisions.")
    if user.pk == req.requested_by_id:
        return DecisionOptions(False, "You requested this promotion; separation of duties needs someone else to "
                                      "decide.")
    if user.pk == req.version.created_by_id:
        return DecisionOptions(False, "You registered this version; separation of duties needs someone else to "
                                      "decide.")
    earlier = req.approvals.filter(user=user).first()
    if earlier is not None:
        return DecisionOptions(False, f"You {earlier.decision} this promotion on "
                                      f"{earlier.decided_at:%Y-%m-%d %H:%M} UTC.")
    return DecisionOptions(True)


def promotions_awaiting(*, principal: Principal, limit: int = 20) -> list[PromotionRequest]:
    """Open requests waiting for approvals that this person could give (and has not given)."""
    if not principal.can("approve_promotion") or principal.user is None:
        return []
    user = principal.user
    held = {g.name for g in user.groups.all() if g.name in ROLES}
    qs = (promotion_list(principal=principal).filter(state=PromotionState.AWAITING_APPROVAL)
          .exclude(requested_by=user).exclude(version__created_by=user).exclude(approvals__user=user)
          .order_by("created_at"))
    out = []
    for req in qs[:200]:
        roles = approval_roles(req)
        if not roles or roles & held:
            out.append(req)
        if len(out) >= limit:
            break
    return out


def promotions_blocked(*, principal: Principal, limit: int = 10) -> list[tuple[PromotionRequest, list[dict]]]:
    """The latest blocked requests, each with the gates that failed."""
    qs = promotion_list(principal=principal).filter(state=PromotionState.BLOCKED).order_by("-decided_at", "-id")
    return [(req, failing_gates(req)) for req in qs[:limit]]


@dataclass
class Evidence:
    """Everything the evidence page shows about one promotion request."""

    req: PromotionRequest
    failing: list[dict[str, Any]]
    reports: list[Report]
    used_reports: dict[int, list[str]]
    approvals: list[Any]
    waivers: list[Waiver]
    earlier: list[PromotionRequest]
    holders: list[StageAssignment]
    approval_roles: set[str] = field(default_factory=set)


def promotion_evidence(*, principal: Principal, req: PromotionRequest) -> Evidence:
    """``req`` came from ``promotion_get``, so it is visible; so are its version's reports and history."""
    used: dict[int, list[str]] = {}
    for result in (req.decision or {}).get("results", []):
        for ref in result.get("evidence", []):
            if ref.get("kind") == "report":
                used.setdefault(int(ref["id"]), []).append(result.get("gate", ""))
    reports = list(Report.objects.filter(version=req.version).select_related("reference", "current", "evaluation")
                   .order_by("-created_at", "-id")[:50])
    earlier = list(PromotionRequest.objects.filter(model=req.model).exclude(pk=req.pk)
                   .select_related("version", "policy").prefetch_related("approvals__user")
                   .order_by("-created_at", "-id")[:20])
    holders = list(StageAssignment.objects.filter(model=req.model, ended_at__isnull=True).select_related("version"))
    return Evidence(req=req, failing=failing_gates(req), reports=reports, used_reports=used,
                    approvals=list(req.approvals.select_related("user")),
                    waivers=list(Waiver.objects.filter(version=req.version).select_related("granted_by")),
                    earlier=earlier, holders=holders, approval_roles=approval_roles(req))


# --- Alerts and the audit log's state ----------------------------------------------------------------

def open_failed_reports(*, principal: Principal, limit: int = 20) -> list[Report]:
    """Failed reports not followed by a successful one of the same kind on the same version."""
    later_success = Report.objects.filter(version=OuterRef("version"), kind=OuterRef("kind"),
                                          status=ReportStatus.SUCCEEDED, created_at__gt=OuterRef("created_at"))
    return list(Report.objects.filter(status=ReportStatus.FAILED, version__model__in=model_list(principal=principal))
                .exclude(Exists(later_success)).select_related("version__model")
                .order_by("-finished_at", "-id")[:limit])


@dataclass
class LogState:
    """The audit log at a glance: size, queue, last signed checkpoint and last verification."""

    size: int
    pending: int
    checkpoint: AuditCheckpoint | None
    checkpoint_age: timedelta | None
    uncovered: int
    checkpoint_overdue: bool
    last_verification: AuditVerification | None
    running_verification: AuditVerification | None


def log_state() -> LogState:
    size = tree_size()
    cp = latest_checkpoint()
    now = timezone.now()
    age = now - cp.created_at if cp else None
    uncovered = size - (cp.size if cp else 0)
    # A checkpoint is due every N events or T seconds; twice T with events waiting means the
    # schedule (celery beat) is not running.
    overdue = uncovered > 0 and (age is None or age > timedelta(seconds=2 * settings.AUDIT_CHECKPOINT_EVERY_SECONDS))
    from governance.portal.services import verification_running

    return LogState(size=size, pending=AuditPending.objects.count(), checkpoint=cp, checkpoint_age=age,
                    uncovered=uncovered, checkpoint_overdue=overdue,
                    last_verification=AuditVerification.objects.filter(finished_at__isnull=False)
                    .order_by("-finished_at", "-id").first(),
                    running_verification=verification_running())


@dataclass(frozen=True)
class Alert:
    """Something that needs a person: a sentence, a link, and how bad it is."""

    level: str  # "error" | "warning"
    text: str
    url: str = ""
    when: datetime | None = None
    resolve_url: str = ""  # alerts closed by a person (``audits.packs`` alerts): where to post the resolution


def open_alerts(*, principal: Principal, state: LogState) -> list[Alert]:
    from django.urls import reverse

    alerts: list[Alert] = []
    last = state.last_verification
    if last is not None and last.ok is False:
        alerts.append(Alert("error", f"Audit log verification #{last.pk} failed: {last.problem}",
                            reverse("admin:portal-verification", args=[last.pk]), last.finished_at))
    if state.checkpoint_overdue:
        alerts.append(Alert("warning", f"{state.uncovered} audit event(s) are not covered by a signed checkpoint "
                                       "yet, and the last one is older than the schedule allows: check that the "
                                       "scheduler (celery beat) runs.", reverse("admin:portal-audit"),
                            state.checkpoint.created_at if state.checkpoint else None))
    if principal.can("view_audit_log"):  # failed scheduled exports and other alerts raised for people
        from audits.packs.models import Alert as PackAlert, AlertStatus

        for alert in PackAlert.objects.filter(status=AlertStatus.OPEN).order_by("-created_at", "-id")[:20]:
            alerts.append(Alert(alert.severity if alert.severity in ("error", "warning") else "error",
                                f"{alert.title}: {alert.message}",
                                reverse("admin:audits_alert_change", args=[alert.pk]), alert.created_at,
                                resolve_url=reverse("admin:portal-alert-resolve", args=[alert.pk])))
    for report in open_failed_reports(principal=principal):
        alerts.append(Alert("error", f"{report.get_kind_display()} report #{report.pk} of "
                                     f"{report.version.model.name} v{report.version.version} failed "
                                     f"({report.error_code}): {report.error_message[:200]}",
                            reverse("admin:portal-model", args=[report.version.model.name]), report.finished_at))
    return alerts
