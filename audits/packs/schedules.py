"""Scheduled exports: schedules kept in step with django-celery-beat, runs, destinations, retention.

A schedule names a framework, models, a cron line (UTC), the days each run covers, a destination
(a folder under ``GOVAUDIT_PACK_EXPORT_ROOT``, or ``s3://bucket/prefix`` on any S3-compatible
store through django-storages) and a retention. Each run generates a pack through the same
services as an on-demand pack, copies it to the destination, checks the copy's SHA-256, records
the export, and deletes only this schedule's own exports whose retention has passed. A run that
fails raises an alert. HIPAA schedules keep packs at least six years (45 CFR 164.316(b)(2)(i)).
"""
from __future__ import annotations

import hashlib
import json
import logging
from datetime import timedelta
from pathlib import Path, PurePosixPath
from typing import Any

from django.conf import settings
from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage
from django.db import transaction
from django.utils import timezone

from audits.packs import services
from audits.packs.catalogue import catalogue
from audits.packs.models import AuditPack, PackExport, PackSchedule, PackStatus
from audits.services import audit_append
from governance.access import Principal
from governance.errors import Conflict, ValidationFailed

log = logging.getLogger("audits.packs")
TASK_NAME = "audits.packs.run_schedule"
EDITABLE = ("name", "framework", "model_names", "cron", "period_days", "destination", "s3_endpoint_url",
            "s3_region", "retention_days", "enabled")


# --- validation (pure) ---------------------------------------------------------------------------

def parse_cron(text: str) -> dict[str, str]:
    """Five cron fields; each is checked by Celery's own crontab parser."""
    from celery.schedules import crontab

    parts = (text or "").split()
    if len(parts) != 5:
        raise ValidationFailed("cron needs five fields: minute hour day-of-month month day-of-week, e.g. "
                               "'0 3 1 * *'.", code="invalid_cron")
    fields = dict(zip(("minute", "hour", "day_of_month", "month_of_year", "day_of_week"), parts))
    try:
        crontab(**fields)
    except (ValueError, TypeError) as exc:
        raise ValidationFailed(f"cron {text!r} is not valid: {exc}", code="invalid_cron") from exc
    return fields


def check_destination(destination: str) -> str:
    """``s3://bucket[/prefix]`` or a relative folder under the export root (never outside it)."""
    destination = (destination or "").strip()
    if destination.startswith("s3://"):
        bucket = destination[5:].split("/", 1)[0]
        if not bucket or not all(c.isalnum() or c in ".-" for c in bucket):
            raise ValidationFailed("An S3 destination is s3://bucket/optional/prefix.", code="invalid_destination")
        return destination.rstrip("/")
    root = Path(settings.GOVAUDIT_PACK_EXPORT_ROOT).resolve()
    path = Path(destination)
    if not destination or "\x00" in destination:
        raise ValidationFailed("Give a destination: a folder under the export root, or s3://bucket/prefix.",
                               code="invalid_destination")
    target = (path if path.is_absolute() else root / path).resolve()
    if target != root and root not in target.parents:
        raise ValidationFailed(f"Local destinations must be inside the export root {root} "
                               "(GOVAUDIT_PACK_EXPORT_ROOT).", code="invalid_destination")
    return str(target.relative_to(root)) if target != root else "."


def check_retention(framework: str, retention_days: int | None) -> int:
    days = settings.GOVAUDIT_PACK_RETENTION_DAYS if retention_days is None else retention_days
    minimum = catalogue(framework).minimum_retention_days
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise ValidationFailed("retention_days must be a positive number of days.", code="invalid_retention")
    if days < minimum:
        raise ValidationFailed(f"{catalogue(framework).name} documentation must be kept at least {minimum} days "
                               f"(six years); {days} is too short.", code="retention_too_short",
                               details={"minimum": minimum})
    return days


def clean_fields(data: dict[str, Any]) -> dict[str, Any]:
    """Validate and normalise a schedule's editable fields (shared by the services and the admin)."""
    out = dict(data)
    name = str(out.get("name") or "").strip()
    if not name or len(name) > 100:
        raise ValidationFailed("A schedule needs a name of 1 to 100 characters.", code="invalid_name")
    out["name"] = name
    out["framework"] = services._framework(out.get("framework", ""))
    out["model_names"] = services._model_names(out.get("model_names") or [])
    from audits.packs.collect import resolve_scope

    resolve_scope(out["framework"], out["model_names"])
    parse_cron(out.get("cron", ""))
    out["cron"] = " ".join(str(out["cron"]).split())
    days = out.get("period_days", 30)
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= services.MAX_PERIOD_DAYS:
        raise ValidationFailed(f"period_days must be between 1 and {services.MAX_PERIOD_DAYS}.",
                               code="invalid_period")
    out["period_days"] = days
    out["destination"] = check_destination(out.get("destination", ""))
    out["retention_days"] = check_retention(out["framework"], out.get("retention_days"))
    endpoint = str(out.get("s3_endpoint_url") or "")
    if endpoint and not endpoint.startswith(("https://", "http://")):
        raise ValidationFailed("s3_endpoint_url must be an http(s) URL.", code="invalid_destination")
    out["s3_endpoint_url"], out["s3_region"] = endpoint, str(out.get("s3_region") or "")
    out["enabled"] = bool(out.get("enabled", True))
    return {k: out[k] for k in EDITABLE}


def _sync_beat(schedule: PackSchedule) -> None:
    """Create or update the django-celery-beat task that runs this schedule."""
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    fields = parse_cron(schedule.cron)
    cron, _ = CrontabSchedule.objects.get_or_create(timezone="UTC", **fields)
    task, _ = PeriodicTask.objects.update_or_create(
        name=f"audit-pack-schedule:{schedule.pk}",
        defaults={"task": TASK_NAME, "crontab": cron, "interval": None, "args": json.dumps([schedule.pk]),
                  "enabled": schedule.enabled, "description": f"Audit pack export '{schedule.name}'"})
    if schedule.periodic_task_id != task.pk:
        schedule.periodic_task = task
        schedule.save(update_fields=["periodic_task"])


# --- services ------------------------------------------------------------------------------------

def pack_schedule_create(*, actor: Principal, name: str, framework: str, cron: str, destination: str,
                         retention_days: int | None = None, period_days: int = 30, model_names: list[str] | None = None,
                         s3_endpoint_url: str = "", s3_region: str = "", enabled: bool = True) -> PackSchedule:
    """A new export schedule, with its beat task."""
    actor.require(services.SCHEDULE_CAPABILITY, action="audits.pack_schedule.created")
    data = clean_fields({"name": name, "framework": framework, "cron": cron, "destination": destination,
                         "retention_days": retention_days, "period_days": period_days, "model_names": model_names,
                         "s3_endpoint_url": s3_endpoint_url, "s3_region": s3_region, "enabled": enabled})
    with transaction.atomic():
        if PackSchedule.objects.filter(name=data["name"]).exists():
            raise Conflict(f"A schedule named {data['name']!r} already exists.", code="duplicate_schedule")
        schedule = PackSchedule.objects.create(**data, created_by=actor.snapshot())
        _sync_beat(schedule)
        audit_append(actor=actor.snapshot(), action="audits.pack_schedule.created",
                     target=services.schedule_target(schedule), payload=data)
    return schedule


def pack_schedule_update(*, actor: Principal, schedule: PackSchedule, changes: dict[str, Any]) -> PackSchedule:
    """Change a schedule's fields; the beat task follows."""
    actor.require(services.SCHEDULE_CAPABILITY, target=services.schedule_target(schedule),
                  action="audits.pack_schedule.updated")
    unknown = sorted(set(changes) - set(EDITABLE))
    if unknown:
        raise ValidationFailed(f"Unknown fields {unknown}; editable: {list(EDITABLE)}.", code="invalid_fields")
    with transaction.atomic():
        schedule = PackSchedule.objects.select_for_update().get(pk=schedule.pk)
        before = {k: getattr(schedule, k) for k in EDITABLE}
        data = clean_fields(before | changes)
        changed = {k: {"from": before[k], "to": v} for k, v in data.items() if before[k] != v}
        if not changed:
            return schedule
        if "name" in changed and PackSchedule.objects.filter(name=data["name"]).exclude(pk=schedule.pk).exists():
            raise Conflict(f"A schedule named {data['name']!r} already exists.", code="duplicate_schedule")
        for k, v in data.items():
            setattr(schedule, k, v)
        schedule.updated_at = timezone.now()
        schedule.save()
        _sync_beat(schedule)
        audit_append(actor=actor.snapshot(), action="audits.pack_schedule.updated",
                     target=services.schedule_target(schedule), payload={"changes": changed})
    return schedule


def pack_schedule_delete(*, actor: Principal, schedule: PackSchedule) -> None:
    """Stop a schedule; the files it exported stay (their retention is not shortened)."""
    actor.require(services.SCHEDULE_CAPABILITY, target=services.schedule_target(schedule),
                  action="audits.pack_schedule.deleted")
    with transaction.atomic():
        schedule = PackSchedule.objects.select_for_update().get(pk=schedule.pk)
        target = services.schedule_target(schedule)
        task = schedule.periodic_task
        kept = PackExport.objects.filter(schedule=schedule, deleted_at__isnull=True).count()
        schedule.delete()
        if task is not None:
            task.delete()
        audit_append(actor=actor.snapshot(), action="audits.pack_schedule.deleted", target=target,
                     payload={"name": target.label, "exports_kept": kept})


def destination_storage(destination: str, *, endpoint_url: str = "", region: str = "") -> Storage:
    """A Django storage for a destination: the local export root, or S3 through django-storages."""
    if destination.startswith("s3://"):
        from storages.backends.s3 import S3Storage

        bucket, _, prefix = destination[5:].partition("/")
        options: dict[str, Any] = {"bucket_name": bucket, "location": prefix, "file_overwrite": False,
                                   "default_acl": None, "querystring_auth": False}
        if endpoint_url:
            options["endpoint_url"] = endpoint_url
        if region:
            options["region_name"] = region
        return S3Storage(**options)
    root = Path(settings.GOVAUDIT_PACK_EXPORT_ROOT).resolve() / destination
    root.mkdir(parents=True, exist_ok=True)
    return FileSystemStorage(location=str(root), file_permissions_mode=0o640, directory_permissions_mode=0o750)


def _stored_sha256(storage: Storage, name: str) -> str:
    sha = hashlib.sha256()
    with storage.open(name, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            sha.update(chunk)
    return sha.hexdigest()


def _prune(schedule: PackSchedule, storage: Storage, now: Any) -> list[str]:
    """Delete this schedule's exports whose retention (as recorded and as now configured) has passed."""
    deleted = []
    keep_until = now - timedelta(days=schedule.retention_days)
    for export in PackExport.objects.filter(schedule=schedule, destination=schedule.destination,
                                            deleted_at__isnull=True, expires_at__lte=now,
                                            exported_at__lte=keep_until):
        if export.expires_at > now or export.exported_at > keep_until:  # never inside retention
            continue
        storage.delete(export.name)
        export.deleted_at = now
        export.save(update_fields=["deleted_at"])
        deleted.append(export.name)
    return deleted


def _run_failed(schedule: PackSchedule, pack: AuditPack | None, code: str, message: str) -> None:
    alert = services.alert_raise(
        actor=services.SCHEDULER, kind="audits.pack_schedule.failed",
        title=f"Scheduled audit pack export '{schedule.name}' failed",
        message=f"{message} The next run is due by the schedule ({schedule.cron} UTC); to retry now, run "
                f"manage.py audit_pack --schedule {schedule.pk}.",
        source=services.schedule_target(schedule), details={"code": code, "pack": pack.pk if pack else None})
    with transaction.atomic():
        PackSchedule.objects.filter(pk=schedule.pk).update(last_run_at=timezone.now(), last_status="failed")
        audit_append(actor=services.SCHEDULER.snapshot(), action="audits.pack_schedule.failed",
                     target=services.schedule_target(schedule),
                     payload={"pack": pack.pk if pack else None, "error_code": code, "alert": alert.pk})


def pack_schedule_run(*, schedule_id: int) -> PackExport | None:
    """One run: generate, export, verify the copy, prune expired exports; a failure raises an alert."""
    schedule = PackSchedule.objects.filter(pk=schedule_id).first()
    if schedule is None:
        log.warning("pack schedule %s no longer exists", schedule_id)
        return None
    now = timezone.now()
    pack = None
    try:
        pack = services.pack_request(actor=services.SCHEDULER, framework=schedule.framework,
                                     period_start=now - timedelta(days=schedule.period_days), period_end=now,
                                     models=list(schedule.model_names), schedule=schedule, enqueue=False)
        pack = services.pack_generate(pack_id=pack.pk)
        if pack is None or pack.status != PackStatus.SUCCEEDED:
            _run_failed(schedule, pack, pack.error_code if pack else "pack_missing",
                        f"The pack could not be generated: {pack.error_message if pack else 'it vanished'}.")
            return None
        storage = destination_storage(schedule.destination, endpoint_url=schedule.s3_endpoint_url,
                                      region=schedule.s3_region)
        name = str(PurePosixPath(f"{now:%Y/%m}") / pack.file_name)
        with services.pack_path(pack).open("rb") as fh:
            stored = storage.save(name, File(fh, name=pack.file_name))
        if _stored_sha256(storage, stored) != pack.sha256:
            raise OSError(f"the copy at {schedule.destination}/{stored} does not have the pack's SHA-256")
        pruned = _prune(schedule, storage, now)
    except Exception as exc:  # noqa: BLE001 - whatever stops a run, a person must hear of it
        if isinstance(exc, (ValidationFailed, Conflict)):
            code, message = exc.code, exc.message
        else:
            log.exception("export of schedule %s failed", schedule_id)
            code, message = "export_failed", f"Writing the pack to {schedule.destination} failed: {exc}."
        _run_failed(schedule, pack, code, message)
        return None
    with transaction.atomic():
        export = PackExport.objects.create(
            schedule=schedule, pack=pack, destination=schedule.destination, s3_endpoint_url=schedule.s3_endpoint_url,
            s3_region=schedule.s3_region, name=stored, sha256=pack.sha256, size_bytes=pack.size_bytes or 0,
            exported_at=now, expires_at=now + timedelta(days=schedule.retention_days))
        PackSchedule.objects.filter(pk=schedule.pk).update(last_run_at=now, last_status="succeeded")
        audit_append(actor=services.SCHEDULER.snapshot(), action="audits.pack_schedule.ran",
                     target=services.schedule_target(schedule),
                     payload={"pack": pack.pk, "destination": schedule.destination, "file": stored,
                              "sha256": pack.sha256, "expires_at": export.expires_at.isoformat(), "pruned": pruned})
    return export

