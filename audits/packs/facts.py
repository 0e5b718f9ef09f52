"""What a pack is built from: plain, immutable facts collected once from the database.

The checks (``checks.py``) and the PDF (``pdf.py``) read only these, never the ORM, so both are
pure functions that tests can feed directly. ``collect.py`` builds them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class DatasetFact:
    id: int
    name: str
    version: int
    sha256: str
    data_categories: tuple[str, ...]
    created_at: datetime


@dataclass(frozen=True)
class ReportFact:
    id: int
    model: str
    version: int
    kind: str
    status: str
    created_at: datetime
    finished_at: datetime | None
    result: dict[str, Any] | None
    result_digest: str
    inputs_digest: str
    options: dict[str, Any]
    error_code: str = ""
    digest_ok: bool | None = None  # SHA-256 of the result's canonical JSON equals result_digest


@dataclass(frozen=True)
class VersionFact:
    model: str
    version: int
    artifact_sha256: str
    stage: str  # "production", "staging" or "" (not deployed)
    training_datasets: tuple[DatasetFact, ...]
    reports: tuple[ReportFact, ...]  # every report of the version, oldest first

    def latest(self, kind: str) -> ReportFact | None:
        """The newest succeeded report of ``kind``."""
        done = [r for r in self.reports if r.kind == kind and r.status == "succeeded"]
        return done[-1] if done else None


@dataclass(frozen=True)
class ModelFact:
    name: str
    team: str
    risk_tier: str
    data_categories: tuple[str, ...]
    intended_use: str
    archived: bool
    deployed: tuple[VersionFact, ...]  # current production and staging holders
    version_count: int


@dataclass(frozen=True)
class PromotionFact:
    id: int
    model: str
    version: int
    kind: str
    target_stage: str
    state: str
    reason: str
    requester: str
    created_at: datetime
    decided_at: datetime | None
    policy: dict[str, Any] | None
    gates: tuple[dict[str, Any], ...]
    approvals: tuple[dict[str, Any], ...]
    waivers: tuple[dict[str, Any], ...]
    evidence: tuple[dict[str, Any], ...]  # reports the decision rested on: {id, kind, digest}
    receipt: str
    receipt_ok: bool | None  # None: no receipt (still open)
    receipt_detail: str = ""


@dataclass(frozen=True)
class StageMoveFact:
    model: str
    version: int
    stage: str
    started_at: datetime
    by: str
    reason: str
    promotion: int | None  # the promotion that made the move, if any


@dataclass(frozen=True)
class WaiverFact:
    id: int
    model: str
    version: int
    gate: str
    justification: str
    granted_by: str
    granted_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    used_by: tuple[int, ...]  # promotions whose decision relied on it


@dataclass(frozen=True)
class UserFact:
    username: str
    active: bool
    roles: tuple[str, ...]
    teams: tuple[str, ...]
    last_login: datetime | None
    date_joined: datetime


@dataclass(frozen=True)
class TokenFact:
    id: int
    name: str
    prefix: str
    user: str
    user_active: bool
    team: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    def active(self, now: datetime) -> bool:
        return self.revoked_at is None and self.expires_at > now


@dataclass(frozen=True)
class EventRow:
    """One audit event as the PDF and the CSV show it (parsed from its leaf bytes)."""

    seq: int
    ts: str
    action: str
    actor: str
    actor_type: str
    actor_roles: tuple[str, ...]
    target: str
    detail: str


@dataclass(frozen=True)
class SecurityFacts:
    failed_logins: dict[str, int]  # username -> count in the period
    rejected_tokens: int
    denials: int
    successful_logins: int
    rows: tuple[EventRow, ...]  # shown in the PDF (capped); all are in evidence/security_events.csv
    total: int


@dataclass(frozen=True)
class LogFacts:
    origin: str
    checkpoint_size: int
    checkpoint_root_hex: str
    checkpoint_note: str
    checkpoint_signed_at: datetime
    verification: dict[str, Any]  # audits.verification.VerificationReport.as_dict()
    events_in_period: int
    first_seq: int | None
    last_seq: int | None
    proofs_ok: bool  # every proof was checked against the checkpoint root while writing
    counts_by_action: dict[str, int]
    rows: tuple[EventRow, ...]  # the first rows, shown in the PDF; all are in evidence/events.csv


@dataclass(frozen=True)
class PolicyFact:
    name: str
    version: int
    digest: str
    target_stage: str
    published_at: datetime
    published_by: str


@dataclass(frozen=True)
class AlertFact:
    id: int
    kind: str
    title: str
    status: str
    created_at: datetime
    resolved_at: datetime | None


@dataclass(frozen=True)
class DeploymentFacts:
    production: bool
    ssl_redirect: bool
    hsts_seconds: int
    secure_cookies: bool


@dataclass(frozen=True)
class ScheduleFact:
    name: str
    framework: str
    retention_days: int
    enabled: bool
    destination: str


@dataclass(frozen=True)
class Facts:
    """Everything the checks and the report read."""

    framework: str
    period_start: datetime
    period_end: datetime
    generated_at: datetime
    models: tuple[ModelFact, ...]  # in scope
    promotions: tuple[PromotionFact, ...]
    stage_moves: tuple[StageMoveFact, ...]
    waivers: tuple[WaiverFact, ...]
    reports: tuple[ReportFact, ...]  # of in-scope versions: deployed, decided on, or finished in the period
    users: tuple[UserFact, ...]
    tokens: tuple[TokenFact, ...]
    access_changes: tuple[EventRow, ...]
    security: SecurityFacts
    log: LogFacts
    policies: tuple[PolicyFact, ...]
    alerts: tuple[AlertFact, ...]
    deployment: DeploymentFacts
    schedules: tuple[ScheduleFact, ...]
    minimum_retention_days: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
