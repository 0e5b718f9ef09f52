"""Writing to the audit log: append (inside the caller's transaction), sequence, checkpoint.

Design (see docs/audit-log.md, "Service behaviour"): an append is one INSERT into the pending
queue in the same transaction as the change, so the event is durable exactly when the change is
and concurrent writers never contend on a head row. Sequencing (dense ``seq`` numbers in queue
order, the canonical leaf bytes and hashes, the rows removed from the queue) happens under one
lock: in production a dedicated process (``sequencer_run``, ``manage.py audit_sequencer``) holds
it for its lifetime. Without one, each writer tries the lock after its commit and, if it gets
it, sequences a bounded number of batches; a writer that does not get it leaves its event to the
holder, which re-checks the queue after releasing the lock, so no event waits for a later writer.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone as dt_timezone
from typing import Any, Callable

from django.db import connection, transaction
from django.utils import timezone

from audits.context import request_id_var
from audits.core.canonical import canonical_bytes
from audits.models import AuditEvent, AuditPending

# Any 64-bit constant; names the sequencer's advisory lock in PostgreSQL.
_SEQUENCER_LOCK_KEY = 0x6A7564_17_5E0
# Held (exclusively) by the dedicated sequencer for its whole life, beside the sequencer lock, so
# a writer that finds the sequencer lock taken can tell "the sequencer runs" from "another writer
# is draining the queue for a moment" (see audit_sequence).
_PRESENCE_LOCK_KEY = _SEQUENCER_LOCK_KEY + 1
# How long a process trusts that a dedicated sequencer runs, once it has seen one, before it
# probes again: its writers skip their after-commit probe meanwhile.
_SEQUENCER_TRUST_SECONDS = 0.5
_sequencer_seen_until = 0.0
_BATCH = 2000
_MAX_BATCHES_PER_CALL = 2
_MAX_ROUNDS_PER_CALL = 3


@dataclass(frozen=True)
class Target:
    """What an event is about: a type (``registry.model``), an id and a human label."""

    type: str
    id: str
    label: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"type": self.type, "id": self.id, "label": self.label}


def format_ts(value: datetime) -> str:
    """RFC 3339 UTC with microseconds, the only timestamp form that appears in leaves."""
    return value.astimezone(dt_timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def audit_append(*, actor: dict[str, Any], action: str, target: Target | None, payload: dict[str, Any],
                 along: tuple[str, list[Any]] | None = None) -> list[tuple[Any, ...]]:
    """Record one event as part of the current transaction (call it inside ``transaction.atomic``).

    If the caller's transaction rolls back, the event goes with it; if this insert fails, the
    caller's change fails too. The event becomes a numbered leaf moments after commit.

    ``along``: the caller's own write that this event records, as (SQL, parameters), run in the
    same round trip: on PostgreSQL one statement, the event's INSERT a data-modifying CTE of the
    caller's statement (which may begin with its own ``WITH``); elsewhere the caller's statement
    first, then the event's. Returns the rows the caller's statement returned (none without one).
    Why: the pipeline's register and promote each record their writes this way, a round trip
    fewer per event on the busiest path. The event's content must not depend on the statement's
    results (keys come reserved beforehand: ``governance.queries.key_sequence``).
    """
    body = {
        "ts": format_ts(timezone.now()),
        "actor": actor,
        "action": action,
        "target": target.as_dict() if target else None,
        "request_id": request_id_var.get(),
        "payload": payload,
    }
    # One plain INSERT: this is on every governed write's path, so no ORM object is built for it.
    insert = f"INSERT INTO {AuditPending._meta.db_table} (body) VALUES (%s)"
    rows: list[tuple[Any, ...]] = []
    with connection.cursor() as cur:
        if along is not None and connection.vendor == "postgresql":
            sql, params = along
            # A data-modifying CTE runs exactly once and to completion, whether or not anything reads it.
            event = f"WITH _audit_event AS ({insert})"
            statement = f"{event}, {sql[5:]}" if sql[:5].upper() == "WITH " else f"{event} {sql}"
            cur.execute(statement, [canonical_bytes(body), *params])
            rows = cur.fetchall() if cur.description else []
        else:
            if along is not None:
                cur.execute(*along)
                rows = cur.fetchall() if cur.description else []
            cur.execute(insert, [canonical_bytes(body)])
    # One sequencing attempt per transaction, however many events it recorded (it drains them
    # all), unless the one already registered belongs to a savepoint that may still roll back.
    live = set(connection.savepoint_ids)
    if not any(func is audit_sequence and sids <= live for sids, func, _ in connection.run_on_commit):
        transaction.on_commit(audit_sequence)
    return rows


def _try_lock() -> bool:
    if connection.vendor != "postgresql":
        return True  # SQLite: BEGIN IMMEDIATE already serialises writers.
    with connection.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_lock(%s)", [_SEQUENCER_LOCK_KEY])
        return bool(cur.fetchone()[0])


def _try_lock_or_note_sequencer() -> bool:
    """``_try_lock``, and when the lock is taken, whether by a running dedicated sequencer.

    One statement: the shared transaction-level try on the presence lock fails only while a
    sequencer holds it, and (outside a transaction, where this runs) is released as the
    statement ends. Seeing a sequencer starts this process's trust window.
    """
    global _sequencer_seen_until
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return _try_lock()
    with connection.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_lock(%s), pg_try_advisory_xact_lock_shared(%s)",
                    [_SEQUENCER_LOCK_KEY, _PRESENCE_LOCK_KEY])
        got, no_sequencer = cur.fetchone()
    if not got and not no_sequencer:
        _sequencer_seen_until = time.monotonic() + _SEQUENCER_TRUST_SECONDS
    return bool(got)


def _unlock() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(%s)", [_SEQUENCER_LOCK_KEY])


def _event_row(raw: bytes, seq: int) -> AuditEvent:
    body = json.loads(raw)
    leaf = leaf_with_seq(raw, seq)
    actor = body.get("actor") or {}
    target = body.get("target") or {}
    return AuditEvent(
        seq=seq,
        ts=datetime.strptime(body["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt_timezone.utc),
        action=body["action"],
        actor_id=actor.get("id") if actor.get("type") == "user" else None,
        actor_name=str(actor.get("username") or actor.get("name") or ""),
        target_type=target.get("type", ""),
        target_id=str(target.get("id", "")),
        request_id=body.get("request_id") or "",
        leaf=leaf,
        leaf_hash=hashlib.sha256(b"\x00" + leaf).digest(),
    )


def _sequence_batch() -> int:
    """Number up to ``_BATCH`` queued events, oldest first, in one transaction; returns how many.

    Callers hold the sequencer lock (PostgreSQL) or a write transaction (SQLite), so ``max(seq)``
    cannot move under us. The rows are read by the primary key's order and deleted by their ids
    (``= ANY`` on PostgreSQL): a plan that stays an index scan however stale the table's
    statistics. A single ``DELETE .. WHERE id IN (SELECT .. LIMIT)`` was tried and measured
    (docs/benchmarks/audit_log.md): under 16 writers with no sequencer process, batches grew
    slower until the queue stopped draining (a semi-join plan over the churning table is the
    likely cause; not confirmed with EXPLAIN).
    """
    table = AuditPending._meta.db_table
    with transaction.atomic():
        with connection.cursor() as cur:
            cur.execute(f"SELECT id, body FROM {table} ORDER BY id LIMIT %s", [_BATCH])
            pending = cur.fetchall()
            if pending:
                if connection.vendor == "postgresql":
                    cur.execute(f"DELETE FROM {table} WHERE id = ANY(%s)", [[row[0] for row in pending]])
                else:
                    cur.execute(f"DELETE FROM {table} WHERE id <= %s", [pending[-1][0]])
            if not pending:
                return 0
            cur.execute(f"SELECT max(seq) FROM {AuditEvent._meta.db_table}")
            last = cur.fetchone()[0]
        seq = 0 if last is None else last + 1
        AuditEvent.objects.bulk_create([_event_row(bytes(raw), seq + i) for i, (_, raw) in enumerate(pending)])
        return len(pending)


def leaf_with_seq(body: bytes, seq: int) -> bytes:
    """The canonical leaf: the canonical body with ``"seq":N`` in its sorted place.

    The body's top-level keys are action, actor, payload, request_id, target, ts, so ``seq`` goes
    just before ``"target"``. A string value cannot contain the bytes ``,"target":`` (its quotes
    would be escaped), and target's own keys come after it, so the last occurrence is the key.
    Equal to ``canonical_bytes(json.loads(body) | {"seq": seq})``, without re-encoding the event.
    """
    at = body.rfind(b',"target":')
    if at < 0 or not body.startswith(b'{"action":'):
        raise ValueError("queued audit body is not in the expected canonical form")
    return body[:at] + b',"seq":' + str(seq).encode() + body[at:]


def audit_sequence(*, inline: bool = False) -> int:
    """Move queued events into the log; returns how many this call sequenced.

    Safe to call from anywhere, any number of times, concurrently: one caller at a time holds the
    lock; the others return at once, and the holder looks at the queue again after releasing it.
    A writer's after-commit call does a bounded amount of work (a few batches, a few rounds), so
    its request never waits on everyone else's events; what it leaves is taken by the next
    committer, or at the latest by the scheduled backstop. ``inline`` drains the whole queue, even
    inside an open transaction (checkpoints, verification, tests).
    """
    if connection.in_atomic_block and connection.vendor == "postgresql" and not inline:
        # Sequencing inside someone's transaction would hold the lock until that commits; the
        # append's own after-commit call (or the backstop task) will do it.
        return 0
    if not inline and time.monotonic() < _sequencer_seen_until:
        # A dedicated sequencer was seen holding the lock less than _SEQUENCER_TRUST_SECONDS
        # ago: it numbers this event within one nap, and probing for the lock would fail anyway
        # (one statement per committing request, measured in docs/benchmarks/promotions.md).
        # Should it have died since, the first commit after the window probes, wins the lock and
        # drains the queue; the backstop task covers a quiet spell.
        return 0
    total = 0
    rounds = 0
    while inline or rounds < _MAX_ROUNDS_PER_CALL:
        rounds += 1
        if not _try_lock_or_note_sequencer():
            return total
        try:
            for _ in range(_MAX_BATCHES_PER_CALL if not inline else 1 << 30):
                n = _sequence_batch()
                total += n
                if n < _BATCH:
                    break
        finally:
            _unlock()
        if not AuditPending.objects.exists():
            return total
    return total


def sequencer_run(*, should_stop: Callable[[], bool], nap: float = 0.03, idle_nap: float = 0.1,
                  vacuum_every: float = 5.0, on_batch: Callable[[int], None] | None = None) -> int:
    """The dedicated sequencer: hold the sequencer lock for as long as we run, number every event.

    Deployed as its own process (``manage.py audit_sequencer``), it takes the sequencing off the
    request path: while it holds the lock, a writer's after-commit ``audit_sequence`` fails to get
    the lock at once and returns, so no request ever numbers other writers' events, and an
    event's wait for a ``seq`` is one nap plus one batch (see docs/audit-log.md). If the process
    dies, PostgreSQL releases the lock with its session and writers go back to sequencing after
    their own commits, so nothing is stranded. A second sequencer waits as a standby.

    It naps ``nap`` seconds after any batch smaller than the maximum, so the next one gathers
    events instead of paying a transaction for each. While the queue stays empty the nap doubles,
    up to ``idle_nap``: an idle deployment polls ten times a second, not a hundred (each poll is
    a transaction: about 1.6 ms of CPU between the process and its backend, measured, so fixed
    10 ms naps kept 16 % of a core busy doing nothing); the first event after a quiet spell waits
    at most ``idle_nap``, and while events keep coming the nap stays ``nap``. The default nap is
    30 ms, not 10: under the promotion benchmark's load (about 450 events/s) a 10 ms nap ran
    about 90 small transactions a second, and the sequencer with its backend cost about 1 ms of
    CPU per promotion, 7 % of the machine's; at 30 ms that halved (docs/benchmarks/promotions.md),
    for an event waiting at most 20 ms longer for its ``seq``. It VACUUMs the queue table every
    ``vacuum_every`` seconds, since the table churns all its rows every few milliseconds and
    each pass would otherwise scan every dead row since the last vacuum: every 5 s, not 30, as
    at 450 events/s 30 s left 13,000 dead rows between vacuums, and a vacuum of a few thousand
    costs about 5 ms. Returns the number of events it sequenced.
    """
    total = 0
    while not _try_lock():
        if should_stop():
            return 0
        time.sleep(0.5)
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:  # tells writers a sequencer runs (see audit_sequence)
            cur.execute("SELECT pg_advisory_lock(%s)", [_PRESENCE_LOCK_KEY])
            # The queue is read oldest first by its primary key. VACUUM TRUNCATE false (below)
            # never gives back the pages a burst spread the queue over, and with no statistics
            # (no autovacuum, or between its runs) the planner takes the nearly empty table for
            # tiny and scans all of them: measured 0.52 ms a batch over 500 empty pages after a
            # promotion benchmark, against 0.05 ms by the index. This session does nothing else.
            cur.execute("SET enable_seqscan = off")
    next_vacuum = time.monotonic() + vacuum_every
    wait = nap
    try:
        while not should_stop():
            n = _sequence_batch()
            total += n
            if on_batch is not None and n:
                on_batch(n)
            if connection.vendor == "postgresql" and time.monotonic() >= next_vacuum:
                with connection.cursor() as cur:
                    # TRUNCATE false: cutting the empty tail needs an ACCESS EXCLUSIVE lock, which
                    # VACUUM waits for (up to seconds) while writers insert; nothing is sequenced then.
                    cur.execute(f"VACUUM (TRUNCATE false) {AuditPending._meta.db_table}")
                next_vacuum = time.monotonic() + vacuum_every
            if n == 0:
                time.sleep(wait)
                wait = min(wait * 2, max(idle_nap, nap))
            elif n < _BATCH:
                wait = nap
                time.sleep(nap)
    finally:
        if connection.vendor == "postgresql":
            with connection.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s)", [_PRESENCE_LOCK_KEY])
        _unlock()
    return total + audit_sequence()  # whatever arrived after the last pass
