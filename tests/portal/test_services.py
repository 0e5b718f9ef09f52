"""The portal's own services: verification runs (one at a time, progress, tampering found), second factors."""
from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone
from django_otp.oath import TOTP

from audits.models import AuditEvent, AuditVerification
from audits.triggers import create_triggers, drop_triggers
from governance.access import Principal
from governance.errors import Conflict, PermissionDenied, ValidationFailed
from governance.portal import selectors, services
from tests.factories import Cast

KEY = "3132333435363738393031323334353637383930"


def test_only_audit_log_readers_start_a_verification(cast: Cast) -> None:
    with pytest.raises(PermissionDenied):
        services.verification_request(actor=Principal(user=cast.users["approver"]))
    assert not AuditVerification.objects.exists()


def test_one_run_at_a_time_and_abandoned_runs_do_not_block(cast: Cast) -> None:
    first = services.verification_request(actor=Principal(user=cast.users["auditor"]))
    with pytest.raises(Conflict) as info:
        services.verification_request(actor=Principal(user=cast.users["compliance_officer"]))
    assert info.value.details == {"verification": first.pk}
    AuditVerification.objects.filter(pk=first.pk).update(
        started_at=timezone.now() - services.VERIFICATION_ABANDONED_AFTER - timedelta(minutes=1))
    second = services.verification_request(actor=Principal(user=cast.users["compliance_officer"]))
    assert second.pk != first.pk


def test_a_run_is_final_once_finished(cast: Cast, sequenced: Any) -> None:
    sequenced()
    run = services.verification_request(actor=Principal(user=cast.users["auditor"]))
    done = services.verification_execute(verification_id=run.pk)
    assert done.ok is True and done.finished_at is not None and done.size == AuditEvent.objects.count()
    finished_at = done.finished_at
    again = services.verification_execute(verification_id=run.pk)  # a redelivered task
    assert again.finished_at == finished_at
    assert services.verification_execute(verification_id=99999) is None


def test_tampering_fails_the_run_and_raises_the_dashboard_alert(cast: Cast, sequenced: Any) -> None:
    sequenced()
    drop_triggers(connection)
    try:
        event = AuditEvent.objects.get(seq=3)
        body = json.loads(bytes(event.leaf))
        body["payload"]["tampered"] = True
        AuditEvent.objects.filter(seq=3).update(leaf=json.dumps(body, separators=(",", ":"), sort_keys=True).encode())
    finally:
        create_triggers(connection)
    run = services.verification_request(actor=Principal(user=cast.users["auditor"]))
    done = services.verification_execute(verification_id=run.pk)
    assert done.ok is False and done.first_bad_seq == 3 and done.problem.startswith("hash_mismatch")
    state = selectors.log_state()
    alerts = selectors.open_alerts(principal=Principal(user=cast.users["approver"]), state=state)
    assert any(f"verification #{run.pk} failed" in a.text for a in alerts)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_progress_is_visible_to_other_sessions_while_the_run_goes_on(cast: Cast) -> None:
    """PostgreSQL reads the log inside a transaction (a named cursor): progress goes through its own connection."""
    from django.db import connections

    # a run as a worker finds it: saved, not finished (requesting one here would run it at once, eagerly)
    run = AuditVerification.objects.create(started_at=timezone.now(), size=0, ok=None)
    seen: list[int] = []
    recorder = services._ProgressRecorder(run.pk)
    other = connections.create_connection("default")
    try:
        from django.db import transaction

        with transaction.atomic():  # as the scan does
            recorder(1234, 5000)
            with other.cursor() as cur:
                cur.execute("SELECT size FROM audits_auditverification WHERE id = %s", [run.pk])
                seen.append(cur.fetchone()[0])
    finally:
        recorder.close()
        other.close()
    assert seen == [1234]


def test_enrolment_checks_the_code_and_refuses_a_second_device(cast: Cast) -> None:
    me = Principal(user=cast.users["approver"])
    with pytest.raises(ValidationFailed) as info:
        services.otp_device_enrol(actor=me, key_hex=KEY, token="12")
    assert info.value.code == "otp_invalid"
    device = services.otp_device_enrol(actor=me, key_hex=KEY, token=str(TOTP(bytes.fromhex(KEY)).token()))
    assert device.confirmed and services.otp_required_for(cast.users["approver"])
    with pytest.raises(Conflict):
        services.otp_device_enrol(actor=me, key_hex=KEY, token=str(TOTP(bytes.fromhex(KEY)).token()))
    with pytest.raises(ValidationFailed):
        services.otp_device_enrol(actor=Principal.of_system("x"), key_hex=KEY, token="123456")


def test_a_used_code_cannot_be_replayed_and_wrong_codes_are_throttled(cast: Cast, sequenced: Any) -> None:
    me = Principal(user=cast.users["approver"])
    code = str(TOTP(bytes.fromhex(KEY)).token())
    services.otp_device_enrol(actor=me, key_hex=KEY, token=code)
    with pytest.raises(ValidationFailed):
        services.otp_verify(actor=me, token=code)  # the enrolment used it
    with pytest.raises(ValidationFailed) as info:
        services.otp_verify(actor=me, token="000000")
    assert info.value.code == "otp_throttled" or info.value.code == "otp_invalid"
    with pytest.raises(ValidationFailed) as info:
        services.otp_verify(actor=me, token="000000")
    assert info.value.code == "otp_throttled"  # django-otp: a growing wait after each failure
    failed = [json.loads(bytes(e.leaf))["payload"] for e in sequenced() if e.action == "security.otp.failed"]
    assert failed[-1]["throttled"] is True
