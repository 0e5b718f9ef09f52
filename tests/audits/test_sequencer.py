"""The dedicated sequencer: takes numbering off the request path, and writers take over when it dies."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from audits import services
from audits.core.canonical import canonical_bytes
from audits.models import AuditEvent, AuditPending
from audits.services import audit_append, audit_sequence, format_ts
from audits.verification import verify_log
from tests import workers
from tests.workers import ROOT, run_processes


def _queue_without_sequencing(n: int) -> None:
    """Queue events the way audit_append does, minus its after-commit call (a sequencer's work)."""
    from django.utils import timezone

    with connection.cursor() as cur:
        for i in range(n):
            body = {"ts": format_ts(timezone.now()), "actor": {"type": "system", "name": "test"},
                    "action": "test.queued", "target": None, "request_id": None, "payload": {"i": i}}
            cur.execute("INSERT INTO audits_auditpending (body) VALUES (%s)", [canonical_bytes(body)])


@pytest.mark.django_db
def test_the_command_sequences_what_is_queued_and_stops_on_time() -> None:
    audit_sequence(inline=True)
    before = AuditEvent.objects.count()
    _queue_without_sequencing(30)
    started = time.monotonic()
    call_command("audit_sequencer", "--seconds", "0.3", "--nap-ms", "5", stdout=open(os.devnull, "w"))
    assert time.monotonic() - started < 5
    assert AuditPending.objects.count() == 0
    seqs = list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True))
    assert len(seqs) == before + 30 and seqs == list(range(len(seqs)))


@pytest.mark.django_db
def test_bad_options_are_refused() -> None:
    with pytest.raises(SystemExit):
        call_command("audit_sequencer", "--nap-ms", "0", stderr=open(os.devnull, "w"))


@pytest.mark.django_db
def test_the_nap_grows_while_idle_and_snaps_back_when_events_come(monkeypatch: pytest.MonkeyPatch) -> None:
    """An idle sequencer polls 10 times a second, not 100; an event brings the short nap back."""
    import audits.services as services

    queue = [0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 5, 0]  # events found by each pass
    naps: list[float] = []
    monkeypatch.setattr(services, "_sequence_batch", lambda: queue.pop(0) if queue else 0)
    monkeypatch.setattr(services.time, "sleep", naps.append)
    services.sequencer_run(should_stop=lambda: not queue, nap=0.01, idle_nap=0.1, vacuum_every=3600)
    assert naps == pytest.approx([0.01, 0.02, 0.04, 0.08, 0.1, 0.1, 0.1, 0.01, 0.01, 0.02, 0.01, 0.01])


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_sequencer_reads_the_queue_by_its_key_and_vacuums_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Its session has seq scans off, so the oldest-first read stays on the primary key however
    many empty pages the queue table keeps; and the queue is vacuumed every ``vacuum_every``."""
    import audits.services as services

    plans: list[str] = []
    real = services._sequence_batch

    def batch() -> int:
        with connection.cursor() as cur:
            cur.execute(f"EXPLAIN SELECT id, body FROM audits_auditpending ORDER BY id LIMIT {services._BATCH}")
            plans.append(" ".join(row[0] for row in cur.fetchall()))
        return real()

    monkeypatch.setattr(services, "_sequence_batch", batch)
    _queue_without_sequencing(5)
    stop_at = time.monotonic() + 0.5
    with CaptureQueriesContext(connection) as ctx:
        services.sequencer_run(should_stop=lambda: time.monotonic() > stop_at, nap=0.01, vacuum_every=0.1)
    assert plans and all("audits_auditpending_pkey" in plan and "Seq Scan" not in plan for plan in plans), plans
    assert sum(q["sql"].startswith("VACUUM") for q in ctx.captured_queries) >= 2
    assert AuditPending.objects.count() == 0


def test_bad_idle_nap_is_refused() -> None:
    with pytest.raises(SystemExit):
        call_command("audit_sequencer", "--nap-ms", "50", "--idle-nap-ms", "10", stderr=open(os.devnull, "w"))


def _advisory_locks_held_by_others() -> int:
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid <> "
                    "pg_backend_pid()")
        return cur.fetchone()[0]


def _wait(predicate: Any, timeout: float, what: str) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)
    return time.monotonic() - started


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_dedicated_sequencer_on_postgresql_and_writers_take_over_when_it_stops() -> None:
    """Writers' after-commit calls return at once while it runs; events get a seq within a bound."""
    env = {**os.environ, "DATABASE_URL": workers.test_database_url(), "DJANGO_SETTINGS_MODULE": "governance.settings",
           "CELERY_BROKER_URL": ""}
    proc = subprocess.Popen([sys.executable, "manage.py", "audit_sequencer", "--nap-ms", "5"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # The sequencer lock and the presence lock that tells writers a sequencer runs.
        _wait(lambda: _advisory_locks_held_by_others() == 2, 30, "the sequencer to take its locks")
        waits = []
        for i in range(20):
            with transaction.atomic():
                audit_append(actor={"type": "system", "name": "test"}, action="test.dedicated", target=None,
                             payload={"i": i})
            # The after-commit call found the lock taken and left the event to the sequencer.
            waits.append(_wait(lambda: not AuditPending.objects.exists(), 5, "the sequencer to number an event"))
        assert max(waits) < 2.0, waits
        # Having seen the sequencer, this process trusts it for a moment: a commit's after-commit
        # call makes no probe at all (one statement less per committing request). The window is
        # restarted first, so that it cannot run out between the two calls.
        services._sequencer_seen_until = 0.0
        assert audit_sequence() == 0  # probes, finds the sequencer, opens the window
        assert services._sequencer_seen_until > time.monotonic()
        with CaptureQueriesContext(connection) as ctx:
            with transaction.atomic():
                audit_append(actor={"type": "system", "name": "test"}, action="test.trusted", target=None,
                             payload={})
        assert [q["sql"] for q in ctx.captured_queries if "advisory" in q["sql"]] == []
        _wait(lambda: not AuditPending.objects.exists(), 5, "the sequencer to number the trusted event")

        outputs = run_processes(8, """
            from django.db import transaction
            from audits.services import audit_append
            for i in range(25):
                with transaction.atomic():
                    audit_append(actor={"type": "system", "name": f"w{WORKER}"}, action="test.dedicated.concurrent",
                                 target=None, payload={"worker": WORKER, "i": i})
            print("done")
        """)
        assert outputs == ["done\n"] * 8
        _wait(lambda: not AuditPending.objects.exists(), 10, "the sequencer to drain the queue")
        assert AuditEvent.objects.filter(action="test.dedicated.concurrent").count() == 200

        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err[-2000:]
        assert "stopped after sequencing" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # The locks went with the process. Once the trust window has passed, a writer probes again,
    # wins the lock and sequences its own event.
    time.sleep(services._SEQUENCER_TRUST_SECONDS)
    with transaction.atomic():
        audit_append(actor={"type": "system", "name": "test"}, action="test.after", target=None, payload={})
    assert not AuditPending.objects.exists()
    seqs = list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(len(seqs)))
    assert verify_log().ok


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_writer_holding_the_lock_is_not_taken_for_a_sequencer() -> None:
    """Only the dedicated sequencer's presence lock earns trust: behind a writer's brief hold,
    every commit still probes, so its event is not left waiting for a sequencer that is not there."""
    import psycopg

    holder = psycopg.connect(workers.test_database_url(), autocommit=True)
    try:
        holder.execute("SELECT pg_advisory_lock(%s)", [services._SEQUENCER_LOCK_KEY])
        for i in range(2):
            with CaptureQueriesContext(connection) as ctx:
                with transaction.atomic():
                    audit_append(actor={"type": "system", "name": "test"}, action="test.held", target=None,
                                 payload={"i": i})
            assert len([q for q in ctx.captured_queries if "pg_try_advisory_lock" in q["sql"]]) == 1
        assert AuditPending.objects.count() == 2  # the holder has not drained them
    finally:
        holder.close()
    assert services._sequencer_seen_until < time.monotonic()
    with transaction.atomic():
        audit_append(actor={"type": "system", "name": "test"}, action="test.after-hold", target=None, payload={})
    assert not AuditPending.objects.exists()
