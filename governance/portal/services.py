"""Writes the portal adds: lockouts, second factors, password changes and audit-log verification runs.

Everything a person decides in the portal (approvals, policies, waivers) goes through the same
services as the API (``governance.promotions``); these are the few things only the portal does.
Each appends exactly one audit event, in the same transaction as its change.
"""
from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.utils import timezone
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from audits.checkpoints import tree_size
from audits.models import AuditVerification
from audits.services import Target, audit_append
from audits.verification import verify_log
from governance.access import Principal
from governance.errors import Conflict, NotFound, ValidationFailed

log = logging.getLogger("governance.portal")

# A run not finished after this long lost its worker; it no longer blocks a new one.
VERIFICATION_ABANDONED_AFTER = timedelta(hours=1)


def _user_target(user: Any) -> Target:
    return Target("auth.user", str(user.pk), user.get_username())


def _person(actor: Principal) -> Any:
    """Second factors and passwords belong to a person signed in with a session, never a token."""
    if actor.system is not None or actor.token is not None or not actor.is_authenticated:
        raise ValidationFailed("Sign in to the portal as yourself to do this.", code="person_required")
    return actor.user


# --- Sign-in ---------------------------------------------------------------------------------------

def login_record_lockout(*, username: str, ip: str | None) -> None:
    """Repeated failed sign-ins locked a name (from an address) out for a while."""
    with transaction.atomic():
        audit_append(actor={"type": "anonymous"}, action="security.login.locked_out", target=None,
                     payload={"username": username[:150], "ip": ip, "failure_limit": settings.AXES_FAILURE_LIMIT,
                              "cooloff_seconds": int(settings.AXES_COOLOFF_TIME.total_seconds())})


def password_change(*, actor: Principal, old_password: str, new_password: str) -> None:
    """Change one's own password after proving the current one; the new one must pass the validators."""
    user = _person(actor)
    if not user.has_usable_password() or not user.check_password(old_password):
        raise ValidationFailed("Your current password is not correct.", code="wrong_password")
    try:
        validate_password(new_password, user)
    except DjangoValidationError as exc:
        raise ValidationFailed(" ".join(exc.messages), code="weak_password") from exc
    with transaction.atomic():
        user.set_password(new_password)
        user.save(update_fields=["password"])
        audit_append(actor=actor.snapshot(), action="security.password.changed", target=_user_target(user),
                     payload={})


# --- Second factor (TOTP) --------------------------------------------------------------------------

def otp_required_for(user: Any) -> bool:
    """Whether ``user`` must pass a second factor: a role listed in the setting, or a device they enrolled."""
    required = set(settings.GOVAUDIT_OTP_REQUIRED_ROLES)
    if required and user.groups.filter(name__in=required, role__isnull=False).exists():
        return True
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def otp_device_enrol(*, actor: Principal, key_hex: str, token: str) -> TOTPDevice:
    """Confirm a new authenticator: the code must match the secret the person was shown."""
    user = _person(actor)
    if TOTPDevice.objects.filter(user=user, confirmed=True).exists():
        raise Conflict("You already have an authenticator; an administrator can reset it if you lost it.",
                       code="otp_already_enrolled")
    device = TOTPDevice(user=user, name="authenticator", key=key_hex, confirmed=True)
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    token = (token or "").strip().replace(" ", "")
    if not token.isdigit() or not totp.verify(int(token), tolerance=device.tolerance):
        raise ValidationFailed("That code does not match; type the 6 digits your app shows now.",
                               code="otp_invalid")
    with transaction.atomic():
        device.last_t = totp.t()  # this code may not be used again
        device.save()
        audit_append(actor=actor.snapshot(), action="security.otp.enrolled", target=_user_target(user),
                     payload={"device": device.pk, "kind": "totp"})
    return device


def otp_verify(*, actor: Principal, token: str, ip: str | None = None) -> TOTPDevice:
    """Check a code against the person's authenticator; success and failure are both recorded.

    django-otp throttles a device after failures (doubling delays), so codes cannot be guessed
    quickly; a throttled attempt fails without being checked.
    """
    user = _person(actor)
    token = (token or "").strip().replace(" ", "")
    matched = None
    throttled_until = None
    with transaction.atomic():
        for device in TOTPDevice.objects.select_for_update().filter(user=user, confirmed=True):
            allowed, info = device.verify_is_allowed()
            if not allowed:
                throttled_until = (info or {}).get("locked_until")
                continue
            if token.isdigit() and device.verify_token(token):
                matched = device
                break
        audit_append(actor=actor.snapshot(),
                     action="security.otp.verified" if matched else "security.otp.failed",
                     target=_user_target(user),
                     payload={"device": matched.pk if matched else None, "ip": ip,
                              "throttled": matched is None and throttled_until is not None})
    if matched is None:
        if throttled_until is not None:
            wait = max(1, int((throttled_until - timezone.now()).total_seconds()))
            raise ValidationFailed(f"Too many wrong codes; wait {wait} seconds and try again.", code="otp_throttled")
        raise ValidationFailed("That code is not correct; type the 6 digits your app shows now.", code="otp_invalid")
    return matched


def otp_device_reset(*, actor: Principal, user: Any) -> int:
    """Remove someone's authenticator (a lost phone); they enrol again at their next sign-in."""
    actor.require("manage_roles", target=_user_target(user), action="security.otp.reset")
    with transaction.atomic():
        count, _ = TOTPDevice.objects.filter(user=user).delete()
        if not count:
            raise NotFound(f"{user.get_username()} has no authenticator to reset.", code="otp_not_enrolled")
        audit_append(actor=actor.snapshot(), action="security.otp.reset", target=_user_target(user),
                     payload={"devices": count})
    return count


# --- Audit-log verification runs -------------------------------------------------------------------

def verification_running() -> AuditVerification | None:
    """The run still in progress, if any (runs older than the abandon limit do not count)."""
    cutoff = timezone.now() - VERIFICATION_ABANDONED_AFTER
    return AuditVerification.objects.filter(finished_at__isnull=True, started_at__gte=cutoff) \
        .order_by("-started_at").first()


def verification_request(*, actor: Principal) -> AuditVerification:
    """Start a full verification of the log; a worker runs it and the portal shows its progress.

    The row is saved first (unfinished), then the task is enqueued when this commits; one run at a
    time, since two would only compete for the same rows.
    """
    actor.require("view_audit_log", target=Target("audits.log", "verification", "audit log"),
                  action="audits.verification.requested")
    from governance.portal.tasks import verify_audit_log

    with transaction.atomic():
        running = verification_running()
        if running is not None:
            raise Conflict(f"Verification #{running.pk} started at {running.started_at:%Y-%m-%d %H:%M:%S} UTC is "
                           "still running; wait for its result.", code="verification_running",
                           details={"verification": running.pk})
        row = AuditVerification.objects.create(started_at=timezone.now(), size=0, ok=None)
        audit_append(actor=actor.snapshot(), action="audits.verification.requested",
                     target=Target("audits.log", "verification", f"verification #{row.pk}"),
                     payload={"verification": row.pk, "log_size": tree_size()})
        transaction.on_commit(lambda: verify_audit_log.delay(row.pk))
    return row


class _ProgressRecorder:
    """Writes how far a run got where other sessions can read it while the run goes on.

    On PostgreSQL the scan holds a transaction open (a named cursor), so progress written on the
    same connection would stay invisible until the end; it goes through a connection of its own.
    """

    def __init__(self, pk: int) -> None:
        self.pk = pk
        self.conn = connections.create_connection(DEFAULT_DB_ALIAS) if connection.vendor == "postgresql" else None

    def __call__(self, done: int, total: int) -> None:
        if self.conn is None:
            AuditVerification.objects.filter(pk=self.pk, finished_at__isnull=True).update(size=done)
            return
        with self.conn.cursor() as cur:
            cur.execute(f"UPDATE {AuditVerification._meta.db_table} SET size = %s "
                        "WHERE id = %s AND finished_at IS NULL", [done, self.pk])

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def verification_execute(*, verification_id: int) -> AuditVerification | None:
    """Run a requested verification and keep its outcome; a finished run is left alone (safe to repeat).

    The run itself writes no audit event (like ``audits.verification.verification_run``): its
    request was recorded, and its outcome is kept in ``AuditVerification`` for the dashboard.
    """
    row = AuditVerification.objects.filter(pk=verification_id).first()
    if row is None or row.finished_at is not None:
        return row
    recorder = _ProgressRecorder(row.pk)
    try:
        report = verify_log(progress=recorder)
    finally:
        recorder.close()
    AuditVerification.objects.filter(pk=row.pk, finished_at__isnull=True).update(
        finished_at=timezone.now(), size=report.size, ok=report.ok, first_bad_seq=report.first_bad_seq,
        problem=f"{report.problem}: {report.detail}" if report.problem else "")
    if not report.ok:
        log.error("audit log verification #%s failed: %s (first bad seq %s)", row.pk, report.problem,
                  report.first_bad_seq)
    row.refresh_from_db()
    return row
