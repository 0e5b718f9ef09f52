"""Writes on audit packs, their schedules and alerts. Each appends exactly one audit event.

Generating a pack is a row first (queued, audited), then a Celery task that calls
``pack_generate``: it marks the pack running, builds the zip (``build.py``), and finishes or
fails it, each step its own audited transaction, like an evidence report. Progress (percent and
stage) is bookkeeping for the portal and the API, not a governed change, so it is not audited.

Who may: generating and downloading packs needs ``view_audit_log`` (compliance officers,
auditors and administrators, who hold every capability) with an unscoped token, since a pack
holds the whole log of its period. Schedules and alerts are compliance settings, kept by those
who publish promotion policies (``manage_policies``: compliance officers and administrators).
"""
from __future__ import annotations

import hashlib
import logging
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import OperationalError, transaction
from django.utils import timezone

from audits.packs.models import Alert, AlertStatus, AuditPack, PackFramework, PackSchedule, PackStatus
from audits.services import Target, audit_append
from governance.access import Principal
from governance.errors import Conflict, ValidationFailed

log = logging.getLogger("audits.packs")

GENERATOR = Principal.of_system("pack-generator")
SCHEDULER = Principal.of_system("pack-scheduler")
PACK_CAPABILITY = "view_audit_log"
SCHEDULE_CAPABILITY = "manage_policies"
MAX_PERIOD_DAYS = 3700
MAX_MODELS = 500


def pack_target(pack: AuditPack) -> Target:
    return Target("audits.pack", str(pack.pk), f"{pack.framework} pack {pack.pk}")


def schedule_target(schedule: PackSchedule) -> Target:
    return Target("audits.pack_schedule", str(schedule.pk), schedule.name)


def require_pack_reader(principal: Principal, *, action: str, target: Target | None = None) -> None:
    """Packs hold the whole log of a period: the whole-log capability, with an unscoped token."""
    principal.require(PACK_CAPABILITY, target=target, action=action)
    if principal.team_scope is not None:
        principal.refuse("A pack covers every team's events; use a token that is not limited to one team.",
                         code="token_scoped", target=target, action=action)


def _framework(value: str) -> str:
    if value not in PackFramework.values:
        raise ValidationFailed(f"framework must be one of {PackFramework.values}.", code="invalid_framework")
    return value


def _model_names(models: Any) -> list[str]:
    if models is None:
        return []
    if not isinstance(models, (list, tuple)) or not all(isinstance(m, str) and m for m in models) \
            or len(models) > MAX_MODELS:
        raise ValidationFailed(f"models must be a list of at most {MAX_MODELS} model names.", code="invalid_models")
    return sorted(set(models))


def _check_period(start: datetime, end: datetime, now: datetime) -> None:
    if timezone.is_naive(start) or timezone.is_naive(end):
        raise ValidationFailed("period_start and period_end need a time zone (e.g. 2026-01-01T00:00:00Z).",
                               code="invalid_period")
    if start >= end:
        raise ValidationFailed("period_start must be before period_end.", code="invalid_period")
    if end > now + timedelta(minutes=1):
        raise ValidationFailed("period_end is in the future; a pack can only cover what has happened. "
                               "Leave it out to cover up to now.", code="invalid_period")
    if end - start > timedelta(days=MAX_PERIOD_DAYS):
        raise ValidationFailed(f"A pack covers at most {MAX_PERIOD_DAYS} days.", code="invalid_period")


def _signing_ready() -> None:
    from audits.packs.signing import organisation_signer

    try:
        organisation_signer()
    except ImproperlyConfigured as exc:
        raise Conflict(f"Packs cannot be signed yet: {exc}", code="signing_not_configured") from exc


# --- Packs ---------------------------------------------------------------------------------------

def pack_request(*, actor: Principal, framework: str, period_start: datetime, period_end: datetime | None = None,
                 models: list[str] | None = None, schedule: PackSchedule | None = None,
                 enqueue: bool = True) -> AuditPack:
    """Queue a pack; the generator task starts when this transaction commits."""
    from audits.packs.collect import resolve_scope

    require_pack_reader(actor, action="audits.pack.requested")
    now = timezone.now()
    framework = _framework(framework)
    period_end = period_end or now
    _check_period(period_start, period_end, now)
    names = _model_names(models)
    resolve_scope(framework, names)  # unknown or out-of-scope models are a 400 now, not a failed pack later
    _signing_ready()
    user = actor.user if actor.system is None else None
    with transaction.atomic():
        pack = AuditPack.objects.create(framework=framework, period_start=period_start, period_end=period_end,
                                        model_names=names, requested_by=actor.snapshot(), requested_by_user=user,
                                        schedule=schedule)
        audit_append(actor=actor.snapshot(), action="audits.pack.requested", target=pack_target(pack),
                     payload={"framework": framework, "period_start": period_start.isoformat(),
                              "period_end": period_end.isoformat(), "models": names,
                              "schedule": schedule.pk if schedule else None})
        if enqueue:
            from audits.packs.tasks import generate_pack_task

            pk = pack.pk
            transaction.on_commit(lambda: generate_pack_task.delay(pk))
    return pack


def _locked(pack: AuditPack) -> AuditPack:
    return AuditPack.objects.select_for_update().get(pk=pack.pk)


def _refuse_final(pack: AuditPack) -> None:
    if pack.is_final:
        raise Conflict(f"Pack {pack.pk} is already {pack.status}; request a new pack instead.", code="pack_final",
                       details={"status": pack.status})


def pack_start(*, actor: Principal, pack: AuditPack) -> AuditPack:
    """Mark a pack running (again, when a redelivered task restarts it)."""
    with transaction.atomic():
        pack = _locked(pack)
        _refuse_final(pack)
        restarted = pack.status == PackStatus.RUNNING
        pack.status, pack.started_at, pack.progress, pack.stage = PackStatus.RUNNING, timezone.now(), 1, "starting"
        pack.attempts += 1
        pack.save(update_fields=["status", "started_at", "attempts", "progress", "stage"])
        audit_append(actor=actor.snapshot(), action="audits.pack.started", target=pack_target(pack),
                     payload={"attempt": pack.attempts, "restarted": restarted})
    return pack


def pack_finish(*, actor: Principal, pack: AuditPack, result: Any, file_name: str) -> AuditPack:
    """Record a built pack (its file, digests and anchor); final from here on."""
    with transaction.atomic():
        pack = _locked(pack)
        _refuse_final(pack)
        if pack.status != PackStatus.RUNNING:
            raise Conflict(f"Pack {pack.pk} is {pack.status}, not running.", code="pack_not_running")
        pack.status, pack.progress, pack.stage, pack.finished_at = PackStatus.SUCCEEDED, 100, "done", timezone.now()
        pack.file_name, pack.size_bytes, pack.sha256 = file_name, result.size_bytes, result.sha256
        pack.manifest_sha256, pack.pages, pack.event_count = result.manifest_sha256, result.pages, result.event_count
        pack.checkpoint_size, pack.checkpoint_root = result.checkpoint_size, result.checkpoint_root
        pack.scope, pack.summary = result.scope, result.summary
        pack.save()
        audit_append(actor=actor.snapshot(), action="audits.pack.generated", target=pack_target(pack),
                     payload={"sha256": pack.sha256, "manifest_sha256": pack.manifest_sha256,
                              "size_bytes": pack.size_bytes, "pages": pack.pages, "events": pack.event_count,
                              "checkpoint": {"size": pack.checkpoint_size, "root": pack.checkpoint_root},
                              "scope": pack.scope, "controls": pack.summary})
    return pack


def pack_fail(*, actor: Principal, pack: AuditPack, code: str, message: str) -> AuditPack:
    """Mark a pack failed with a code (for programs) and a message (for people)."""
    with transaction.atomic():
        pack = _locked(pack)
        _refuse_final(pack)
        pack.status, pack.finished_at, pack.stage = PackStatus.FAILED, timezone.now(), "failed"
        pack.error_code, pack.error_message = code[:64], message
        pack.save(update_fields=["status", "finished_at", "stage", "error_code", "error_message"])
        audit_append(actor=actor.snapshot(), action="audits.pack.failed", target=pack_target(pack),
                     payload={"error_code": pack.error_code, "attempts": pack.attempts})
    return pack


def pack_path(pack: AuditPack) -> Path:
    return Path(settings.GOVAUDIT_PACK_DIR) / pack.file_name


def _progress(pack_id: int, percent: int, stage: str) -> None:
    AuditPack.objects.filter(pk=pack_id, status=PackStatus.RUNNING).update(progress=max(1, min(99, percent)),
                                                                          stage=stage[:80])


def pack_generate(*, pack_id: int) -> AuditPack | None:
    """Build a queued pack to a final state; safe to call again for the same id (task redelivery).

    Returns None when the pack does not exist, the pack unchanged when it is already final.
    Only ``OperationalError`` escapes (the task retries on it).
    """
    from audits.packs.build import PackBuildError, build_pack

    pack = AuditPack.objects.filter(pk=pack_id).first()
    if pack is None:
        log.warning("pack %s not found; its request was probably rolled back", pack_id)
        return None
    if pack.is_final:
        return pack
    try:
        pack = pack_start(actor=GENERATOR, pack=pack)
    except Conflict:
        return AuditPack.objects.get(pk=pack_id)
    folder = Path(settings.GOVAUDIT_PACK_DIR)
    file_name = f"audit-pack-{pack.pk}-{pack.framework}-{pack.period_end:%Y%m%d}.zip"
    partial = folder / f".{file_name}.partial"
    try:
        result = build_pack(pack_id=pack.pk, framework=pack.framework, model_names=list(pack.model_names),
                            period_start=pack.period_start, period_end=pack.period_end,
                            generated_at=pack.started_at or timezone.now(), out_path=partial,
                            progress=lambda pct, stage: _progress(pack_id, pct, stage),
                            pdf_event_rows=settings.GOVAUDIT_PACK_PDF_EVENT_ROWS)
        os.replace(partial, folder / file_name)
    except OperationalError:
        partial.unlink(missing_ok=True)
        raise
    except (PackBuildError, ValidationFailed, ImproperlyConfigured) as exc:
        partial.unlink(missing_ok=True)
        code = getattr(exc, "code", "signing_not_configured")
        return _final(lambda: pack_fail(actor=GENERATOR, pack=pack, code=code, message=str(exc)), pack_id)
    except Exception:
        partial.unlink(missing_ok=True)
        log.exception("pack %s failed unexpectedly", pack_id)
        return _final(lambda: pack_fail(actor=GENERATOR, pack=pack, code="internal_error",
                                        message=f"Building pack {pack_id} failed on our side; it was logged. Request "
                                                "the pack again later, or quote its id to an operator."), pack_id)
    return _final(lambda: pack_finish(actor=GENERATOR, pack=pack, result=result, file_name=file_name), pack_id)


def _final(write: Any, pack_id: int) -> AuditPack:
    try:
        return write()
    except Conflict:
        return AuditPack.objects.get(pk=pack_id)


def pack_download(*, actor: Principal, pack: AuditPack) -> Path:
    """The pack's file, for someone allowed to have it; every download is recorded."""
    require_pack_reader(actor, action="audits.pack.downloaded", target=pack_target(pack))
    if pack.status != PackStatus.SUCCEEDED:
        raise Conflict(f"Pack {pack.pk} is {pack.status}; it can be downloaded once it has succeeded.",
                       code="pack_not_ready", details={"status": pack.status, "progress": pack.progress})
    path = pack_path(pack)
    if not path.is_file():
        raise Conflict(f"The file of pack {pack.pk} is no longer on this server; request a new pack.",
                       code="pack_file_missing")
    with transaction.atomic():
        audit_append(actor=actor.snapshot(), action="audits.pack.downloaded", target=pack_target(pack),
                     payload={"sha256": pack.sha256, "file": pack.file_name})
    return path


# --- Alerts --------------------------------------------------------------------------------------

def alert_raise(*, actor: Principal, kind: str, title: str, message: str, source: Target | None = None,
                details: dict[str, Any] | None = None, severity: str = "error") -> Alert:
    """Open an alert for people to act on (the portal lists open alerts)."""
    with transaction.atomic():
        alert = Alert.objects.create(kind=kind, severity=severity, title=title[:200], message=message,
                                     source_type=source.type if source else "", source_id=source.id if source else "",
                                     details=details or {})
        audit_append(actor=actor.snapshot(), action="audits.alert.raised",
                     target=Target("audits.alert", str(alert.pk), alert.title),
                     payload={"kind": kind, "severity": severity, "title": alert.title, "message": message,
                              "source": source.as_dict() if source else None})
    return alert


def alert_resolve(*, actor: Principal, alert: Alert, note: str = "") -> Alert:
    """Close an alert, saying what was done."""
    target = Target("audits.alert", str(alert.pk), alert.title)
    actor.require(SCHEDULE_CAPABILITY, target=target, action="audits.alert.resolved")
    with transaction.atomic():
        alert = Alert.objects.select_for_update().get(pk=alert.pk)
        if alert.status != AlertStatus.OPEN:
            raise Conflict("This alert is already resolved.", code="alert_resolved")
        alert.status, alert.resolved_at, alert.resolved_by = AlertStatus.RESOLVED, timezone.now(), actor.snapshot()
        alert.details = alert.details | ({"resolution": note} if note else {})
        alert.save(update_fields=["status", "resolved_at", "resolved_by", "details"])
        audit_append(actor=actor.snapshot(), action="audits.alert.resolved", target=target,
                     payload={"kind": alert.kind, "note": note})
    return alert


def file_sha256(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            sha.update(chunk)
    return sha.hexdigest()
