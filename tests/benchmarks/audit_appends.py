#!/usr/bin/env python
"""Audited appends per second under concurrent writers, against plain inserts of the same bytes.

Usage (from the project root)::

    .venv/bin/python tests/benchmarks/audit_appends.py [--writers 16] [--seconds 10] [--rounds 3] \
        [--variants dedicated] [--profile-ops 2000]

Why it exists: every state change in the service records an audit event in its own transaction
(``audits.services.audit_append``), and after commit the writer tries to become the sequencer
that turns queued events into numbered, hashed leaves. That design promises two things a unit
test cannot show: that auditing does not halve write throughput (target: audited appends/s at
least 0.5x plain single-row inserts of the same bytes, same run), and that an event reaches the
tree moments after its commit (this script measures the commit-to-sequenced latency, and the
docs state the bound). Absolute figures on a 2-core machine mean little; the ratio to a baseline
measured minutes apart in the same run, against the same server, does.

What it does, and why each step is shaped the way it is:

1. Creates a throw-away PostgreSQL database (dropped first if a previous run left it), runs
   ``manage.py migrate`` into it with a temporary data/key folder, and creates ``bench_plain``
   (``bigserial`` id + ``bytea`` body: the same shape as the pending queue, without any chain).
2. Starts N worker processes once (``--internal worker``); each runs ``django.setup()`` and then
   waits for commands on stdin, so Django's start-up is never inside a measured window and all
   phases use the same warm processes and persistent connections.
3. Interleaves rounds of two phases (plain, audited, plain, audited, ...), so a burst of noise
   on the machine hits both alike. Each phase starts in every worker at one wall-clock instant
   and runs for ``--seconds``; before each phase the tables are VACUUMed and a CHECKPOINT is
   forced, so neither phase pays for the other's dirty pages (the server runs with autovacuum
   off; see the docs).

   * plain: ``with transaction.atomic(): cursor.execute("INSERT INTO bench_plain(body) ...")``
     through Django's connection, the body being exactly the canonical JSON ``audit_append``
     would have queued for the same event (built the same way, per insert).
   * audited: ``with transaction.atomic(): audit_append(...)``, the real path, so every
     sequencing pass a writer performs after its commit is inside its measured loop.

4. During every phase a poller (its own connection, in this process) reads ``max(seq)`` (in
   plain phases ``max(id)`` of ``bench_plain``, so both phases carry its load) every
   ``--poll-ms``, and the queue depth every tenth poll. Workers record the wall-clock time
   of each commit (an ``on_commit`` callback registered *before* ``audit_append``'s own, so it
   runs first, right after COMMIT returns). Joining the two through each event's ``request_id``
   gives commit-to-sequenced latency per event, with the poll interval as resolution.
5. After each audited phase, waits for the queue to drain; at the end checks the whole log:
   ``seq`` dense from 0, every event any worker committed present exactly once, nothing else
   present, no row stranded in the queue, every leaf RFC 8785 canonical with its own ``seq``
   and its stored hash (``audits.verifier``, the standalone verifier's checks). Throughput
   for the audited phase counts until the last event of the phase is sequenced (not just
   committed), so sequencing work is never left off the clock.
6. Always stops the workers and drops the database.

Workers also time where each append goes (in the transaction vs. in the post-commit
sequencing), count SQL statements, how often they won the sequencer lock and the CPU they and
their PostgreSQL backends used (``/proc``; the server is local). ``--variants`` replays the
audited phase with a prototype change monkeypatched into the workers (see ``_install_variant``),
each against its own plain phase, so proposals are measured, not guessed; ``audits/`` is never
edited. Finally ``--profile-ops`` runs a single-process cost breakdown of each step of an append
(see ``profile_main``), which explains the ratio without the noise of an oversubscribed machine.

Human-readable lines go to stdout (progress to stderr); the LAST stdout line is one JSON object
with every figure. Exit status 0 only if the log checks pass (the throughput target is reported,
not enforced, because a loaded CI machine must not fail a build on noise).
"""
from __future__ import annotations

import argparse
import bisect
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType
from typing import IO, Any, Callable

ROOT = Path(__file__).resolve().parents[2]
# Refuse to drop anything that does not look like a benchmark database: a typo in --database
# must never cost someone their data.
DB_NAME_RE = re.compile(r"^govaudit_bench[a-z0-9_]{0,40}$")
TARGET_RATIO = 0.5
RESULT_PREFIX = "RESULT "
VARIANTS = ("current", "deferred", "splice", "timebox", "dedicated")
CHURN_EVENTS = 10_000  # events pushed through the queue table before the profile's bloat step
DEDICATED_NAP_S = 0.01  # the ``dedicated`` sequencer naps this long after every pass
QUEUE_VACUUM_S = 1.0  # the ``dedicated`` sequencer VACUUMs the queue table this often
TIMEBOX_S = 0.05  # the ``timebox`` variant's budget for a writer's after-commit sequencing
BEAT_S = 5.0  # CELERY_BEAT_SCHEDULE["audit-sequence"]: the periodic sequencer's interval


def log(message: str) -> None:
    """Progress goes to stderr so that stdout stays the summary lines plus one JSON line."""
    print(f"[appends {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# =================================================================================================
# The event every writer appends (shared by both phases, so both carry the same bytes)
# =================================================================================================

def event_parts(worker: int, n: int) -> tuple[dict[str, Any], dict[str, Any], str]:
    """Actor, payload and request id of event ``n`` of ``worker``: a realistic promotion record.

    Sized like the service's real events (a user acting through an API token, a gate decision
    with metrics as decimal strings, an artifact digest): about 550 bytes of canonical JSON. The
    request id encodes (worker, n) in 32 hex digits, the length of a real one, so the checks can
    map every leaf back to the append that produced it.
    """
    actor = {"type": "user", "id": 1000 + worker, "username": f"bench-engineer-{worker:02d}",
             "roles": ["ml-engineer", "model-owner"],
             "token": {"id": 500 + worker, "name": "ci-pipeline", "prefix": f"ga_{worker:02d}f3c9"}}
    payload = {
        "model": {"id": 4200 + n % 97, "name": f"credit-default-scorer-{n % 97:02d}"},
        "version": {"id": 90000 + n, "number": 1 + n % 40},
        "from_stage": "staging", "to_stage": "production",
        "reason": "Quarterly retrain passed the validation gate; approved by the model risk committee.",
        "metrics": {"auc": "0.9312", "ks": "0.4120", "brier": "0.1187", "psi": "0.0310"},
        "artifact_sha256": f"{(worker * 1_000_003 + n) * 2_654_435_761 % (1 << 256):064x}",
    }
    return actor, payload, f"{worker:08x}{n:024x}"


def split_request_id(request_id: str) -> tuple[int, int]:
    """(worker, n) back from a request id made by ``event_parts``."""
    return int(request_id[:8], 16), int(request_id[8:], 16)


# =================================================================================================
# Worker process (``--internal worker``): runs phases on command, answers with one RESULT line
# =================================================================================================

@dataclass
class Counters:
    """What one worker saw in one phase; summed over workers by the orchestrator."""

    ops: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    queries: int = 0
    query_seconds: float = 0.0
    txn_seconds: float = 0.0        # BEGIN .. COMMIT returned (the caller's own transaction)
    post_commit_seconds: float = 0.0  # COMMIT returned .. atomic() exited (sequencing attempts)
    lock_attempts: int = 0
    lock_wins: int = 0
    batches: int = 0
    batch_rows: int = 0
    batch_seconds: float = 0.0
    batch_cpu_seconds: float = 0.0        # this process's CPU inside sequencing batches
    batch_backend_cpu_seconds: float = 0.0  # its PostgreSQL backend's CPU inside them
    cpu_seconds: float = 0.0              # this process's CPU over the phase (user + system)
    backend_cpu_seconds: float = 0.0      # its backend's CPU over the phase
    max_post_commit_seconds: float = 0.0


def _django_setup() -> None:
    """Worker modes run as ``python tests/benchmarks/audit_appends.py``: put the project first."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "governance.settings")
    import django

    django.setup()


_TICK = os.sysconf("SC_CLK_TCK")
_BACKEND_PID: list[int] = [0]


def process_cpu(pid: int) -> float:
    """CPU seconds a local process has run (``/proc/<pid>/schedstat``, nanoseconds).

    Used on this worker's own PostgreSQL backend: the server runs on this machine, so the CPU it
    spends per append can be split from the client's, which throughput alone cannot show. Falls
    back to ``/proc/<pid>/stat`` (1/CLK_TCK resolution), and to 0.0 where ``/proc`` is not
    readable (another host, another OS).
    """
    try:
        with open(f"/proc/{pid}/schedstat", "rb") as fh:
            return int(fh.read().split()[0]) / 1e9
    except (OSError, IndexError, ValueError):
        pass
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, IndexError, ValueError):
        return 0.0


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from ``/proc/stat``."""
    try:
        with open("/proc/stat") as fh:
            values = [int(v) for v in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    total = sum(values[:8])
    return (total - idle) / _TICK, total / _TICK


def _backend_pid() -> int:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        return int(cur.fetchone()[0])


_ORIGINALS: dict[str, Any] = {}
_ACTIVE_BATCH: list[Callable[[], int]] = []


def _instrument_sequencer(counters_ref: list[Counters]) -> None:
    """Count lock attempts/wins and batch sizes/times by wrapping the module's private helpers.

    ``audit_sequence`` looks ``_try_lock`` and ``_sequence_batch`` up as module globals at call
    time, so rebinding them here instruments the real code path without copying it. The batch
    wrapper calls whichever batch function is active (the real one, or a variant's prototype).
    The wrappers cost a few ``perf_counter`` calls per call, against milliseconds of database work.
    """
    from audits import services

    _ORIGINALS.update(try_lock=services._try_lock, batch=services._sequence_batch, append=services.audit_append,
                      sequence=services.audit_sequence)
    _ACTIVE_BATCH[:] = [services._sequence_batch]
    real_try_lock: Callable[[], bool] = services._try_lock

    def try_lock() -> bool:
        got = real_try_lock()
        c = counters_ref[0]
        c.lock_attempts += 1
        c.lock_wins += int(got)
        return got

    def sequence_batch() -> int:
        t0, cpu0, bcpu0 = time.perf_counter(), time.process_time(), process_cpu(_BACKEND_PID[0])
        n = _ACTIVE_BATCH[0]()
        c = counters_ref[0]
        c.batch_seconds += time.perf_counter() - t0
        c.batch_cpu_seconds += time.process_time() - cpu0
        c.batch_backend_cpu_seconds += process_cpu(_BACKEND_PID[0]) - bcpu0
        if n:
            c.batches += 1
            c.batch_rows += n
        return n

    services._try_lock = try_lock  # type: ignore[assignment]
    services._sequence_batch = sequence_batch  # type: ignore[assignment]


def _install_variant(name: str) -> None:
    """Monkeypatch a prototype of a proposed change into this worker (never into ``audits/``).

    * ``current``: the code as it is (also undoes any earlier variant).
    * ``deferred``: writers do not sequence after commit at all (``audit_append`` registers
      nothing); a single sequencer process, started by the orchestrator, runs ``audit_sequence``
      in a loop with a 2 ms nap when idle, at normal priority, standing in for a sequencer
      worker (or a LISTEN/NOTIFY-driven one). Measures what the after-commit sequencing costs
      the writers.
    * ``splice``: ``_sequence_batch`` builds each leaf by splicing ``"seq":N`` into the queued
      canonical bytes instead of re-canonicalising, and moves the queue with one
      ``DELETE .. RETURNING``. Measures how much of the sequencer's cost is per-row Python work
      and round trips.
    * ``timebox``: ``audit_sequence`` stops taking batches once it has worked ``TIMEBOX_S``
      (and then does not re-check the queue), so no writer's request is held hostage by other
      writers' events; rows committed during its last batch go to the next committing writer or,
      when writes stop, to the periodic ``audits.sequence`` task (every ``BEAT_S``), which the
      orchestrator stands in for.
    * ``dedicated``: the deployed configuration since 2026-11-26 16:00 UTC. The real code, plus one
      process running the real ``audits.services.sequencer_run`` (what ``manage.py
      audit_sequencer`` runs): it holds the sequencer lock, so writers' after-commit attempts
      return at once, numbers batches in a loop (``DELETE .. RETURNING`` + spliced leaves), and
      VACUUMs the queue table every ``QUEUE_VACUUM_S``, at the CPU priority ``--sequencer-nice``.
      ``current`` is then the fallback a deployment sees when that process is down.
    """
    from audits import services

    services.audit_append = _ORIGINALS["append"]  # type: ignore[assignment]
    services.audit_sequence = _ORIGINALS["sequence"]  # type: ignore[assignment]
    _ACTIVE_BATCH[:] = [_ORIGINALS["batch"]]
    if name == "current":
        return
    if name == "deferred":
        real_append = _ORIGINALS["append"]

        def audit_append_no_sequence(**kwargs: Any) -> None:
            from django.db import transaction

            real_on_commit = transaction.on_commit
            transaction.on_commit = lambda func, using=None, robust=False: None  # type: ignore[assignment]
            try:
                real_append(**kwargs)
            finally:
                transaction.on_commit = real_on_commit  # type: ignore[assignment]

        services.audit_append = audit_append_no_sequence  # type: ignore[assignment]
        return
    if name == "splice":
        _ACTIVE_BATCH[:] = [_splice_sequence_batch]
        return
    if name == "timebox":
        services.audit_sequence = _timeboxed_audit_sequence  # type: ignore[assignment]
        return
    if name == "dedicated":
        return  # the real code: audits.services.sequencer_run in the sequencer process
    raise ValueError(f"unknown variant {name}")


def _lean_audit_append(*, actor: dict[str, Any], action: str, target: Any, payload: dict[str, Any]) -> None:
    """``audit_append`` minus the ORM and minus the after-commit callback (``dedicated`` variant).

    Builds exactly the same body; the raw ``INSERT`` skips model instantiation, the SQL compiler
    and ``RETURNING id`` (nobody reads it).
    """
    from django.db import connection
    from django.utils import timezone as dj_timezone

    from audits.context import request_id_var
    from audits.core.canonical import canonical_bytes
    from audits.services import format_ts

    body = {"ts": format_ts(dj_timezone.now()), "actor": actor, "action": action,
            "target": target.as_dict() if target else None, "request_id": request_id_var.get(), "payload": payload}
    with connection.cursor() as cur:
        cur.execute("INSERT INTO audits_auditpending (body) VALUES (%s)", [canonical_bytes(body)])


def _timeboxed_audit_sequence(*, inline: bool = False) -> int:
    """``audit_sequence`` with a work budget: the ``timebox`` variant (see ``_install_variant``).

    Same lock protocol as the original; the only change is that after ``TIMEBOX_S`` of batches
    the holder unlocks and returns without re-checking the queue.
    """
    from django.db import connection, transaction

    from audits import services
    from audits.models import AuditPending

    if connection.in_atomic_block and connection.vendor == "postgresql" and not inline:
        transaction.on_commit(services.audit_sequence)
        return 0
    total = 0
    deadline = time.perf_counter() + TIMEBOX_S
    while True:
        if not services._try_lock():
            return total
        try:
            while (n := services._sequence_batch()):
                total += n
                if time.perf_counter() >= deadline:
                    break
        finally:
            services._unlock()
        if time.perf_counter() >= deadline or not AuditPending.objects.exists():
            return total


def _splice_sequence_batch() -> int:
    """Prototype sequencer batch: one DELETE .. RETURNING, leaves by byte splicing.

    A queued body is canonical JSON whose top-level keys are, sorted, ``action, actor, payload,
    request_id, target, ts``; the leaf is the same object plus ``seq``, which sorts between
    ``request_id`` and ``target``. So ``leaf = body[:i] + b',"seq":N' + body[i:]`` where ``i`` is
    the position of the top-level ``,"target":``: the *last* occurrence, because only ``target``
    and ``ts`` follow it and neither can contain that byte sequence (quotes inside strings are
    escaped; a target object has no ``target`` key). This keeps canonical form by construction
    for today's event shape (a new top-level key sorting after ``seq`` would need the general
    path); the benchmark's final log check re-parses and re-hashes every leaf anyway.
    """
    import hashlib
    from datetime import datetime as _dt, timezone as _tz

    from django.db import connection, transaction

    from audits.models import AuditEvent

    with transaction.atomic():
        with connection.cursor() as cur:
            cur.execute(
                "DELETE FROM audits_auditpending WHERE id IN (SELECT id FROM audits_auditpending ORDER BY id "
                "LIMIT %s FOR UPDATE) RETURNING id, body", [2000])
            rows = sorted(cur.fetchall())
            if not rows:
                return 0
            cur.execute("SELECT max(seq) FROM audits_auditevent")
            last = cur.fetchone()[0]
        seq = 0 if last is None else last + 1
        events = []
        for _, raw in rows:
            body_bytes = bytes(raw)
            body = json.loads(body_bytes)
            i = body_bytes.rindex(b',"target":')
            leaf = b"%s,\"seq\":%d%s" % (body_bytes[:i], seq, body_bytes[i:])
            actor = body.get("actor") or {}
            target = body.get("target") or {}
            events.append(AuditEvent(
                seq=seq, ts=_dt.strptime(body["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=_tz.utc),
                action=body["action"], actor_id=actor.get("id") if actor.get("type") == "user" else None,
                actor_name=str(actor.get("username") or actor.get("name") or ""),
                target_type=target.get("type", ""), target_id=str(target.get("id", "")),
                request_id=body.get("request_id") or "", leaf=leaf,
                leaf_hash=hashlib.sha256(b"\x00" + leaf).digest()))
            seq += 1
        AuditEvent.objects.bulk_create(events)
        return len(events)


def _run_phase(command: dict[str, Any], worker: int, counters_ref: list[Counters]) -> dict[str, Any]:
    """One phase in this worker: loop until the deadline, then report counts, timings, commits."""
    from django.db import connection, transaction

    from audits.context import request_id_var
    from audits.core.canonical import canonical_bytes
    from audits.services import format_ts
    from django.utils import timezone as dj_timezone

    phase: str = command["phase"]
    start_at: float = command["start_at"]
    end_at = start_at + float(command["seconds"])
    first_n: int = command["first_n"]
    counters = Counters()
    counters_ref[0] = counters
    commits: list[tuple[int, float]] = []

    def count_queries(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            counters.queries += 1
            counters.query_seconds += time.perf_counter() - t0

    from audits import services  # looked up per call so a variant's rebinding is used

    n = first_n
    _BACKEND_PID[0] = _backend_pid()  # the same connection all phase (persistent)
    delay = start_at - time.time()
    if delay > 0:
        time.sleep(delay)
    cpu0, bcpu0 = time.process_time(), process_cpu(_BACKEND_PID[0])
    began = time.time()
    with connection.execute_wrapper(count_queries):
        while time.time() < end_at:
            actor, payload, request_id = event_parts(worker, n)
            t0 = time.perf_counter()
            committed: list[float] = []
            try:
                if phase == "plain":
                    body = canonical_bytes({"ts": format_ts(dj_timezone.now()), "actor": actor,
                                            "action": "bench.append", "target": None, "request_id": request_id,
                                            "payload": payload})
                    with transaction.atomic():
                        with connection.cursor() as cur:
                            cur.execute("INSERT INTO bench_plain (body) VALUES (%s)", [body])
                    committed.append(time.perf_counter())
                else:
                    token = request_id_var.set(request_id)
                    try:
                        with transaction.atomic():
                            # Registered before audit_append's own callback, so it runs first:
                            # right after COMMIT returned, before any sequencing attempt.
                            transaction.on_commit(lambda: committed.append(time.perf_counter()))
                            services.audit_append(actor=actor, action="bench.append", target=None, payload=payload)
                    finally:
                        request_id_var.reset(token)
            except Exception as exc:  # noqa: BLE001 - counted and reported; the phase goes on
                counters.errors += 1
                if len(counters.error_samples) < 3:
                    counters.error_samples.append(f"{type(exc).__name__}: {exc}"[:300])
                n += 1
                continue
            t2 = time.perf_counter()
            if committed:
                t1 = committed[0]
                counters.txn_seconds += t1 - t0
                post = t2 - t1
                counters.post_commit_seconds += post
                counters.max_post_commit_seconds = max(counters.max_post_commit_seconds, post)
                # perf_counter -> wall clock, for comparison with the poller's clock.
                commits.append((n, time.time() - (t2 - t1)))
            counters.ops += 1
            n += 1
    finished = time.time()
    counters.cpu_seconds = time.process_time() - cpu0
    counters.backend_cpu_seconds = process_cpu(_BACKEND_PID[0]) - bcpu0
    return {"worker": worker, "phase": phase, "began": began, "finished": finished, "next_n": n,
            "counters": counters.__dict__, "commits": commits}


def _sequencer_loop(stop_at: float, dedicated: bool, nice: int, counters_ref: list[Counters]) -> dict[str, Any]:
    """The single sequencer process of the ``deferred`` and ``dedicated`` variants.

    ``deferred``: ``audit_sequence()`` in a loop, napping 2 ms whenever a pass found nothing.

    ``dedicated`` (the proposal): take the sequencer lock once and keep it (a writer's
    after-commit attempt or the periodic task then steps aside at once), run one batch per pass,
    nap ``DEDICATED_NAP_S`` after any batch smaller than the maximum so the next one gathers
    events instead of paying a transaction per event or two, and VACUUM the queue table every
    ``QUEUE_VACUUM_S``. Each pass is then 5 round trips instead of about 12 (lock, batch, empty
    batch, unlock, exists). ``nice`` < 0 raises the process's CPU priority above the writers'.
    """
    from django.db import connection

    from audits import services

    reniced = False
    if nice:
        try:
            os.nice(nice)
            reniced = True
        except OSError:
            pass
    counters = Counters()
    counters_ref[0] = counters
    moved = passes = 0
    _BACKEND_PID[0] = _backend_pid()
    cpu0, bcpu0 = time.process_time(), process_cpu(_BACKEND_PID[0])
    if dedicated:
        # The deployed sequencer itself (manage.py audit_sequencer runs exactly this).
        def count(n: int) -> None:
            nonlocal passes
            passes += 1

        moved = services.sequencer_run(should_stop=lambda: time.time() >= stop_at, nap=DEDICATED_NAP_S,
                                       vacuum_every=QUEUE_VACUUM_S, on_batch=count)
    else:
        try:
            while time.time() < stop_at:
                got = services.audit_sequence()
                moved += got
                passes += 1
                if not got:
                    time.sleep(0.002)
        finally:
            moved += services.audit_sequence()
    counters.cpu_seconds = time.process_time() - cpu0
    counters.backend_cpu_seconds = process_cpu(_BACKEND_PID[0]) - bcpu0
    if reniced:
        try:
            os.nice(-nice)  # back to normal priority (we only lowered our own nice value)
        except OSError:
            pass
    return {"moved": moved, "passes": passes, "reniced": reniced, "counters": counters.__dict__}


def profile_main(ops: int) -> dict[str, Any]:
    """Cost of each step of an append, one process, no contention: where the ratio goes.

    Under 16 writers on 2 cores every figure is inflated by scheduling and by other jobs; here
    each step runs ``ops`` times in one process with nothing else of ours running, timed in wall
    clock, in this process's CPU and in its PostgreSQL backend's CPU, in 5 interleaved rounds
    (median per step, so a burst of foreign load spoils one round of each step, not one step).
    The steps add up to the two paths the throughput phases compare:

    * ``plain``: body built + ``atomic`` + raw ``INSERT INTO bench_plain``.
    * ``orm_insert``: body built + ``atomic`` + ``AuditPending.objects.create`` (no callback):
      what the ORM costs over a raw cursor.
    * ``append_no_sequencing``: ``atomic`` + ``audit_append`` with its ``on_commit`` suppressed.
    * ``append_nonholder``: the real ``audit_append`` while another session holds the sequencer
      lock, so the post-commit ``pg_try_advisory_lock`` fails and returns: what nearly every one
      of 16 concurrent writers pays (the throughput phases show one lock win per phase).
    * ``sequencing_per_event_b100`` / ``_b2000``: ``audit_sequence()`` moving queued events in
      batches of 100 (the size seen under load) and 2000 (the maximum), per event.
    * ``append_raw_insert``: ``audit_append``'s body through a raw ``INSERT`` (the ``dedicated``
      variant's writer side).
    * ``sequencing_splice_per_event_b*``: the same with the ``splice`` batch prototype.
    * ``append_holder_alone``: the real path when nobody else writes: each append sequences a
      batch of one itself; measured after ``CHURN_EVENTS`` events went through the queue table
      since its last VACUUM (about 10 s of load at this machine's rate; with autovacuum off,
      as on the benchmark server, dead rows stay until someone VACUUMs), and again after VACUUM.

    A cProfile of ``append_nonholder`` (timed in process CPU, not wall clock, so waiting for the
    WAL flush does not drown everything) names the Python hot spots.
    """
    import cProfile
    import io
    import pstats

    _django_setup()
    import psycopg
    from django.db import connection, transaction

    from audits import services
    from audits.context import request_id_var
    from audits.core.canonical import canonical_bytes
    from audits.models import AuditPending
    from django.utils import timezone as dj_timezone

    backend = _backend_pid()
    _ORIGINALS_BATCH[:] = [services._sequence_batch]
    # Count server round trips: every statement is sent by ClientCursor._execute_send (Django's
    # psycopg cursors are client-side binding) and every BEGIN/COMMIT by _exec_command. Under
    # 16-way oversubscription of 2 cores each round trip costs two context switches on top of
    # its CPU, so the count explains part of the gap the single-process CPU figures do not.
    from psycopg import _connection_base, client_cursor

    round_trips = [0]
    real_exec = _connection_base.BaseConnection._exec_command
    real_send = client_cursor.ClientCursor._execute_send

    def counting_exec(self: Any, *args: Any, **kwargs: Any) -> Any:
        round_trips[0] += 1
        return real_exec(self, *args, **kwargs)

    def counting_send(self: Any, *args: Any, **kwargs: Any) -> Any:
        round_trips[0] += 1
        return real_send(self, *args, **kwargs)

    _connection_base.BaseConnection._exec_command = counting_exec  # type: ignore[method-assign]
    client_cursor.ClientCursor._execute_send = counting_send  # type: ignore[method-assign]
    n_box = [10_000_000]

    def event() -> tuple[dict[str, Any], dict[str, Any], str]:
        n_box[0] += 1
        return event_parts(99, n_box[0])

    def body_of(actor: dict[str, Any], payload: dict[str, Any], rid: str) -> bytes:
        return canonical_bytes({"ts": services.format_ts(dj_timezone.now()), "actor": actor, "action": "bench.append",
                                "target": None, "request_id": rid, "payload": payload})

    def plain() -> None:
        body = body_of(*event())
        with transaction.atomic():
            with connection.cursor() as cur:
                cur.execute("INSERT INTO bench_plain (body) VALUES (%s)", [body])

    def orm_insert() -> None:
        body = body_of(*event())
        with transaction.atomic():
            AuditPending.objects.create(body=body)

    def append(suppress: bool) -> None:
        actor, payload, rid = event()
        token = request_id_var.set(rid)
        real_on_commit = transaction.on_commit
        try:
            with transaction.atomic():
                if suppress:
                    transaction.on_commit = lambda func, using=None, robust=False: None  # type: ignore[assignment]
                try:
                    services.audit_append(actor=actor, action="bench.append", target=None, payload=payload)
                finally:
                    transaction.on_commit = real_on_commit  # type: ignore[assignment]
        finally:
            request_id_var.reset(token)

    def raw_insert() -> None:
        actor, payload, rid = event()
        token = request_id_var.set(rid)
        try:
            with transaction.atomic():
                _lean_audit_append(actor=actor, action="bench.append", target=None, payload=payload)
        finally:
            request_id_var.reset(token)

    def vacuum_queue() -> None:
        with connection.cursor() as cur:
            cur.execute("VACUUM audits_auditpending")

    def timed(fn: Callable[[], Any], count: int) -> tuple[float, float, float, float]:
        r0 = round_trips[0]
        w0, c0, b0 = time.perf_counter(), time.process_time(), process_cpu(backend)
        for _ in range(count):
            fn()
        w, c, b = time.perf_counter() - w0, time.process_time() - c0, process_cpu(backend) - b0
        return w, c, b, float(round_trips[0] - r0)

    def sequencing(batch: int, batch_fn: Callable[[], int]) -> Callable[[int], tuple[float, float, float, float]]:
        """Queue ``batch`` events (untimed), then time only ``audit_sequence`` moving them."""
        def run(count: int) -> tuple[float, float, float, float]:
            total = [0.0, 0.0, 0.0, 0.0]
            services._sequence_batch = batch_fn  # type: ignore[assignment]
            try:
                for _ in range(max(1, count // batch)):
                    vacuum_queue()  # the design's own cost, not the dead rows' (measured below)
                    _fill_only(batch, event)
                    for i, v in enumerate(timed(services.audit_sequence, 1)):  # noqa: B023
                        total[i] += v
            finally:
                services._sequence_batch = _ORIGINALS_BATCH[0]  # type: ignore[assignment]
            return total[0], total[1], total[2], total[3]
        return run

    holder = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)

    def nonholder(count: int) -> tuple[float, float, float, float]:
        # Another session holds the sequencer lock: every try_lock fails, as for nearly every
        # append under 16 writers. Released at once so the sequencing steps can run.
        holder.execute("SELECT pg_advisory_lock(%s)", [services._SEQUENCER_LOCK_KEY])
        try:
            return timed(lambda: append(False), count)
        finally:
            holder.execute("SELECT pg_advisory_unlock(%s)", [services._SEQUENCER_LOCK_KEY])
            services.audit_sequence()

    steps: dict[str, Callable[[int], tuple[float, float, float, float]]] = {
        "plain": lambda c: timed(plain, c),
        "orm_insert": lambda c: timed(orm_insert, c),
        "append_raw_insert": lambda c: timed(raw_insert, c),
        "append_no_sequencing": lambda c: timed(lambda: append(True), c),
        "append_nonholder": nonholder,
        "sequencing_per_event_b100": sequencing(100, _ORIGINALS_BATCH[0]),
        "sequencing_per_event_b2000": sequencing(2000, _ORIGINALS_BATCH[0]),
        "sequencing_splice_per_event_b100": sequencing(100, _splice_sequence_batch),
        "sequencing_splice_per_event_b2000": sequencing(2000, _splice_sequence_batch),
    }
    # Interleaved rounds, median per step: a burst of load from other jobs hits one round of
    # every step rather than all rounds of one step.
    rounds = 5
    per_round = max(100, ops // rounds)
    samples: dict[str, list[tuple[float, float, float, float]]] = {k: [] for k in steps}
    for name, step in steps.items():  # warm-up: statement paths, caches, the first VACUUM
        step(min(per_round, 100) if not name.startswith("sequencing") else per_round)
    services.audit_sequence()
    for _ in range(rounds):
        for name, step in steps.items():
            w, c, b, rt = step(per_round)
            units = max(per_round, int(name.rsplit("_b", 1)[1])) if name.startswith("sequencing") else per_round
            samples[name].append((w / units, c / units, b / units, rt / units))
        services.audit_sequence()
    out: dict[str, Any] = {"ops": per_round * rounds, "rounds": rounds}
    for name, values in samples.items():
        out[name] = {key: round(sorted(v[i] for v in values)[len(values) // 2] * scale, 2 if i == 3 else 1)
                     for i, (key, scale) in enumerate((("wall_us", 1e6), ("client_cpu_us", 1e6),
                                                       ("backend_cpu_us", 1e6), ("round_trips", 1)))}

    # CPU-time timer: wall time would be all psycopg ``wait`` (the WAL flush at COMMIT).
    holder.execute("SELECT pg_advisory_lock(%s)", [services._SEQUENCER_LOCK_KEY])
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    for _ in range(per_round):
        append(False)
    profiler.disable()
    holder.execute("SELECT pg_advisory_unlock(%s)", [services._SEQUENCER_LOCK_KEY])
    holder.close()
    services.audit_sequence()

    def queue_pages() -> int:
        with connection.cursor() as cur:
            cur.execute("SELECT pg_relation_size('audits_auditpending') / current_setting('block_size')::int")
            return int(cur.fetchone()[0])

    # With autovacuum off, a churned queue table keeps its dead rows, and every sequencing pass
    # scans past them (exists() is a sequential scan, the batch SELECT walks the primary key over
    # dead entries). Same step after CHURN_EVENTS events went through, and after VACUUM.
    def once(fn: Callable[[], Any], count: int) -> dict[str, float]:
        w, c, b, rt = timed(fn, count)
        return {"wall_us": round(w / count * 1e6, 1), "client_cpu_us": round(c / count * 1e6, 1),
                "backend_cpu_us": round(b / count * 1e6, 1), "round_trips": round(rt / count, 2)}

    vacuum_queue()
    for _ in range(CHURN_EVENTS // 2000):
        _fill_only(2000, event)
        services.audit_sequence()
    out["queue_pages_before_vacuum"] = queue_pages()
    out["append_holder_alone"] = once(lambda: append(False), per_round)
    vacuum_queue()
    out["queue_pages_after_vacuum"] = queue_pages()
    out["append_holder_alone_vacuumed"] = once(lambda: append(False), per_round)

    def top(sort: str, count: int) -> list[str]:
        stream = io.StringIO()
        pstats.Stats(profiler, stream=stream).sort_stats(sort).print_stats(count)
        lines = [ln for ln in stream.getvalue().splitlines() if ln.strip()]
        start = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls")), 0)
        return [re.sub(r"\s+", " ", ln.strip()).replace(str(ROOT) + "/", "")[:150]
                for ln in lines[start:start + count + 1]]

    # Cumulative order shows which step of the append the CPU belongs to (ORM create, commit,
    # the after-commit lock attempt); own-time order shows the leaf functions it ends up in.
    out["cprofile_nonholder_cumulative"] = top("cumulative", 22)
    out["cprofile_nonholder_tottime"] = top("tottime", 10)
    return out


_ORIGINALS_BATCH: list[Callable[[], int]] = []


def _fill_only(batch: int, event: Callable[[], tuple[dict[str, Any], dict[str, Any], str]]) -> None:
    """Queue ``batch`` events in one transaction without sequencing (the profile's fill step)."""
    from django.db import transaction

    from audits import services

    with transaction.atomic():
        real_on_commit = transaction.on_commit
        transaction.on_commit = lambda func, using=None, robust=False: None  # type: ignore[assignment]
        try:
            for _ in range(batch):
                actor, payload, rid = event()
                services.audit_append(actor=actor, action="bench.append", target=None, payload=payload)
        finally:
            transaction.on_commit = real_on_commit  # type: ignore[assignment]


def worker_main(worker: int) -> int:
    """Serve phase commands from stdin until ``quit``; one RESULT line per command on stdout."""
    _django_setup()
    counters_ref: list[Counters] = [Counters()]
    _instrument_sequencer(counters_ref)
    from django.db import connection

    connection.ensure_connection()
    print(RESULT_PREFIX + json.dumps({"ready": worker}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        kind = command.get("kind")
        if kind == "quit":
            break
        if kind == "variant":
            _install_variant(command["name"])
            answer: dict[str, Any] = {"variant": command["name"]}
        elif kind == "sequencer":
            answer = _sequencer_loop(float(command["stop_at"]), bool(command["dedicated"]), int(command["nice"]),
                                     counters_ref)
        elif kind == "drain":
            from audits.services import audit_sequence

            answer = {"moved": audit_sequence()}
        else:
            answer = _run_phase(command, worker, counters_ref)
        print(RESULT_PREFIX + json.dumps(answer), flush=True)
    connection.close()
    return 0


# =================================================================================================
# Orchestration (outside Django)
# =================================================================================================

def _bench_env(database_url: str, data_dir: str) -> dict[str, str]:
    """Development settings on the benchmark database, a throw-away data/key dir, tasks in-process."""
    env = dict(os.environ)
    for name in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "GOVAUDIT_STORAGE_DIR", "SECRET_KEY",
                 "AUDIT_SIGNING_KEY"):
        env.pop(name, None)
    env.update({
        "DATABASE_URL": database_url,
        "GOVAUDIT_DATA_DIR": data_dir,
        "GOVAUDIT_KEY_DIR": str(Path(data_dir) / "keys"),
        "GOVAUDIT_ENV": "development",
        "DJANGO_SETTINGS_MODULE": "governance.settings",
        "DEBUG": "0",  # DEBUG keeps every query in memory: it would distort speed and memory
        "PYTHONUNBUFFERED": "1",
        "LOG_LEVEL": "WARNING",
    })
    return env


def _admin_connect(url: str) -> Any:
    import psycopg

    return psycopg.connect(url, autocommit=True, connect_timeout=10)


def _drop_database(admin_url: str, name: str) -> None:
    from psycopg import sql

    with _admin_connect(admin_url) as conn:
        # FORCE: a worker killed mid-phase may leave a session behind.
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _create_database(admin_url: str, name: str) -> dict[str, str]:
    from psycopg import sql

    _drop_database(admin_url, name)
    with _admin_connect(admin_url) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        settings = {r[0]: r[1] for r in conn.execute(
            "SELECT name, setting FROM pg_settings WHERE name IN ('server_version', 'synchronous_commit', "
            "'fsync', 'autovacuum', 'shared_buffers', 'max_connections', 'commit_delay')").fetchall()}
    return settings


def _migrate(env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "--noinput"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"migrate failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0


@dataclass
class Worker:
    """A worker process we started, talking JSON lines over its stdin/stdout."""

    index: int
    proc: subprocess.Popen[str]
    stderr_path: Path

    def send(self, command: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()

    def receive(self, timeout: float) -> dict[str, Any]:
        """The next RESULT line (other stdout lines, if any library prints, are skipped)."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        box: list[str] = []
        reader = threading.Thread(target=self._read_result, args=(self.proc.stdout, box), daemon=True)
        reader.start()
        reader.join(max(0.0, deadline - time.monotonic()))
        if not box:
            raise RuntimeError(f"worker {self.index} gave no answer within {timeout:.0f} s "
                               f"(exit {self.proc.poll()}):\n{self.stderr_tail()}")
        return json.loads(box[0])

    @staticmethod
    def _read_result(stream: IO[str], box: list[str]) -> None:
        for line in stream:
            if line.startswith(RESULT_PREFIX):
                box.append(line[len(RESULT_PREFIX):])
                return

    def stderr_tail(self, chars: int = 2000) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def _start_workers(count: int, env: dict[str, str], data_dir: str, label: str = "writer") -> list[Worker]:
    """Start ``count`` worker processes and wait until each has a database connection."""
    workers: list[Worker] = []
    for i in range(count):
        err_path = Path(data_dir) / f"{label}-{i:02d}.stderr"
        with open(err_path, "w") as err:
            proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--internal", "worker",
                                     "--worker", str(i)], cwd=ROOT, env=env, stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=err, text=True, bufsize=1)
        workers.append(Worker(i, proc, err_path))
    for w in workers:  # django.setup() of N processes on 2 cores takes a while
        w.receive(timeout=180)
    return workers


def _stop_workers(workers: list[Worker]) -> None:
    """Ask each worker we started to quit; kill (by its own pid) any that does not."""
    for w in workers:
        try:
            if w.proc.poll() is None:
                w.send({"kind": "quit"})
        except (BrokenPipeError, OSError):
            pass
    for w in workers:
        try:
            w.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            w.proc.kill()
            w.proc.wait(timeout=10)


class Poller(threading.Thread):
    """Samples ``max(seq)`` every ``interval`` s (and the queue depth every tenth time).

    It runs in plain phases too (there on ``max(id)`` of ``bench_plain``), so that its own load
    on a 2-core machine is the same in both phases and does not bias the ratio.

    Each sample keeps the wall-clock time just before the query was sent and just after the answer
    came back: an event first seen in sample k was committed to the log after sample k-1 was sent
    and before sample k's answer arrived, which bounds its sequencing time from both sides.
    """

    def __init__(self, url: str, interval: float, table: str = "audits_auditevent", column: str = "seq") -> None:
        super().__init__(daemon=True)
        self.url = url
        self.query = f"SELECT COALESCE(max({column}), -1) FROM {table}"
        self.interval = interval
        self.stop_event = threading.Event()
        self.samples: list[tuple[float, float, int]] = []  # (sent, received, max_seq)
        self.depths: list[tuple[float, int]] = []
        self.error: str | None = None

    def run(self) -> None:
        try:
            with _admin_connect(self.url) as conn:
                i = 0
                while not self.stop_event.is_set():
                    sent = time.time()
                    row = conn.execute(self.query).fetchone()
                    received = time.time()
                    self.samples.append((sent, received, int(row[0]) if row else -1))
                    if i % 10 == 0:
                        depth = conn.execute("SELECT count(*) FROM audits_auditpending").fetchone()
                        self.depths.append((received, int(depth[0]) if depth else 0))
                    i += 1
                    self.stop_event.wait(self.interval)
        except Exception as exc:  # noqa: BLE001 - reported in the results
            self.error = f"{type(exc).__name__}: {exc}"


def _pct(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list (q in [0, 100])."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, math.ceil(q / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


@dataclass
class PhaseResult:
    """One phase of one round, summed over workers."""

    name: str
    variant: str
    ops: int
    errors: int
    window_s: float
    commit_rate: float
    sequenced_window_s: float | None = None
    rate: float = 0.0
    drain_s: float | None = None
    counters: dict[str, float] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)
    max_queue_depth: int | None = None
    cpu: dict[str, float] = field(default_factory=dict)
    stranded: int = 0  # rows still queued when writers stopped and the wait ran out
    queue_depth_timeline: list[int] = field(default_factory=list)  # depth at each second of the window
    sequencer: dict[str, Any] = field(default_factory=dict)  # the dedicated process, if any
    writers: int = 0
    error_samples: list[str] = field(default_factory=list)


class MachineSampler(threading.Thread):
    """Reads the machine's busy CPU at the phase's start and end instants (``/proc/stat``).

    Subtracting what our writers and their backends used leaves what everything else used in
    the same window (PostgreSQL's WAL writer and checkpointer, the poller, and any other job on
    a shared machine): a phase with a large "others" figure was measured under foreign load.
    """

    def __init__(self, start_at: float, seconds: float) -> None:
        super().__init__(daemon=True)
        self.start_at = start_at
        self.seconds = seconds
        self.busy = 0.0

    def run(self) -> None:
        time.sleep(max(0.0, self.start_at - time.time()))
        b0, _ = machine_cpu()
        time.sleep(self.seconds)
        b1, _ = machine_cpu()
        self.busy = b1 - b0


def _cpu_figures(counters: dict[str, float], ops: int, sampler: MachineSampler) -> dict[str, float]:
    """CPU per operation (client, backend) and core usage over the phase (ours, machine, others)."""
    ops = max(1, ops)
    ours = counters.get("cpu_seconds", 0.0) + counters.get("backend_cpu_seconds", 0.0)
    return {
        "client_ms_per_op": round(counters.get("cpu_seconds", 0.0) / ops * 1000, 4),
        "backend_ms_per_op": round(counters.get("backend_cpu_seconds", 0.0) / ops * 1000, 4),
        "total_ms_per_op": round(ours / ops * 1000, 4),
        "sequencing_client_ms_per_op": round(counters.get("batch_cpu_seconds", 0.0) / ops * 1000, 4),
        "sequencing_backend_ms_per_op": round(counters.get("batch_backend_cpu_seconds", 0.0) / ops * 1000, 4),
        "machine_busy_cores": round(sampler.busy / sampler.seconds, 3),
        "ours_cores": round(ours / sampler.seconds, 3),
        "others_cores": round(max(0.0, sampler.busy - ours) / sampler.seconds, 3),
    }


def _sum_counters(results: list[dict[str, Any]]) -> dict[str, float]:
    total: dict[str, float] = {}
    for r in results:
        for key, value in r["counters"].items():
            if key == "error_samples":
                continue
            if key.startswith("max_"):
                total[key] = max(total.get(key, 0.0), value)
            else:
                total[key] = total.get(key, 0) + value
    return total


class Bench:
    """State shared by the phases of one run: workers, database URLs, next event numbers."""

    def __init__(self, workers: list[Worker], db_url: str, args: argparse.Namespace) -> None:
        self.workers = workers
        self.db_url = db_url
        self.args = args
        self.next_n = [0] * len(workers)
        self.expected: dict[str, int] = {}  # request_id -> committed once (checked against the log)
        self.commit_at: dict[str, float] = {}
        self.seen_max_seq = -1

    def settle(self) -> None:
        """VACUUM (the server's autovacuum is off) and CHECKPOINT, so no phase pays for another."""
        with _admin_connect(self.db_url) as conn:
            conn.execute("VACUUM (ANALYZE) bench_plain, audits_auditpending, audits_auditevent")
            conn.execute("CHECKPOINT")

    def _command_all(self, command: dict[str, Any], writers: int | None = None) -> list[dict[str, Any]]:
        """Send a phase to the first ``writers`` workers (all by default) and collect their answers."""
        chosen = self.workers[:writers] if writers else self.workers
        for w in chosen:
            w.send({**command, "first_n": self.next_n[w.index]})
        timeout = float(command.get("seconds", 0)) + 120
        return [w.receive(timeout=timeout) for w in chosen]

    def set_variant(self, name: str) -> None:
        for w in self.workers:
            w.send({"kind": "variant", "name": name})
        for w in self.workers:
            w.receive(timeout=30)

    def run_plain(self, seconds: float, writers: int | None = None) -> PhaseResult:
        self.settle()
        start_at = time.time() + 1.0
        sampler = MachineSampler(start_at, seconds)
        sampler.start()
        poller = Poller(self.db_url, self.args.poll_ms / 1000, "bench_plain", "id")
        poller.start()
        results = self._command_all({"kind": "phase", "phase": "plain", "start_at": start_at, "seconds": seconds},
                                    writers)
        poller.stop_event.set()
        poller.join(10)
        sampler.join()
        for r in results:
            self.next_n[r["worker"]] = r["next_n"]
        ops = sum(r["counters"]["ops"] for r in results)
        window = max(r["finished"] for r in results) - start_at
        counters = _sum_counters(results)
        return PhaseResult("plain", "-", ops, int(counters["errors"]), round(window, 3), ops / window,
                           rate=ops / window, counters=counters, cpu=_cpu_figures(counters, ops, sampler),
                           error_samples=[s for r in results for s in r["counters"]["error_samples"]],
                           writers=len(results))

    def run_audited(self, seconds: float, variant: str, sequencer: Worker | None,
                    writers: int | None = None) -> PhaseResult:
        """One audited phase; the log is checked and latencies joined before returning."""
        self.settle()
        poller = Poller(self.db_url, self.args.poll_ms / 1000)
        start_at = time.time() + 1.0
        sampler = MachineSampler(start_at, seconds)
        sampler.start()
        poller.start()
        if sequencer is not None:
            sequencer.send({"kind": "sequencer", "stop_at": start_at + seconds + 5.0,
                            "dedicated": variant == "dedicated",
                            "nice": self.args.sequencer_nice if variant == "dedicated" else 0})
        results = self._command_all({"kind": "phase", "phase": "audited", "start_at": start_at, "seconds": seconds},
                                    writers)
        finished = max(r["finished"] for r in results)
        for r in results:
            self.next_n[r["worker"]] = r["next_n"]
            for n, at in r["commits"]:
                rid = f"{r['worker']:08x}{n:024x}"
                self.expected[rid] = self.expected.get(rid, 0) + 1
                self.commit_at[rid] = at
        ops = sum(r["counters"]["ops"] for r in results)
        n_writers = len(results)
        # The current design promises no stranded rows: wait long before calling it a failure.
        # The timebox variant relies on the periodic task for the tail: stand in for it.
        drained_at = self._wait_drained(BEAT_S if variant == "timebox" else self.args.drain_timeout)
        stranded = 0
        if drained_at is None:
            stranded = self._pending()
            self.workers[0].send({"kind": "drain"})
            self.workers[0].receive(timeout=120)
            drained_at = self._wait_drained(self.args.drain_timeout)
        poller.stop_event.set()
        poller.join(10)
        sampler.join()
        seq_info: dict[str, Any] = {}
        if sequencer is not None:
            answer = sequencer.receive(timeout=60)
            seq_info = {k: answer[k] for k in ("moved", "passes", "reniced") if k in answer}
            results.append({**answer, "finished": finished})
        counters = _sum_counters(results)
        window = finished - start_at
        result = PhaseResult("audited", variant, ops, int(counters["errors"]), round(window, 3), ops / window,
                             counters=counters, cpu=_cpu_figures(counters, ops, sampler),
                             error_samples=[s for r in results for s in r["counters"]["error_samples"]])
        if poller.error:
            raise RuntimeError(f"poller failed: {poller.error}")
        new_rows = self._new_rows()
        result.latency_ms = self._latencies(new_rows, poller.samples)
        seq_done = drained_at if drained_at is not None else time.time()
        result.drain_s = round(seq_done - finished, 3) if drained_at is not None else None
        result.sequenced_window_s = round(max(seq_done, finished) - start_at, 3)
        result.rate = ops / result.sequenced_window_s
        result.max_queue_depth = max((d for _, d in poller.depths), default=0)
        # Queue depth at each second of the window: a queue still growing at the end means the
        # sequencer was not keeping up, so latency would keep growing with a longer phase.
        timeline: list[int] = []
        for k in range(1, int(seconds) + 1):
            at = start_at + k
            before = [d for t, d in poller.depths if t <= at]
            timeline.append(before[-1] if before else 0)
        result.queue_depth_timeline = timeline
        result.sequencer = seq_info
        result.writers = n_writers
        result.stranded = stranded
        return result

    def _pending(self) -> int:
        with _admin_connect(self.db_url) as conn:
            row = conn.execute("SELECT count(*) FROM audits_auditpending").fetchone()
        return int(row[0]) if row else 0

    def _wait_drained(self, timeout: float) -> float | None:
        """Wall time at which the queue was first seen empty, or None after ``timeout`` seconds."""
        deadline = time.time() + timeout
        with _admin_connect(self.db_url) as conn:
            while time.time() < deadline:
                row = conn.execute("SELECT count(*) FROM audits_auditpending").fetchone()
                if row is not None and row[0] == 0:
                    return time.time()
                time.sleep(0.005)
        return None

    def _new_rows(self) -> list[tuple[int, str]]:
        with _admin_connect(self.db_url) as conn:
            rows = conn.execute("SELECT seq, request_id FROM audits_auditevent WHERE seq > %s ORDER BY seq",
                                [self.seen_max_seq]).fetchall()
        if rows:
            self.seen_max_seq = int(rows[-1][0])
        return [(int(s), str(r)) for s, r in rows]

    def _latencies(self, rows: list[tuple[int, str]], samples: list[tuple[float, float, int]]) -> dict[str, float]:
        """Commit-to-sequenced per event: upper bound (first poll that saw it answered) and lower.

        ``max(seq)`` only grows and a sequencing batch commits all its rows at once, so an event
        with seq ``s`` was in the log at the first sample whose max is >= s, and not yet at the
        sample before.
        """
        maxes = [m for _, _, m in samples]
        upper: list[float] = []
        lower: list[float] = []
        missed = 0
        for seq, rid in rows:
            at = self.commit_at.get(rid)
            if at is None:
                continue
            k = bisect.bisect_left(maxes, seq)
            if k >= len(samples):
                missed += 1  # sequenced after the poller stopped: cannot happen once drained
                continue
            upper.append(samples[k][1] - at)
            lower.append((samples[k - 1][0] if k > 0 else samples[0][0]) - at)
        upper.sort()
        lower.sort()
        gaps = sorted(b[0] - a[0] for a, b in zip(samples, samples[1:]))
        return {
            "events": len(upper), "unmatched": missed,
            "p50": round(_pct(upper, 50) * 1000, 2), "p90": round(_pct(upper, 90) * 1000, 2),
            "p99": round(_pct(upper, 99) * 1000, 2), "max": round(upper[-1] * 1000, 2) if upper else float("nan"),
            "lower_p50": round(_pct(lower, 50) * 1000, 2), "lower_p99": round(_pct(lower, 99) * 1000, 2),
            "lower_max": round(lower[-1] * 1000, 2) if lower else float("nan"),
            "poll_gap_p50": round(_pct(gaps, 50) * 1000, 2), "poll_gap_max": round(gaps[-1] * 1000, 2) if gaps else 0,
        }

    def check_log(self) -> dict[str, Any]:
        """The whole log: dense seq 0..N-1, exactly the committed events, each once, queue empty."""
        with _admin_connect(self.db_url) as conn:
            count, low, high = conn.execute(
                "SELECT count(*), min(seq), max(seq) FROM audits_auditevent").fetchone()
            pending = conn.execute("SELECT count(*) FROM audits_auditpending").fetchone()[0]
            rids = conn.execute("SELECT request_id, count(*) FROM audits_auditevent GROUP BY request_id "
                                "HAVING count(*) > 1 LIMIT 5").fetchall()
            present = {r[0] for r in conn.execute("SELECT request_id FROM audits_auditevent").fetchall()}
        leaves_ok, leaf_problem = _check_leaves(self.db_url)
        appended = sum(self.expected.values())
        twice_committed = [rid for rid, c in self.expected.items() if c != 1]
        missing = [rid for rid in self.expected if rid not in present]
        unexpected = [rid for rid in present if rid not in self.expected]
        dense = count == 0 or (low == 0 and high == count - 1)
        ok = (dense and count == appended and pending == 0 and not rids and not missing and not unexpected
              and not twice_committed and leaves_ok)
        return {"ok": ok, "events": int(count), "leaves_ok": leaves_ok, "leaf_problem": leaf_problem,
                "appended": appended, "seq_min": low, "seq_max": high,
                "dense": dense, "pending_left": int(pending), "duplicate_request_ids": len(rids),
                "missing": len(missing), "unexpected": len(unexpected),
                "missing_sample": [split_request_id(r) for r in missing[:3]]}


def _profile(env: dict[str, str], ops: int) -> dict[str, Any]:
    """Run the single-process cost breakdown (``--internal profile``) and add the CPU ratios it predicts.

    On a machine whose CPUs are saturated, throughput is inversely proportional to CPU per
    operation, so plain CPU / audited CPU (client + backend, per event) predicts the throughput
    ratio without the noise of a loaded machine: for the code as it is (a non-holder append plus
    its share of a 100-event batch, the size seen under load) and for the ``dedicated`` proposal
    (raw insert plus its share of a ``splice`` batch; the writers do nothing after commit).
    """
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--internal", "profile", "--profile-ops",
                           str(ops)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"profile failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    out = dict(json.loads(proc.stdout.strip().splitlines()[-1]))

    def cpu(*keys: str) -> float:
        return sum(out[k]["client_cpu_us"] + out[k]["backend_cpu_us"] for k in keys)

    out["predicted_cpu_ratio"] = {
        "current": round(cpu("plain") / cpu("append_nonholder", "sequencing_per_event_b100"), 3),
        "dedicated": round(cpu("plain") / cpu("append_raw_insert", "sequencing_splice_per_event_b100"), 3),
        "current_without_post_commit_lock_attempt": round(
            cpu("plain") / cpu("append_no_sequencing", "sequencing_per_event_b100"), 3),
    }
    return out


def _check_leaves(db_url: str) -> tuple[bool, str | None]:
    """Every leaf canonical JSON whose ``seq`` is its row's, stored hash = SHA-256(0x00 || leaf).

    Uses ``audits/verifier.py``, the standalone verifier (stdlib only), so the variants' leaves
    are judged exactly as an auditor's copy would judge them.
    """
    import hashlib

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from audits.verifier import check_canonical_leaf

    import psycopg

    with psycopg.connect(db_url) as conn:  # not autocommit: a server-side cursor needs a transaction
        with conn.cursor(name="leaves") as cur:
            cur.itersize = 5000
            cur.execute("SELECT seq, leaf, leaf_hash FROM audits_auditevent ORDER BY seq")
            for seq, leaf, stored in cur:
                try:
                    value = check_canonical_leaf(bytes(leaf))
                except ValueError as exc:
                    return False, f"seq {seq}: {exc}"
                if not isinstance(value, dict) or value.get("seq") != seq:
                    return False, f"seq {seq}: the leaf says seq {value.get('seq') if isinstance(value, dict) else '?'}"
                if hashlib.sha256(b"\x00" + bytes(leaf)).digest() != bytes(stored):
                    return False, f"seq {seq}: stored hash does not match the leaf"
    return True, None


def _raise_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """Turn SIGTERM into an exception so the finally block still stops workers and drops the DB."""
    raise SystemExit(128 + signum)


def _fmt_phase(r: PhaseResult) -> str:
    """One phase on one line: throughput, then where each operation's time and CPU went."""
    c = r.counters
    ops = max(1, r.ops)
    txn_ms = c.get("txn_seconds", 0) / ops * 1000
    post_ms = c.get("post_commit_seconds", 0) / ops * 1000
    line = (f"{r.name:<8} {r.variant:<9} {r.writers:>2}w {r.ops:>7} ops  {r.rate:>8.1f}/s  "
            f"(committed {r.commit_rate:.1f}/s in {r.window_s:.2f} s)  queries/op {c.get('queries', 0) / ops:.2f}  "
            f"txn {txn_ms:.2f} ms  post-commit {post_ms:.2f} ms"
            f"  CPU/op client {r.cpu.get('client_ms_per_op', 0):.3f} + backend "
            f"{r.cpu.get('backend_ms_per_op', 0):.3f} ms"
            f"  cores ours {r.cpu.get('ours_cores', 0):.2f} others {r.cpu.get('others_cores', 0):.2f}")
    if r.name == "audited":
        line += (f"  lock {int(c.get('lock_wins', 0))}/{int(c.get('lock_attempts', 0))}"
                 f"  batches {int(c.get('batches', 0))}"
                 f" (avg {c.get('batch_rows', 0) / max(1, c.get('batches', 0)):.1f} rows)  drain {r.drain_s} s"
                 f"  sequencing CPU/op client {r.cpu.get('sequencing_client_ms_per_op', 0):.3f}"
                 f" + backend {r.cpu.get('sequencing_backend_ms_per_op', 0):.3f} ms"
                 f"  slowest writer call {c.get('max_post_commit_seconds', 0) * 1000:.0f} ms after commit")
    return line


def _pairs(results: list[PhaseResult], variant: str) -> list[tuple[PhaseResult, PhaseResult]]:
    """(plain, audited) phase pairs of one variant: each audited phase with the plain one before it."""
    return [(results[i - 1], r) for i, r in enumerate(results)
            if r.name == "audited" and r.variant == variant and i > 0 and results[i - 1].name == "plain"]


def _ratios(pairs: list[tuple[PhaseResult, PhaseResult]]) -> dict[str, Any]:
    """Pooled and per-round ratios: sequenced throughput, committed throughput, CPU per append.

    Pooled = total operations over total time of all rounds of each phase (the headline figure);
    the per-round ratios and their median show how much the machine's noise moved it. The CPU
    ratio (plain CPU per insert / audited CPU per append, client + backend) is what the
    throughput ratio would be on a machine where our processes had the CPUs to themselves.
    """
    if not pairs:
        return {}
    plain_ops = sum(p.ops for p, _ in pairs)
    plain_s = sum(p.window_s for p, _ in pairs)
    audit_ops = sum(a.ops for _, a in pairs)
    audit_seq_s = sum(a.sequenced_window_s or a.window_s for _, a in pairs)
    audit_commit_s = sum(a.window_s for _, a in pairs)
    plain_rate = plain_ops / plain_s
    per_round = [round(a.rate / p.rate, 4) for p, a in pairs]
    plain_cpu = sum(p.cpu.get("total_ms_per_op", 0) * p.ops for p, _ in pairs) / max(1, plain_ops)
    audit_cpu = sum(a.cpu.get("total_ms_per_op", 0) * a.ops for _, a in pairs) / max(1, audit_ops)
    lat = [a.latency_ms for _, a in pairs]
    return {
        "plain_per_s": round(plain_rate, 1),
        "audited_per_s": round(audit_ops / audit_seq_s, 1),
        "ratio": round(audit_ops / audit_seq_s / plain_rate, 4),
        "ratio_committed": round(audit_ops / audit_commit_s / plain_rate, 4),
        "ratio_per_round": per_round,
        "ratio_median": round(sorted(per_round)[len(per_round) // 2], 4),
        "cpu_ms_per_op": {"plain": round(plain_cpu, 4), "audited": round(audit_cpu, 4)},
        "cpu_ratio": round(plain_cpu / audit_cpu, 4) if audit_cpu else float("nan"),
        "others_cores_mean": round(sum(p.cpu.get("others_cores", 0) + a.cpu.get("others_cores", 0)
                                       for p, a in pairs) / (2 * len(pairs)), 3),
        "latency_ms": {
            "p50_median": sorted(x.get("p50", float("nan")) for x in lat)[len(lat) // 2],
            "p99_worst": max(x.get("p99", float("nan")) for x in lat),
            "max": max(x.get("max", float("nan")) for x in lat),
            "events": sum(x.get("events", 0) for x in lat),
        },
        "slowest_writer_call_after_commit_ms": round(max(a.counters.get("max_post_commit_seconds", 0)
                                                         for _, a in pairs) * 1000, 1),
        "stranded": sum(a.stranded for _, a in pairs),
    }


def _summarise(results: list[PhaseResult]) -> dict[str, Any]:
    """The headline (current code) and, per prototype variant, the same figures."""
    head = _ratios(_pairs(results, "current"))
    out: dict[str, Any] = dict(head) if head else {"ratio": float("nan")}
    out["variants"] = {v: _ratios(_pairs(results, v)) for v in VARIANTS[1:] if _pairs(results, v)}
    light = _ratios(_pairs(results, "light"))
    if light:
        out["light"] = light
    return out


def _summary_lines(results: list[PhaseResult], summary: dict[str, Any], checks: dict[str, Any],
                   profile: dict[str, Any]) -> list[str]:
    lines = ["phase    variant   writers    ops     rate/s   details"]
    for r in results:
        lines.append(_fmt_phase(r))
        if r.name == "audited":
            lines.append(f"         commit-to-sequenced latency (ms, upper bound): p50 {r.latency_ms.get('p50')} "
                         f"p99 {r.latency_ms.get('p99')} max {r.latency_ms.get('max')}  (lower bound max "
                         f"{r.latency_ms.get('lower_max')}; poll gap p50 {r.latency_ms.get('poll_gap_p50')} ms); "
                         f"max queue depth {r.max_queue_depth}; stranded {r.stranded}")
            lines.append(f"         queue depth at each second: {r.queue_depth_timeline}"
                         + (f"; sequencer process {r.sequencer}" if r.sequencer else ""))
    if "plain_per_s" in summary:
        ratio = summary["ratio"]
        lines.append(f"plain inserts {summary['plain_per_s']}/s, audited appends {summary['audited_per_s']}/s "
                     f"(counted until sequenced): ratio {ratio:.3f} (target >= {TARGET_RATIO}: "
                     f"{'MET' if ratio >= TARGET_RATIO else 'NOT MET'}); per round {summary['ratio_per_round']}, "
                     f"median {summary['ratio_median']}; committed-only {summary['ratio_committed']}")
        lines.append(f"CPU per operation (client + backend): plain {summary['cpu_ms_per_op']['plain']} ms, audited "
                     f"{summary['cpu_ms_per_op']['audited']} ms -> CPU ratio {summary['cpu_ratio']}; other jobs used "
                     f"{summary['others_cores_mean']} of {os.cpu_count()} cores on average")
        lat = summary["latency_ms"]
        lines.append(f"commit-to-sequenced latency over {lat['events']} events: p50 {lat['p50_median']} ms, "
                     f"worst-round p99 {lat['p99_worst']} ms, max {lat['max']} ms; slowest writer call "
                     f"{summary['slowest_writer_call_after_commit_ms']} ms after its own commit")
    extra = dict(summary.get("variants", {}))
    if "light" in summary:
        extra = {"light (current code, fewer writers)": summary["light"], **extra}
    for name, v in extra.items():
        lines.append(f"variant {name}: ratio {v['ratio']} (committed-only {v['ratio_committed']}), CPU ratio "
                     f"{v['cpu_ratio']}, latency p50 {v['latency_ms']['p50_median']} / max "
                     f"{v['latency_ms']['max']} ms, "
                     f"slowest writer call {v['slowest_writer_call_after_commit_ms']} ms, stranded {v['stranded']}")
    if checks:
        lines.append(f"log check: {'OK' if checks['ok'] else 'FAILED'}: {checks['events']} events, seq dense "
                     f"{checks['dense']} ({checks['seq_min']}..{checks['seq_max']}), appended {checks['appended']}, "
                     f"missing {checks['missing']}, unexpected {checks['unexpected']}, "
                     f"left in queue {checks['pending_left']}, leaves canonical/seq/hash "
                     f"{'OK' if checks.get('leaves_ok') else checks.get('leaf_problem')}")
    if profile:
        lines.append(f"cost per append, one process, no contention ({profile['ops']} each; us wall / client CPU / "
                     "backend CPU / server round trips):")
        for key, v in profile.items():
            if isinstance(v, dict) and "wall_us" in v:
                lines.append(f"  {key:<36} {v['wall_us']:>8} {v['client_cpu_us']:>8} {v['backend_cpu_us']:>8} "
                             f"{v.get('round_trips', ''):>6}")
        lines.append(f"  queue table: {profile.get('queue_pages_before_vacuum')} pages before VACUUM, "
                     f"{profile.get('queue_pages_after_vacuum')} after")
        lines.append(f"  predicted CPU ratios (plain / audited, CPU per event): {profile.get('predicted_cpu_ratio')}")
        per_round = profile["ops"] // profile.get("rounds", 1)
        lines.append(f"  cProfile of append_nonholder ({per_round} appends, CPU time), by cumulative time:")
        lines.extend(f"    {ln}" for ln in profile.get("cprofile_nonholder_cumulative", []))
        lines.append("  ... and by own time:")
        lines.extend(f"    {ln}" for ln in profile.get("cprofile_nonholder_tottime", []))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--writers", type=int, default=16, help="concurrent writer processes (default 16)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per phase (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved plain/audited rounds (default 3)")
    parser.add_argument("--warmup", type=float, default=2.0,
                        help="unmeasured seconds of each phase first (events still checked; default 2)")
    parser.add_argument("--light-writers", type=int, default=4,
                        help="also run one plain/audited pair with only this many writers, the current code at a "
                             "load 2 cores carry (default 4; 0 to skip)")
    parser.add_argument("--variants", default="dedicated",
                        help=f"comma-separated prototype variants to measure after the rounds, from {VARIANTS[1:]}, "
                             "or '' for none (default: dedicated, the proposal; see _install_variant)")
    parser.add_argument("--sequencer-nice", type=int, default=-10,
                        help="nice increment for the dedicated variant's sequencer process: negative runs it ahead "
                             "of the writers, as the proposal deploys it (needs CAP_SYS_NICE, else it stays at 0 "
                             "and the output says reniced=false; default -10; deferred always runs at 0)")
    parser.add_argument("--poll-ms", type=float, default=5.0, help="latency poller interval (default 5 ms)")
    parser.add_argument("--drain-timeout", type=float, default=60.0,
                        help="seconds to wait for the queue to empty after an audited phase (default 60)")
    parser.add_argument("--database", default="govaudit_bench_appends",
                        help="throw-away database name; must match govaudit_bench* (default govaudit_bench_appends)")
    parser.add_argument("--pg-url", default="postgres://postgres@127.0.0.1:5432",
                        help="PostgreSQL server URL without a database name")
    parser.add_argument("--profile-ops", type=int, default=2000,
                        help="appends per step of the single-process cost breakdown after the rounds (0: skip)")
    parser.add_argument("--internal", choices=["worker", "profile"], help=argparse.SUPPRESS)
    parser.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.internal == "worker":
        return worker_main(args.worker)
    if args.internal == "profile":
        print(json.dumps(profile_main(args.profile_ops)))
        return 0
    if not DB_NAME_RE.match(args.database):
        parser.error(f"--database must match {DB_NAME_RE.pattern} (it is dropped at the end)")
    variants = [v for v in args.variants.split(",") if v]
    if any(v not in VARIANTS for v in variants):
        parser.error(f"--variants: choose from {VARIANTS}")
    if not (1 <= args.writers <= 64 and 0 < args.seconds <= 120 and 1 <= args.rounds <= 10 and 0 <= args.warmup <= 30
            and 0.5 <= args.poll_ms <= 1000 and -20 <= args.sequencer_nice <= 19
            and 0 <= args.light_writers <= args.writers):
        parser.error("out of range: 1<=writers<=64, 0<seconds<=120, 1<=rounds<=10, 0<=warmup<=30, "
                     "0.5<=poll-ms<=1000, -20<=sequencer-nice<=19, 0<=light-writers<=writers")
    signal.signal(signal.SIGTERM, _raise_on_sigterm)

    t_start = time.perf_counter()
    base_url = args.pg_url.rstrip("/")
    admin_url = f"{base_url}/postgres"
    db_url = f"{base_url}/{args.database}"
    data_dir = tempfile.mkdtemp(prefix="govaudit-bench-appends-")
    env = _bench_env(db_url, data_dir)
    workers: list[Worker] = []
    sequencer: Worker | None = None
    results: list[PhaseResult] = []
    report: dict[str, Any] = {}
    checks: dict[str, Any] = {}
    profile: dict[str, Any] = {}
    failure: str | None = None
    db_created = False
    server: dict[str, str] = {}
    try:
        log(f"database {args.database}: drop if exists, create, migrate")
        server = _create_database(admin_url, args.database)
        db_created = True
        migrate_s = _migrate(env)
        with _admin_connect(db_url) as conn:
            conn.execute("CREATE TABLE bench_plain (id bigserial PRIMARY KEY, body bytea NOT NULL)")
        log(f"migrated in {migrate_s:.1f} s; starting {args.writers} writer processes")
        workers = _start_workers(args.writers, env, data_dir)
        bench = Bench(workers, db_url, args)
        if args.warmup > 0:
            log(f"warm-up: {args.warmup:g} s plain + {args.warmup:g} s audited (not timed; events checked)")
            bench.run_plain(args.warmup)
            bench.run_audited(args.warmup, "current", None)
        for rnd in range(args.rounds):
            for phase in ("plain", "audited"):
                r = (bench.run_plain(args.seconds) if phase == "plain"
                     else bench.run_audited(args.seconds, "current", None))
                results.append(r)
                log(f"round {rnd + 1}/{args.rounds} {_fmt_phase(r)}")
        if args.light_writers:
            # The same code at a load the machine can carry: the latency an event sees when the
            # sequencing writer is not starved of CPU, and the ratio when batches stay small.
            log(f"light load: {args.light_writers} writers, plain then audited")
            results.append(bench.run_plain(args.seconds, args.light_writers))
            log(_fmt_phase(results[-1]))
            results.append(bench.run_audited(args.seconds, "light", None, args.light_writers))
            log(_fmt_phase(results[-1]))
        for variant in variants:
            log(f"variant {variant}: plain baseline, then audited with the prototype")
            bench.set_variant(variant)
            if variant in ("deferred", "dedicated"):
                sequencer = _start_workers(1, env, data_dir, "sequencer")[0]
                sequencer.index = -1
                sequencer.send({"kind": "variant", "name": variant})
                sequencer.receive(timeout=30)
            results.append(bench.run_plain(args.seconds))
            log(_fmt_phase(results[-1]))
            results.append(bench.run_audited(args.seconds, variant, sequencer))
            log(_fmt_phase(results[-1]))
            if sequencer is not None:
                _stop_workers([sequencer])
                sequencer = None
            bench.set_variant("current")
        checks = bench.check_log()
        if not checks["ok"]:
            failure = f"log check failed: {checks}"
        if args.profile_ops > 0:
            _stop_workers(workers)
            workers = []
            log(f"cost breakdown: {args.profile_ops} appends per step, one process, no contention")
            profile = _profile(env, args.profile_ops)
    except BaseException as exc:  # noqa: BLE001 - reported below after cleanup
        failure = f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, (RuntimeError, SystemExit, KeyboardInterrupt)):
            import traceback

            traceback.print_exc()
    finally:
        _stop_workers(workers + ([sequencer] if sequencer else []))
        if db_created:
            log(f"dropping database {args.database}")
            try:
                _drop_database(admin_url, args.database)
            except Exception as exc:  # noqa: BLE001 - keep cleaning up; say so loudly
                log(f"WARNING: could not drop {args.database}: {exc}")
        shutil.rmtree(data_dir, ignore_errors=True)

    summary = _summarise(results)
    for line in _summary_lines(results, summary, checks, profile):
        print(line)
    if failure is None and any(r.stranded for r in results if r.variant == "current"):
        failure = "events were left in the queue after the writers stopped (lost wake-up)"
    report = {
        "benchmark": "audit_appends",
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "postgres": server},
        "config": {"writers": args.writers, "light_writers": args.light_writers, "seconds": args.seconds,
                   "rounds": args.rounds, "warmup": args.warmup,
                   "poll_ms": args.poll_ms, "variants": variants, "timebox_s": TIMEBOX_S, "beat_s": BEAT_S,
                   "sequencer_nice": args.sequencer_nice, "queue_vacuum_s": QUEUE_VACUUM_S},
        **summary,
        "target_ratio": TARGET_RATIO,
        "target_met": bool(summary["ratio"] >= TARGET_RATIO),
        "phases": [dict(r.__dict__) for r in results],
        "log_check": checks,
        "profile": profile,
    }
    total = round(time.perf_counter() - t_start, 1)
    report.update({"total_runtime_seconds": total, "ok": failure is None})
    if failure:
        report["failure"] = failure
        log(f"FAILED: {failure}")
    print(json.dumps(report, default=str))
    return 0 if failure is None else 1


if __name__ == "__main__":
    sys.exit(main())
