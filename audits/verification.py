"""Verify the whole log in the database, streaming, in bounded memory.

Per event: ``seq`` dense from 0; the leaf is canonical JSON whose own ``seq`` is the row's; the
stored leaf hash is SHA-256(0x00 || leaf); the filter columns agree with the leaf. Over the tree:
the root at every stored checkpoint's size equals the checkpoint's root, and every checkpoint note
is signed by a trusted key (successive checkpoints are then consistent, since both roots are
recomputed from the same leaves). Against an outside checkpoint (an auditor's copy): the log is at
least that long and has the same root at that size, which catches a database rolled back to an
older state with its checkpoints, and a fork.

The per-leaf canonical check is the standalone verifier's (``audits/verifier.py``), so the service
and an auditor's copy of that file judge leaves identically.
"""
from __future__ import annotations

import itertools
import multiprocessing
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Callable

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Max, Min
from django.utils import timezone

from audits import verify_workers
from audits.core.logcheck import Problem, check_rows
from audits.core.merkle import TreeBuilder
from audits.core.note import Checkpoint, NoteError, VerifierKey, open_checkpoint
from audits.keys import trusted_keys
from audits.models import AuditCheckpoint, AuditEvent, AuditPending, AuditVerification
from audits.verify_workers import PG_SELECT

_FETCH = 2_000  # rows per fetch: memory stays a few MB whatever the log's length
_RANGE = 8_192  # rows per task of the parallel path (about 5 MB of leaves in a worker)
# The timestamp column rendered in the leaf's layout. SQLite (Django's format: "YYYY-MM-DD
# HH:MM:SS[.ffffff]", UTC) gets its microseconds padded; PostgreSQL formats it itself.
_SQLITE_TS = "replace(substr(ts || '.000000', 1, 26), ' ', 'T') || 'Z'"
# Django-only keys of DATABASES[...]["OPTIONS"] that are not libpq connection parameters.
_NOT_LIBPQ = {"pool", "server_side_binding", "isolation_level", "assume_role", "prepare_threshold", "cursor_factory"}


@dataclass
class VerificationReport:
    """The outcome: ``ok``, the size checked, and for a failure the first bad seq and its kind."""

    ok: bool = True
    size: int = 0
    checkpoints_checked: int = 0
    first_bad_seq: int | None = None
    problem: str = ""
    detail: str = ""
    warnings: list[str] = field(default_factory=list)
    workers: int = 1

    def fail(self, problem: str, detail: str, seq: int | None) -> "VerificationReport":
        self.ok, self.problem, self.detail, self.first_bad_seq = False, problem, detail, seq
        return self

    def as_dict(self) -> dict[str, object]:
        return {"ok": self.ok, "size": self.size, "checkpoints_checked": self.checkpoints_checked,
                "first_bad_seq": self.first_bad_seq, "problem": self.problem or None,
                "detail": self.detail or None, "warnings": self.warnings}


class _TreeCheck:
    """Feeds leaf hashes, in ``seq`` order, to the tree and compares its root at each checkpoint."""

    def __init__(self, checkpoints: list[Checkpoint], outside: Checkpoint | None) -> None:
        self.builder = TreeBuilder()
        self.all = checkpoints
        self.pending = list(checkpoints)
        self.outside = outside
        self.checked = 0

    def feed(self, hashes: list[bytes]) -> Problem | None:
        builder, pending, pos = self.builder, self.pending, 0
        while pending and pending[0].size <= builder.size + len(hashes) - pos:
            cp = pending[0]
            cut = pos + cp.size - builder.size
            builder.extend(hashes[pos:cut])
            pos = cut
            if builder.root() != cp.root_hash:
                last_good = max((c.size for c in self.all if c.size < cp.size), default=0)
                if cp is self.outside:
                    return Problem("fork", f"the log's first {cp.size} events have another root than the outside "
                                   "checkpoint of the same size: the log was forked or rewritten and re-signed",
                                   last_good)
                return Problem("root_mismatch", f"the tree of the first {cp.size} events does not match the signed "
                               f"checkpoint for that size: an event between seq {last_good} and {cp.size - 1} was "
                               "changed together with its hash, or the log was forked", last_good)
            pending.pop(0)
            self.checked += 1
        builder.extend(hashes[pos:])
        return None


def _read_checkpoints(report: VerificationReport, keys: list[VerifierKey]) -> list[Checkpoint] | None:
    checkpoints = []
    for cp in AuditCheckpoint.objects.order_by("size"):
        try:
            body, _ = open_checkpoint(cp.note.encode("utf-8"), keys)
        except NoteError as exc:
            report.fail("checkpoint_signature", f"checkpoint at size {cp.size} is not signed by a trusted key "
                        f"({exc}); the log may have been rewritten and re-signed", None)
            return None
        if body.size != cp.size or body.root_hash != bytes(cp.root_hash):
            report.fail("checkpoint_tampered", f"checkpoint row at size {cp.size} differs from its signed note",
                        None)
            return None
        checkpoints.append(body)
    return checkpoints


def _pg_conninfo() -> str:
    """libpq parameters of the default database, for worker processes that do not load Django."""
    from psycopg.conninfo import make_conninfo

    s = connection.settings_dict
    params: dict[str, Any] = {"dbname": s["NAME"], "user": s["USER"] or None, "password": s["PASSWORD"] or None,
                              "host": s["HOST"] or None, "port": str(s["PORT"]) if s["PORT"] else None}
    params.update({k: v for k, v in (s.get("OPTIONS") or {}).items()
                   if k not in _NOT_LIBPQ and isinstance(v, (str, int))})
    return make_conninfo(**{k: v for k, v in params.items() if v is not None})


def _verify_sequential(size: int, tree: _TreeCheck, progress: Callable[[int, int], None] | None) -> Problem | None:
    """One process: rows through a server-side cursor (PostgreSQL) or a plain one (SQLite)."""
    def batches(cur: Any) -> Any:
        while rows := cur.fetchmany(_FETCH):
            yield rows

    def run(cur: Any) -> Problem | None:
        done = 0
        for rows in batches(cur):
            result = check_rows(rows, done)
            problem = tree.feed(result.hashes)
            if problem is None:
                problem = result.problem
            if problem is not None:
                return problem
            done += result.count
            if progress is not None and done % 20_000 < _FETCH:
                progress(done, size)
        if done < size:  # rows vanished while we read (nothing else removes them)
            return Problem("gap", f"expected seq {done}, found none: events are missing (deleted rows)", done)
        return None

    connection.ensure_connection()
    if connection.vendor == "postgresql":
        with transaction.atomic():  # a named cursor lives in a transaction; no WITH HOLD copy of the log
            with connection.connection.cursor(name="audit_verify", binary=True) as cur:
                cur.itersize = _FETCH
                cur.execute(PG_SELECT + "WHERE seq < %s ORDER BY seq", [size])
                return run(cur)
    ts = _SQLITE_TS if connection.vendor == "sqlite" else "ts"
    with connection.cursor() as cur:
        cur.execute(f"SELECT seq, leaf, leaf_hash, {ts}, action, actor_id, actor_name, target_type, target_id, "
                    "request_id FROM audits_auditevent WHERE seq < %s ORDER BY seq", [size])
        return run(cur)


def _verify_parallel(size: int, workers: int, tree: _TreeCheck,
                     progress: Callable[[int, int], None] | None) -> Problem | None:
    """``workers`` processes check ``seq`` ranges; this one builds the tree from their hashes, in order.

    At most two ranges per worker are in flight, so memory stays bounded however long the log.
    """
    ctx = multiprocessing.get_context("spawn")
    ranges = iter([(start, min(start + _RANGE, size)) for start in range(0, size, _RANGE)])
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=verify_workers.init_worker,
                             initargs=(_pg_conninfo(),)) as pool:
        in_flight: deque[Future[tuple[int, int, bytes, Problem | None]]] = deque()
        try:
            for bounds in itertools.islice(ranges, 2 * workers):
                in_flight.append(pool.submit(verify_workers.check_range, bounds))
            while in_flight:
                start, count, blob, problem = in_flight.popleft().result()
                for bounds in itertools.islice(ranges, 1):
                    in_flight.append(pool.submit(verify_workers.check_range, bounds))
                tree_problem = tree.feed([blob[i:i + 32] for i in range(0, len(blob), 32)])
                if tree_problem is not None:
                    return tree_problem
                if problem is not None:
                    return problem
                want = min(_RANGE, size - start)
                if count != want:
                    return Problem("gap", f"expected seq {start + count}, found a later one or none: events are "
                                   "missing (deleted rows)", start + count)
                if progress is not None:
                    progress(start + count, size)
        finally:
            for future in in_flight:
                future.cancel()
    return None


def verify_log(*, external_checkpoint: bytes | None = None, extra_keys: list[str] | None = None,
               progress: Callable[[int, int], None] | None = None,
               workers: int | None = None) -> VerificationReport:
    """Check every event, every stored checkpoint and, if given, an outside checkpoint.

    ``workers`` (default ``settings.AUDIT_VERIFY_WORKERS``) processes check a PostgreSQL log of at
    least ``settings.AUDIT_VERIFY_PARALLEL_MIN_EVENTS`` events; smaller logs, SQLite, and a log whose
    ``seq`` values are not plainly 0..n-1 are checked in this process (the latter so the diagnosis
    names the first bad row exactly as the sequential scan finds it).
    """
    report = VerificationReport()
    keys: list[VerifierKey] = [k.verifier for k in trusted_keys()]
    keys += [VerifierKey.parse(k) for k in extra_keys or []]
    checkpoints = _read_checkpoints(report, keys)
    if checkpoints is None:
        return report
    outside = None
    if external_checkpoint is not None:
        try:
            outside, _ = open_checkpoint(external_checkpoint, keys)
        except NoteError as exc:
            return report.fail("external_checkpoint_unverified", f"the outside checkpoint does not verify: {exc}",
                               None)
        checkpoints.append(outside)
    checkpoints.sort(key=lambda c: c.size)
    tree = _TreeCheck(checkpoints, outside)

    agg = AuditEvent.objects.aggregate(n=Count("seq"), lo=Min("seq"), hi=Max("seq"))
    size = 0 if agg["hi"] is None else agg["hi"] + 1
    plain = agg["n"] == size and (agg["lo"] or 0) == 0
    workers = settings.AUDIT_VERIFY_WORKERS if workers is None else workers
    problem = None
    if (plain and workers > 1 and connection.vendor == "postgresql"
            and size >= settings.AUDIT_VERIFY_PARALLEL_MIN_EVENTS):
        try:
            problem = _verify_parallel(size, workers, tree, progress)
            report.workers = workers
        except (OSError, AssertionError, BrokenProcessPool) as exc:  # e.g. inside a daemonic process
            report.warnings.append(f"parallel verification unavailable ({exc!r}); checked in one process")
            tree = _TreeCheck(checkpoints, outside)
            problem = _verify_sequential(size, tree, progress)
    else:
        problem = _verify_sequential(size, tree, progress)
    report.checkpoints_checked = tree.checked
    if problem is not None:
        report.size = tree.builder.size
        return report.fail(problem.kind, problem.detail, problem.seq)
    report.size = tree.builder.size
    if tree.pending:
        cp = tree.pending[0]
        kind = "rollback" if outside is not None and cp is outside else "truncated"
        return report.fail(kind, f"a signed checkpoint covers {cp.size} events but the log has only {report.size}: "
                           + ("the database was restored to an older state" if kind == "rollback"
                              else "events at the end were deleted"), report.size)
    stale = AuditPending.objects.count()
    if stale:
        report.warnings.append(f"{stale} event(s) recorded but not yet sequenced")
    if progress is not None:
        progress(report.size, size)
    return report


def verification_run(*, external_checkpoint: bytes | None = None,
                     progress: Callable[[int, int], None] | None = None) -> tuple[AuditVerification, VerificationReport]:
    """Verify and keep the outcome, for the dashboard's "last verification" figure."""
    started = timezone.now()
    report = verify_log(external_checkpoint=external_checkpoint, progress=progress)
    record = AuditVerification.objects.create(
        started_at=started, finished_at=timezone.now(), size=report.size, ok=report.ok,
        first_bad_seq=report.first_bad_seq, problem=f"{report.problem}: {report.detail}" if report.problem else "")
    return record, report

