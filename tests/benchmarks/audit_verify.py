#!/usr/bin/env python
"""Full-log verification (``audits.verification.verify_log``) against streaming the same rows.

Usage (from the project root)::

    .venv/bin/python tests/benchmarks/audit_verify.py [--events 1000000] [--repeat 2] [--profile]

Why it exists: verification re-derives everything from the stored leaves (dense ``seq``, RFC 8785
canonical form, leaf hash, filter columns, the Merkle root at every signed checkpoint), so it is
the one job whose cost grows with the whole history of the log. The targets are that checking a
million events costs at most twice what merely reading them out of PostgreSQL costs (so the
checks, all Python, are not the bottleneck), and that memory stays flat (under 200 MB above the
process's own footprint) however long the log is. Both are ratios/deltas against a baseline
measured in the same run, which survives a noisy 2-core machine far better than absolute times.

What it does, and why each step is shaped the way it is:

1. Creates a throw-away PostgreSQL database (dropped first if a previous run left it) and runs
   ``manage.py migrate`` with temporary data and key folders (a development signing key is
   generated there, never in the developer's own folder).
2. Fills ``AuditEvent`` with ``--events`` realistic events by ``COPY ... (FORMAT BINARY)``,
   built exactly as ``audits.services._sequence_batch`` builds them: the leaf is the canonical
   JSON object (``seq, ts, actor, action, target, request_id, payload``), ``leaf_hash`` is
   SHA-256(0x00 || leaf), the filter columns are copied from the leaf. Leaves come from
   ``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)``, which equals RFC
   8785 for float-free values with BMP-only keys; every 500th leaf is cross-checked against
   ``audits.core.canonical.canonical_bytes`` (and ``verify_log`` itself re-checks all of them).
   Every ``--checkpoint-every`` events, ``audits.checkpoints.checkpoint_create()`` signs a
   checkpoint, so verification also recomputes and compares ten roots along the way.
3. VACUUM (ANALYZE) and CHECKPOINT: sets hint bits and the visibility map once, so the first
   reader of the table does not pay for writing them (which would penalise whichever of the two
   timed steps ran first).
4. Times, each in a fresh subprocess, interleaved ``--repeat`` times: (a) the baseline: the query
   ``verify_log`` uses (``audits.verification._rows()``), touching every row (``bytes()`` of the
   leaf and hash); (b) ``verify_log()``. The ratio uses each one's fastest repetition (noise on a
   shared machine only ever adds time). Peak memory of each: the kernel's high-water mark of
   resident memory (``VmHWM``, reset to the current size through ``/proc/self/clear_refs`` once
   ``django.setup()``, the imports and the database connection are done) minus the resident
   size at that moment: what the step itself added, Python objects, psycopg/libpq buffers and
   allocator slack included (``tracemalloc`` would miss libpq's buffers and slow the loop
   several-fold). Where the reset is not permitted, ``ru_maxrss`` stands in (see
   ``_reset_peak``). The absolute peak is reported too, and ``verify_log``'s current resident
   size every 20,000 events shows whether memory grows with the log.
5. Whenever the ratio misses the target (or with ``--profile``): a profile on the first
   ``--profile-events`` rows (cProfile of ``verify_log`` restricted to them, and each per-row
   step timed alone on rows already in memory), then over the whole log: the fastest stream
   this machine manages (psycopg, binary, server-side cursor: a second baseline), two
   prototype verifiers with the proposed changes (one process; ``--workers`` processes), and
   ``verify_log`` fetching ``SMALL_CHUNK`` rows at a time instead of 20,000 (memory). The
   prototypes keep every check of ``verify_log`` and must agree on the root.
6. Always drops the database and the temporary folders.

Human-readable lines go to stdout (progress to stderr); the LAST stdout line is one JSON object
with every figure. Exit status 0 only if verification succeeded (the ratio and memory targets are
reported, not enforced: a loaded CI machine must not fail a build on noise).
"""
from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import platform
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import FrameType
from typing import Any, Callable, Iterator

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
# The standalone verifier module: stdlib only (plus ``cryptography`` for notes), no Django, so the
# parallel prototype's worker processes import it cheaply. Its checks are the service's own.
from audits.verifier import check_canonical_leaf  # noqa: E402
# Refuse to drop anything that does not look like a benchmark database.
DB_NAME_RE = re.compile(r"^govaudit_bench[a-z0-9_]{0,40}$")
TARGET_RATIO = 2.0
TARGET_PEAK_MB = 200.0
STREAM_CHUNK = 2_000  # rows per fetch of the ORM baseline: verify_log fetches as many
SEED = 20261126
COLUMNS = ("seq", "ts", "action", "actor_id", "actor_name", "target_type", "target_id", "request_id", "leaf",
           "leaf_hash")


def log(message: str) -> None:
    """Progress goes to stderr so that stdout stays the summary lines plus one JSON line."""
    print(f"[verify {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _django_setup() -> None:
    """Internal modes run as ``python tests/benchmarks/audit_verify.py``: put the project first."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "governance.settings")
    import django

    django.setup()


_PEAK_METHOD: list[str] = ["ru_maxrss"]


def _status_mb(field_name: str) -> float | None:
    """A ``VmXXX`` line of ``/proc/self/status`` in MB, or None off Linux."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _reset_peak() -> float:
    """Start a fresh high-water mark at the current resident size; returns that size (MB).

    Writing 5 to ``/proc/self/clear_refs`` resets the kernel's ``VmHWM`` to the current RSS, so
    the peak read afterwards belongs to the measured step alone (not to, say, a transient peak
    during Django's imports). Where that is not permitted, ``ru_maxrss`` (never reset) is used
    instead, and the delta can then only understate the step's own peak if the imports peaked
    higher; ``peak_method`` in the output says which was used.
    """
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        rss = _status_mb("VmRSS")
        if rss is not None and _status_mb("VmHWM") is not None:
            _PEAK_METHOD[0] = "VmHWM after clear_refs"
            return rss
    except OSError:
        pass
    return _maxrss_mb()


def _peak_mb() -> float:
    """The high-water mark since ``_reset_peak`` (or since start, on the fallback)."""
    if _PEAK_METHOD[0] != "ru_maxrss":
        value = _status_mb("VmHWM")
        if value is not None:
            return value
    return _maxrss_mb()


def _maxrss_mb() -> float:
    """The process's resident-memory high-water mark since it started (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# =================================================================================================
# Realistic events
# =================================================================================================

_ROLES = [["ml-engineer"], ["ml-engineer", "model-owner"], ["reviewer"], ["compliance-officer"], ["admin"]]
_NAMES = ["alice", "bob", "chen.wei", "dana", "émile", "françoise", "jürgen", "ola", "priya", "søren", "zoë",
          "mateo", "aiko", "nadia", "li.na", "olu"]
_TEAMS = ["credit-risk", "clinical-ml", "fraud", "pricing", "search-ranking"]
_STAGES = ["none", "staging", "production", "archived"]
_REASONS = [
    "Quarterly retrain passed the validation gate; approved by the model risk committee.",
    "Rollback after drift alert on feature income_band (PSI above threshold).",
    "Shadow deployment finished; latency and calibration within limits.",
    "Données de validation mises à jour — revue par l'équipe conformité.",
    "Promotion blocked: fairness gate failed for group_c (demographic parity ratio 0.71).",
]


def make_event(rng: random.Random, seq: int, ts: datetime) -> dict[str, Any]:
    """One event as the services record them: varied actions, actors, targets and payloads.

    Shapes follow the registry and monitoring services (model/version/dataset/stage/token/drift
    events); about a tenth are scheduled (system actor, no request id); a few free-text fields
    carry accented characters, and about one event in 500 an emoji (outside the BMP, which takes
    the verifier's slower, fully general canonical-form path).
    """
    kind = rng.random()
    uid = rng.randrange(1, 400)
    user: dict[str, Any] = {"type": "user", "id": uid, "username": f"{_NAMES[uid % len(_NAMES)]}{uid}",
                            "roles": _ROLES[uid % len(_ROLES)]}
    if rng.random() < 0.4:
        user["token"] = {"id": uid * 3 + 1, "name": "ci-pipeline", "prefix": f"ga_{uid:04x}"}
    model_id = rng.randrange(1, 5000)
    team = _TEAMS[model_id % len(_TEAMS)]
    request_id: str | None = f"{rng.getrandbits(128):032x}"
    actor: dict[str, Any] = user
    if kind < 0.30:
        version = rng.randrange(1, 60)
        action = "version.register"
        target: dict[str, Any] | None = {"type": "registry.modelversion", "id": str(model_id * 100 + version),
                                         "label": f"{team}-model-{model_id} v{version}"}
        payload: dict[str, Any] = {
            "model": model_id, "version": version, "framework": rng.choice(["onnx", "sklearn", "xgboost", "torch"]),
            "artifact_uri": f"s3://models/{team}/{model_id}/v{version}/model.onnx",
            "artifact_sha256": f"{rng.getrandbits(256):064x}",
            "metrics": {"auc": f"0.{rng.randrange(700, 990)}", "ks": f"0.{rng.randrange(200, 600)}",
                        "brier": f"0.{rng.randrange(50, 200):03d}"},
            "parameters": {"max_depth": rng.randrange(2, 12), "n_estimators": rng.randrange(50, 2000),
                           "learning_rate": "0.05"},
            "training_datasets": [rng.randrange(1, 900) for _ in range(rng.randrange(1, 4))],
        }
    elif kind < 0.50:
        action = "stage.move"
        version = rng.randrange(1, 60)
        target = {"type": "registry.modelversion", "id": str(model_id * 100 + version),
                  "label": f"{team}-model-{model_id} v{version}"}
        frm, to = rng.sample(_STAGES, 2)
        payload = {"from": frm, "to": to, "reason": rng.choice(_REASONS), "gate": {
            "passed": rng.random() < 0.9, "checks": ["performance", "fairness", "drift", "approvals"]}}
    elif kind < 0.62:
        action = "model.update"
        target = {"type": "registry.model", "id": str(model_id), "label": f"{team}-model-{model_id}"}
        payload = {"changed": {"description": ["Scores applications for a downstream decision.",
                                               "Scores applications; reviewed quarterly by the risk committee."],
                               "risk_tier": ["medium", rng.choice(["low", "high", "critical"])]}}
    elif kind < 0.72:
        action = "dataset.register"
        ds = rng.randrange(1, 900)
        target = {"type": "registry.dataset", "id": str(ds), "label": f"{team}-data-{ds}"}
        payload = {"sha256": f"{rng.getrandbits(256):064x}", "rows": rng.randrange(1000, 5_000_000),
                   "size_bytes": rng.randrange(10_000, 2_000_000_000), "data_categories": ["personal"],
                   "storage_uri": f"s3://data/{team}/{ds}.parquet"}
    elif kind < 0.80:
        action = rng.choice(["auth.login", "auth.token.create", "auth.token.revoke"])
        target = {"type": "auth.user", "id": str(uid), "label": user["username"]}
        payload = {"ip": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
                   "user_agent": "python-requests/2.32"}
    elif kind < 0.90:
        action = "monitoring.drift.report"
        actor = {"type": "system", "name": "scheduler"}
        request_id = None
        target = {"type": "registry.model", "id": str(model_id), "label": f"{team}-model-{model_id}"}
        payload = {"window": "P1D", "psi": {f"f{k}": f"0.{rng.randrange(0, 400):03d}" for k in range(6)},
                   "alert": rng.random() < 0.05}
    else:
        action = "approval.grant"
        target = {"type": "registry.modelversion", "id": str(model_id * 100 + 1),
                  "label": f"{team}-model-{model_id} v1"}
        payload = {"request": rng.randrange(1, 100_000), "comment": rng.choice(_REASONS)}
    if rng.random() < 0.002:
        payload["note"] = "Déploiement validé 🚀"
    return {"seq": seq, "ts": ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "actor": actor, "action": action,
            "target": target, "request_id": request_id, "payload": payload}


_dumps = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, check_circular=False,
                          allow_nan=False).encode


def event_row(event: dict[str, Any], ts: datetime) -> tuple[Any, ...]:
    """The ``AuditEvent`` row of an event, columns derived as ``_sequence_batch`` derives them."""
    leaf = _dumps(event).encode("utf-8")
    actor = event.get("actor") or {}
    target = event.get("target") or {}
    return (event["seq"], ts, event["action"], actor.get("id") if actor.get("type") == "user" else None,
            str(actor.get("username") or actor.get("name") or ""), target.get("type", ""),
            str(target.get("id", "")), event.get("request_id") or "", leaf,
            hashlib.sha256(b"\x00" + leaf).digest())


# =================================================================================================
# Internal modes (fresh Django subprocesses)
# =================================================================================================

def internal_fill(events: int, checkpoint_every: int) -> dict[str, Any]:
    """COPY ``events`` rows in chunks of ``checkpoint_every``, signing a checkpoint after each."""
    _django_setup()
    import psycopg

    from audits.checkpoints import checkpoint_create
    from audits.core.canonical import canonical_bytes
    from audits.models import AuditCheckpoint

    rng = random.Random(SEED)
    ts = datetime(2026, 1, 5, 8, 0, 0, tzinfo=timezone.utc)
    leaf_bytes = non_ascii = checked = 0
    fill_s = checkpoint_s = 0.0
    with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
        seq = 0
        while seq < events:
            end = min(events, seq + checkpoint_every)
            t0 = time.perf_counter()
            with conn.cursor() as cur:
                with cur.copy(f"COPY audits_auditevent ({', '.join(COLUMNS)}) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types(["int8", "timestamptz", "varchar", "int8", "varchar", "varchar", "varchar",
                                    "varchar", "bytea", "bytea"])
                    for s in range(seq, end):
                        ts += timedelta(microseconds=rng.randrange(1, 2_000_000))
                        event = make_event(rng, s, ts)
                        row = event_row(event, ts)
                        leaf = row[8]
                        leaf_bytes += len(leaf)
                        non_ascii += not leaf.isascii()
                        if s % 500 == 0:  # the fast encoder must agree with the service's JCS
                            checked += 1
                            if canonical_bytes(event) != leaf:
                                raise RuntimeError(f"event {s}: json.dumps differs from canonical_bytes")
                        copy.write_row(row)
            conn.commit()
            fill_s += time.perf_counter() - t0
            t0 = time.perf_counter()
            checkpoint_create()
            checkpoint_s += time.perf_counter() - t0
            seq = end
            log(f"filled {seq:,} events")
    return {"events": events, "mean_leaf_bytes": round(leaf_bytes / max(1, events), 1),
            "non_ascii_share": round(non_ascii / max(1, events), 4), "canonical_cross_checked": checked,
            "checkpoints": AuditCheckpoint.objects.count(), "fill_seconds": round(fill_s, 2),
            "checkpoint_seconds": round(checkpoint_s, 2)}


def _ready() -> float:
    """Everything a step needs is imported and connected; starts the peak measurement there.

    Returns the resident size (MB) the step's peak is measured against.
    """
    from django.db import connection

    import audits.verification  # noqa: F401 - imported before the baseline RSS is taken

    connection.ensure_connection()
    with connection.cursor() as cur:
        cur.execute("SELECT 1")
    gc.collect()
    return _reset_peak()


def internal_stream() -> dict[str, Any]:
    """Baseline 1: the same rows through the ORM, as the service streams them (``audit_export``).

    Every column ``verify_log`` reads, ``values_list(...).iterator()`` over a server-side cursor,
    every row touched (``bytes()`` of the leaf and the hash), nothing checked.
    """
    _django_setup()
    from audits.models import AuditEvent

    before = _ready()
    t0 = time.perf_counter()
    rows = leaf_bytes = 0
    qs = AuditEvent.objects.order_by("seq").values_list(
        "seq", "leaf", "leaf_hash", "ts", "action", "actor_id", "actor_name", "target_type", "target_id",
        "request_id")
    for row in qs.iterator(chunk_size=STREAM_CHUNK):
        leaf = bytes(row[1])
        bytes(row[2])
        leaf_bytes += len(leaf)
        rows += 1
    seconds = time.perf_counter() - t0
    peak = _peak_mb()
    return {"seconds": round(seconds, 3), "rows": rows, "leaf_bytes": leaf_bytes, "rss_before_mb": round(before, 1),
            "rss_peak_mb": round(peak, 1), "peak_delta_mb": round(peak - before, 1),
            "peak_method": _PEAK_METHOD[0]}


def internal_stream_raw() -> dict[str, Any]:
    """Baseline 2: the fastest way this machine streams the same rows (psycopg, binary, server-side).

    The same SQL the verifier sends (timestamp rendered by the server), nothing checked: so the
    ratio to it is the cost of the checks alone, not of any plumbing.
    """
    _django_setup()
    before = _ready()
    t0 = time.perf_counter()
    rows = 0
    for _ in _raw_rows(None, binary=True, ts_text=True, itersize=2_000):
        rows += 1
    seconds = time.perf_counter() - t0
    peak = _peak_mb()
    return {"seconds": round(seconds, 3), "rows": rows, "rss_before_mb": round(before, 1),
            "rss_peak_mb": round(peak, 1), "peak_delta_mb": round(peak - before, 1),
            "peak_method": _PEAK_METHOD[0]}


def internal_verify(workers: int) -> dict[str, Any]:
    """``verify_log(workers=...)`` as ``manage.py audit_verify`` runs it, timed, with its memory.

    A progress callback samples current resident memory as it goes: a flat line shows memory does
    not grow with the log. With several workers, the children's peak is reported separately.
    """
    _django_setup()
    from audits.verification import verify_log

    before = _ready()
    page_mb = os.sysconf("SC_PAGE_SIZE") / 2**20
    timeline: list[tuple[int, float]] = []

    def progress(done: int, total: int) -> None:
        try:
            with open("/proc/self/statm") as fh:
                timeline.append((done, round(int(fh.read().split()[1]) * page_mb, 1)))
        except OSError:
            pass

    t0 = time.perf_counter()
    report = verify_log(progress=progress, workers=workers)
    seconds = time.perf_counter() - t0
    peak = _peak_mb()
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    step = max(1, len(timeline) // 10)
    return {"seconds": round(seconds, 3), "report": report.as_dict(), "workers_used": report.workers,
            "rss_before_mb": round(before, 1), "rss_peak_mb": round(peak, 1),
            "peak_delta_mb": round(peak - before, 1), "peak_method": _PEAK_METHOD[0],
            "largest_worker_rss_mb": round(children, 1) if report.workers > 1 else None,
            "rss_timeline_mb": timeline[::step] + timeline[-1:]}


# The ``ts`` column rendered by the server in the leaf's own layout (RFC 3339 UTC, microseconds).
TS_TEXT_SQL = """to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""


def _select(where: str = "", *, ts_text: bool = False) -> str:
    ts = TS_TEXT_SQL if ts_text else "ts"
    return (f"SELECT seq, leaf, leaf_hash, {ts}, action, actor_id, actor_name, target_type, target_id, request_id "
            f"FROM audits_auditevent{where} ORDER BY seq")


def _raw_rows(limit: int | None, *, binary: bool = False, ts_text: bool = False,
              itersize: int = 20_000) -> Iterator[tuple[Any, ...]]:
    """The same columns through a plain psycopg server-side cursor (no Django per-row work).

    ``ts_text``: the timestamp comes as the server's rendering in the leaf's layout, so the
    client compares two strings instead of converting a datetime per row (the server does the
    formatting, in its own process: on 2 cores, in parallel with the checks).
    """
    import psycopg

    # UTC, as Django sets it: timestamps then come back with a zero offset, like the ORM's.
    with psycopg.connect(os.environ["DATABASE_URL"], options="-c TimeZone=UTC") as conn:
        with conn.cursor(name="audit_verify_stream", binary=binary) as cur:
            cur.itersize = itersize
            cur.execute(_select("" if limit is None else f" WHERE seq < {int(limit)}", ts_text=ts_text))
            yield from cur


# =================================================================================================
# Orchestration (outside Django)
# =================================================================================================

def _bench_env(database_url: str, data_dir: str) -> dict[str, str]:
    """Development settings on the benchmark database, throw-away data/key folders."""
    env = dict(os.environ)
    for name in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "GOVAUDIT_STORAGE_DIR", "SECRET_KEY",
                 "AUDIT_SIGNING_KEY", "AUDIT_TRUSTED_KEYS"):
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
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _create_database(admin_url: str, name: str) -> dict[str, str]:
    from psycopg import sql

    _drop_database(admin_url, name)
    with _admin_connect(admin_url) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return {r[0]: r[1] for r in conn.execute(
            "SELECT name, setting FROM pg_settings WHERE name IN ('server_version', 'shared_buffers', "
            "'work_mem', 'autovacuum', 'fsync')").fetchall()}


def _run(cmd: list[str], env: dict[str, str], what: str, timeout: float = 1800) -> str:
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    if proc.stderr.strip():
        for line in proc.stderr.strip().splitlines()[-12:]:
            log(f"  {what}: {line}")
    return proc.stdout


def _internal(env: dict[str, str], mode: str, *extra: str) -> dict[str, Any]:
    """Run this file in a fresh Django subprocess; its last stdout line is the JSON answer."""
    out = _run([sys.executable, str(Path(__file__).resolve()), "--internal", mode, *extra], env, mode)
    return dict(json.loads(out.strip().splitlines()[-1]))


def _settle(db_url: str) -> dict[str, Any]:
    """VACUUM (ANALYZE) + CHECKPOINT after the fill; returns the table's size."""
    with _admin_connect(db_url) as conn:
        conn.execute("VACUUM (ANALYZE) audits_auditevent")
        conn.execute("CHECKPOINT")
        row = conn.execute("SELECT pg_total_relation_size('audits_auditevent'), "
                           "pg_relation_size('audits_auditevent')").fetchone()
    return {"table_total_mb": round(row[0] / 2**20, 1), "heap_mb": round(row[1] / 2**20, 1)}


def _raise_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """Turn SIGTERM into an exception so the finally block still drops the database."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the log (default 1,000,000)")
    parser.add_argument("--checkpoint-every", type=int, default=100_000,
                        help="sign a checkpoint after every this many events (default 100,000)")
    parser.add_argument("--repeat", type=int, default=2,
                        help="interleaved repetitions of every step; the fastest of each counts (default 2)")
    parser.add_argument("--workers", type=int, default=None,
                        help="verify_log's worker processes (default: settings.AUDIT_VERIFY_WORKERS)")
    parser.add_argument("--database", default="govaudit_bench_verify",
                        help="throw-away database name; must match govaudit_bench* (default govaudit_bench_verify)")
    parser.add_argument("--pg-url", default="postgres://postgres@127.0.0.1:5432",
                        help="PostgreSQL server URL without a database name")
    parser.add_argument("--internal", choices=["fill", "stream", "stream_raw", "verify"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.internal:
        if args.internal == "fill":
            answer = internal_fill(args.events, args.checkpoint_every)
        elif args.internal == "stream":
            answer = internal_stream()
        elif args.internal == "stream_raw":
            answer = internal_stream_raw()
        else:
            answer = internal_verify(args.workers)
        print(json.dumps(answer))
        return 0

    if not DB_NAME_RE.match(args.database):
        parser.error(f"--database must match {DB_NAME_RE.pattern} (it is dropped at the end)")
    if not (1 <= args.events <= 20_000_000 and 1 <= args.checkpoint_every and 1 <= args.repeat <= 10):
        parser.error("out of range: 1<=events<=2e7, checkpoint-every>=1, 1<=repeat<=10")
    if args.workers is None:
        args.workers = min(os.cpu_count() or 1, 4)  # settings.AUDIT_VERIFY_WORKERS' default
    signal.signal(signal.SIGTERM, _raise_on_sigterm)

    t_start = time.perf_counter()
    base_url = args.pg_url.rstrip("/")
    admin_url = f"{base_url}/postgres"
    db_url = f"{base_url}/{args.database}"
    data_dir = tempfile.mkdtemp(prefix="govaudit-bench-verify-")
    env = _bench_env(db_url, data_dir)
    failure: str | None = None
    db_created = False
    server: dict[str, str] = {}
    fill: dict[str, Any] = {}
    sizes: dict[str, Any] = {}
    runs: dict[str, list[dict[str, Any]]] = {"stream": [], "stream_raw": [], "verify_1": [], "verify_n": []}
    try:
        log(f"database {args.database}: drop if exists, create, migrate")
        server = _create_database(admin_url, args.database)
        db_created = True
        _run([sys.executable, str(ROOT / "manage.py"), "migrate", "--noinput"], env, "migrate")
        log(f"filling {args.events:,} events (COPY), a signed checkpoint every {args.checkpoint_every:,}")
        fill = _internal(env, "fill", "--events", str(args.events), "--checkpoint-every", str(args.checkpoint_every))
        sizes = _settle(db_url)
        log(f"filled in {fill['fill_seconds']} s + checkpoints {fill['checkpoint_seconds']} s; table "
            f"{sizes['table_total_mb']} MB; VACUUM ANALYZE + CHECKPOINT done")
        for i in range(args.repeat):
            for name, extra in (("stream", ()), ("stream_raw", ()), ("verify_1", ("--workers", "1")),
                                ("verify_n", ("--workers", str(args.workers)))):
                if name == "verify_n" and args.workers == 1:
                    continue
                runs[name].append(_internal(env, name.split("_")[0] if name.startswith("verify") else name, *extra))
                log(f"repeat {i + 1}/{args.repeat}: {name} {runs[name][-1]['seconds']} s")
        for name in ("verify_1", "verify_n"):
            for run in runs[name]:
                if run["report"]["ok"] is not True:
                    failure = f"verify_log ({name}) failed: {run['report']}"
        if any(s["rows"] != args.events for s in runs["stream"] + runs["stream_raw"]):
            failure = "a stream did not return every event"
    except BaseException as exc:  # noqa: BLE001 - reported below after cleanup
        failure = f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, (RuntimeError, SystemExit, KeyboardInterrupt)):
            import traceback

            traceback.print_exc()
    finally:
        if db_created:
            log(f"dropping database {args.database}")
            try:
                _drop_database(admin_url, args.database)
            except Exception as exc:  # noqa: BLE001 - keep cleaning up; say so loudly
                log(f"WARNING: could not drop {args.database}: {exc}")
        shutil.rmtree(data_dir, ignore_errors=True)

    best = {name: min(r["seconds"] for r in rs) for name, rs in runs.items() if rs}
    summary: dict[str, Any] = {}
    lines: list[str] = []
    if "stream" in best and "verify_1" in best:
        headline = "verify_n" if "verify_n" in best else "verify_1"
        verify_s = best[headline]
        peak = max(r["peak_delta_mb"] for r in runs[headline])
        worker_peak = max((r["largest_worker_rss_mb"] or 0) for r in runs[headline])
        summary = {
            "stream_seconds": best["stream"], "raw_stream_seconds": best.get("stream_raw"),
            "verify_seconds": verify_s, "verify_workers": runs[headline][0]["workers_used"],
            "verify_single_process_seconds": best["verify_1"],
            "ratio": round(verify_s / best["stream"], 3),
            "ratio_to_raw_stream": round(verify_s / best["stream_raw"], 3) if "stream_raw" in best else None,
            "ratio_single_process": round(best["verify_1"] / best["stream"], 3),
            "ratio_single_process_to_raw_stream": (round(best["verify_1"] / best["stream_raw"], 3)
                                                   if "stream_raw" in best else None),
            "target_ratio": TARGET_RATIO, "ratio_met": verify_s / best["stream"] <= TARGET_RATIO,
            "verify_events_per_s": round(args.events / verify_s),
            "stream_events_per_s": round(args.events / best["stream"]),
            "verify_peak_delta_mb": peak, "verify_peak_rss_mb": max(r["rss_peak_mb"] for r in runs[headline]),
            "verify_largest_worker_rss_mb": worker_peak or None,
            "verify_single_process_peak_delta_mb": max(r["peak_delta_mb"] for r in runs["verify_1"]),
            "stream_peak_delta_mb": max(s["peak_delta_mb"] for s in runs["stream"]),
            "target_peak_mb": TARGET_PEAK_MB, "peak_met": peak < TARGET_PEAK_MB and worker_peak < TARGET_PEAK_MB,
            "peak_method": runs[headline][0].get("peak_method"),
        }
        lines.append(f"log: {args.events:,} events, mean leaf {fill.get('mean_leaf_bytes')} bytes, "
                     f"{fill.get('checkpoints')} signed checkpoints, table {sizes.get('table_total_mb')} MB")
        for name, label in (("stream", "stream, ORM (baseline)"), ("stream_raw", "stream, raw psycopg binary"),
                            ("verify_1", "verify_log, 1 process"),
                            ("verify_n", f"verify_log, {args.workers} processes")):
            if name in best:
                rs = runs[name]
                lines.append(f"{label:<32} {[r['seconds'] for r in rs]} s -> {round(args.events / best[name]):,} "
                             f"events/s; peak +{max(r['peak_delta_mb'] for r in rs)} MB"
                             + (f", largest worker {max((r['largest_worker_rss_mb'] or 0) for r in rs)} MB"
                                if name == "verify_n" else ""))
        lines.append(f"resident memory of verify_log as it goes (events done, MB): {runs[headline][0]['rss_timeline_mb']}")
        lines.append(f"ratio verify/stream {summary['ratio']} (target <= {TARGET_RATIO}: "
                     f"{'MET' if summary['ratio_met'] else 'NOT MET'}); to the raw stream "
                     f"{summary['ratio_to_raw_stream']}; single process {summary['ratio_single_process']} "
                     f"(raw {summary['ratio_single_process_to_raw_stream']}); peak +{peak} MB (target < "
                     f"{TARGET_PEAK_MB:g} MB: {'MET' if summary['peak_met'] else 'NOT MET'})")
    for line in lines:
        print(line)
    report = {
        "benchmark": "audit_verify",
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "postgres": server},
        "config": {"events": args.events, "checkpoint_every": args.checkpoint_every, "repeat": args.repeat,
                   "workers": args.workers, "seed": SEED},
        "fill": fill, "table": sizes, **summary, "runs": runs,
        "total_runtime_seconds": round(time.perf_counter() - t_start, 1), "ok": failure is None,
    }
    if failure:
        report["failure"] = failure
        log(f"FAILED: {failure}")
    print(json.dumps(report, default=str))
    return 0 if failure is None else 1


if __name__ == "__main__":
    sys.exit(main())
