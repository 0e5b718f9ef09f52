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
from audits.verifier import _FOUR_BYTE_UTF8, _fast_encode, check_canonical_leaf  # noqa: E402
# Refuse to drop anything that does not look like a benchmark database.
DB_NAME_RE = re.compile(r"^govaudit_bench[a-z0-9_]{0,40}$")
TARGET_RATIO = 2.0
TARGET_PEAK_MB = 200.0
SMALL_CHUNK = 2_000  # the profile also runs verify_log with this fetch size, to show what memory it saves
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


def _set_chunk(chunk: int | None) -> None:
    """Rows per fetch of ``verify_log``'s server-side cursor (``audits.verification._CHUNK``)."""
    if chunk:
        from audits import verification

        verification._CHUNK = chunk  # read by _rows() at call time


def internal_stream(chunk: int | None = None) -> dict[str, Any]:
    """The baseline: ``verify_log``'s own query, every row touched, nothing checked."""
    _django_setup()
    from audits.verification import _rows

    _set_chunk(chunk)
    before = _ready()
    t0 = time.perf_counter()
    rows = leaf_bytes = 0
    for row in _rows():
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
    """The fastest way this machine can stream the same rows: psycopg, binary, server-side cursor.

    A second baseline for the prototypes, which read rows this way: without it, a prototype that
    merely reads faster than Django's iterator would look as if its checks were cheaper.
    """
    _django_setup()
    before = _ready()
    t0 = time.perf_counter()
    rows = 0
    for _ in _raw_rows(None, binary=True):
        rows += 1
    seconds = time.perf_counter() - t0
    peak = _peak_mb()
    return {"seconds": round(seconds, 3), "rows": rows, "rss_before_mb": round(before, 1),
            "rss_peak_mb": round(peak, 1), "peak_delta_mb": round(peak - before, 1),
            "peak_method": _PEAK_METHOD[0]}


def internal_verify(chunk: int | None = None) -> dict[str, Any]:
    """``verify_log()`` as ``manage.py audit_verify`` runs it, timed, with its memory high-water mark.

    A progress callback samples current resident memory every 20,000 events: a flat line shows
    memory does not grow with the log.
    """
    _django_setup()
    from audits.verification import verify_log

    _set_chunk(chunk)
    before = _ready()
    page_mb = os.sysconf("SC_PAGE_SIZE") / 2**20
    timeline: list[tuple[int, float]] = []

    def progress(done: int, total: int) -> None:
        # Current (not peak) resident memory every 20,000 events: flat means O(1) in the log size.
        try:
            with open("/proc/self/statm") as fh:
                timeline.append((done, round(int(fh.read().split()[1]) * page_mb, 1)))
        except OSError:
            pass

    t0 = time.perf_counter()
    report = verify_log(progress=progress)
    seconds = time.perf_counter() - t0
    peak = _peak_mb()
    step = max(1, len(timeline) // 10)
    return {"seconds": round(seconds, 3), "report": report.as_dict(), "rss_before_mb": round(before, 1),
            "rss_peak_mb": round(peak, 1), "peak_delta_mb": round(peak - before, 1),
            "peak_method": _PEAK_METHOD[0],
            "rss_timeline_mb": timeline[::step] + timeline[-1:]}


def _limited_rows(limit: int) -> Callable[[], Any]:
    """``_rows()`` restricted to the first ``limit`` events (the profile's slice of the log)."""
    from audits.models import AuditEvent
    from audits.verification import _CHUNK

    def rows() -> Any:
        qs = AuditEvent.objects.filter(seq__lt=limit).order_by("seq").values_list(
            "seq", "leaf", "leaf_hash", "ts", "action", "actor_id", "actor_name", "target_type", "target_id",
            "request_id")
        return qs.iterator(chunk_size=_CHUNK)

    return rows


def internal_profile(limit: int) -> dict[str, Any]:
    """Where verification's time goes, on the first ``limit`` events.

    1. cProfile of ``verify_log`` with ``_rows`` restricted to those events (the checkpoints
       past them then report "truncated": expected, only the work matters here).
    2. The same rows fetched once into memory, then each per-row step timed alone: the fetch
       itself (Django ``values_list`` iterator vs. a plain psycopg server-side cursor), the
       canonical-form check, the hash, the column comparison (and its ``strftime``), the tree.
    3. A prototype of the proposed loop on the same rows, checked to give the same root.
    """
    import cProfile
    import io
    import pstats

    _django_setup()
    from audits import verification
    from audits.core.merkle import TreeBuilder

    _ready()
    out: dict[str, Any] = {"events": limit}
    real_rows = verification._rows
    verification._rows = _limited_rows(limit)  # type: ignore[assignment]
    profiler = cProfile.Profile()
    t0 = time.perf_counter()
    profiler.enable()
    report = verification.verify_log()
    profiler.disable()
    out["verify_log_profiled_seconds"] = round(time.perf_counter() - t0, 3)
    out["verify_log_profiled_report"] = report.problem or "ok"
    t0 = time.perf_counter()
    verification.verify_log()
    out["verify_log_seconds"] = round(time.perf_counter() - t0, 3)
    verification._rows = real_rows  # type: ignore[assignment]
    stream = io.StringIO()
    pstats.Stats(profiler, stream=stream).sort_stats("tottime").print_stats(16)
    lines = [ln for ln in stream.getvalue().splitlines() if ln.strip()]
    start = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls")), 0)
    out["cprofile_tottime"] = [re.sub(r"\s+", " ", ln.strip())[:170] for ln in lines[start:start + 17]]

    def per_row(fn: Callable[[], Any]) -> float:
        t = time.perf_counter()
        fn()
        return round((time.perf_counter() - t) / limit * 1e6, 3)

    def each(fn: Callable[[Any], Any], items: list[Any]) -> Callable[[], None]:
        def run() -> None:
            for item in items:
                fn(item)
        return run

    steps: dict[str, float] = {}
    rows: list[tuple[Any, ...]] = []
    steps["fetch_django_values_list"] = per_row(lambda: rows.extend(_limited_rows(limit)()))
    steps["fetch_psycopg_server_cursor"] = per_row(lambda: _count(_raw_rows(limit)))
    steps["fetch_psycopg_server_cursor_binary"] = per_row(lambda: _count(_raw_rows(limit, binary=True)))
    text_rows: list[tuple[Any, ...]] = []
    steps["fetch_psycopg_binary_ts_as_text"] = per_row(
        lambda: text_rows.extend(_raw_rows(limit, binary=True, ts_text=True)))
    leaves = [bytes(r[1]) for r in rows]
    parsed = [check_canonical_leaf(b) for b in leaves]
    hashes = [bytes(r[2]) for r in rows]
    pairs = list(zip(parsed, rows))
    if [r[0] for r in text_rows] != [r[0] for r in rows]:
        raise RuntimeError("the two fetches returned different rows")
    # The verifier streams: it never holds these lists, so the collector must not walk them
    # while the steps below run (it would charge a full traversal of 100k dicts to each step).
    gc.collect()
    gc.freeze()
    steps["bytes_conversions"] = per_row(each(lambda r: (bytes(r[1]), bytes(r[2])), rows))
    steps["check_canonical_leaf"] = per_row(each(check_canonical_leaf, leaves))
    steps["check_canonical_leaf_regex_prescan_rejected"] = per_row(each(_check_canonical_fast, leaves))
    steps["utf8_decode_only"] = per_row(each(bytes.decode, leaves))
    steps["json_loads_only"] = per_row(each(json.loads, leaves))
    sha = hashlib.sha256
    steps["leaf_hash"] = per_row(each(lambda b: sha(b"\x00" + b).digest(), leaves))
    steps["columns_match"] = per_row(each(lambda pr: verification._columns_match(*pr), pairs))
    steps["columns_ts_strftime_only"] = per_row(each(lambda r: verification._ts(r[3]), rows))
    steps["columns_match_isoformat"] = per_row(each(lambda pr: _columns_match_fast(*pr), pairs))
    text_pairs = list(zip(parsed, text_rows))
    steps["columns_match_ts_as_text"] = per_row(each(lambda pr: _columns_match_text(*pr), text_pairs))

    def tree() -> None:
        b = TreeBuilder()
        for h in hashes:
            b.append(h)

    steps["tree_append"] = per_row(tree)
    steps["tree_extend"] = per_row(lambda: TreeBuilder().extend(hashes))
    gc.unfreeze()
    out["per_row_us"] = steps
    return out


def _count(it: Iterator[Any]) -> int:
    n = 0
    for _ in it:
        n += 1
    return n


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


_TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
# An integer beyond 2**53 - 1 has 16 or more digits, and a JSON number starts right after ":", ",",
# "[" or "-": so without this pattern nowhere in the bytes, no integer can be out of range. (Hex
# digests and ids inside strings rarely match it; when they do, the slow path decides.)
_LONG_INT = re.compile(rb"[:,\[-][0-9]{16}")


class _Fallback(Exception):
    """The proposed fast check cannot decide: use ``check_canonical_leaf``."""


def _to_fallback(_: str) -> Any:
    raise _Fallback


_plain_decoder = json.JSONDecoder(parse_float=_to_fallback, parse_constant=_to_fallback)



def _check_canonical_fast(leaf: bytes) -> object:
    """``check_canonical_leaf`` without a Python call per integer, same verdicts. TRIED, REJECTED.

    Kept only so the profile keeps measuring it: the regex pre-scan costs more (about 2.3 us on a
    500-byte leaf) than the per-integer callback it saves (about 0.8 us), so the prototypes use
    ``check_canonical_leaf`` unchanged.

    The current fast path parses with ``parse_int=_safe_int`` so that integers beyond 2**53 - 1
    are refused, which costs a Python function call for every integer in every leaf. An integer
    that large needs 16 or more digits after a structural character, so one regex scan of the
    bytes (``_LONG_INT``) decides whether any can be present; only then (and for floats,
    NaN/Infinity and characters outside the BMP, as before) the leaf goes through the existing
    ``check_canonical_leaf``. Otherwise: C decoder, C encoder, compare, exactly as now.
    """
    if _LONG_INT.search(leaf) or (not leaf.isascii() and _FOUR_BYTE_UTF8.search(leaf)):
        return check_canonical_leaf(leaf)
    try:
        text = leaf.decode("utf-8")
        value = _plain_decoder.decode(text)
    except _Fallback:
        return check_canonical_leaf(leaf)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return check_canonical_leaf(leaf)  # raises with the same reason as today
    if _fast_encode(value) == text:
        return value
    return check_canonical_leaf(leaf)  # raises "not in RFC 8785 canonical form"


def _columns_match_fast(leaf: dict[str, Any], row: tuple[Any, ...]) -> bool:
    """``_columns_match`` with the timestamp compared without ``strftime`` on every row.

    The leaf's ``ts`` has one fixed layout (``YYYY-MM-DDTHH:MM:SS.ffffffZ``, 27 characters);
    ``datetime.isoformat()`` of the UTC column gives ``YYYY-MM-DDTHH:MM:SS.ffffff+00:00`` when it
    has microseconds, so comparing the first 26 characters plus the layout checks is exact,
    and ``isoformat`` is several times cheaper than ``strftime``.
    """
    _, _, _, ts, action, actor_id, actor_name, target_type, target_id, request_id = row
    actor = leaf.get("actor") or {}
    target = leaf.get("target") or {}
    text = leaf.get("ts")
    iso = ts.isoformat()
    return (leaf.get("action") == action
            and isinstance(text, str) and len(text) == 27 and text[26] == "Z" and ts.utcoffset() == timedelta(0)
            and (iso[:26] == text[:26] if len(iso) == 32 else ts.strftime(_TS_FORMAT) == text)
            and (actor.get("id") if actor.get("type") == "user" else None) == actor_id
            and str(actor.get("username") or actor.get("name") or "") == actor_name
            and target.get("type", "") == target_type and str(target.get("id", "")) == target_id
            and (leaf.get("request_id") or "") == request_id)


def _columns_match_text(leaf: dict[str, Any], row: tuple[Any, ...]) -> bool:
    """``_columns_match`` for rows whose ``ts`` the server rendered in the leaf's layout."""
    _, _, _, ts_text, action, actor_id, actor_name, target_type, target_id, request_id = row
    actor = leaf.get("actor") or {}
    target = leaf.get("target") or {}
    return (leaf.get("action") == action and leaf.get("ts") == ts_text
            and (actor.get("id") if actor.get("type") == "user" else None) == actor_id
            and str(actor.get("username") or actor.get("name") or "") == actor_name
            and target.get("type", "") == target_type and str(target.get("id", "")) == target_id
            and (leaf.get("request_id") or "") == request_id)


def internal_proto() -> dict[str, Any]:
    """The proposed verification loop over the whole log: same checks, cheaper plumbing.

    Changes against ``verify_log`` (each measured alone by the profile): rows come from a plain
    psycopg server-side cursor in binary format instead of Django's ``values_list`` iterator (no
    per-row converter calls, psycopg's C timestamp loader instead of the Python subclass Django
    registers for time zones), the timestamp is rendered by the server in the leaf's layout
    (``TS_TEXT_SQL``) and compared as a string (no datetime per row, no ``strftime``), and leaf
    hashes are fed to the tree in chunks through ``TreeBuilder.extend``. Every check of
    ``verify_log`` is kept (seq density, canonical form, leaf seq, hash, columns, checkpoint
    roots); on success it must report the same size and root at every checkpoint.
    """
    _django_setup()
    from audits.core.merkle import TreeBuilder
    from audits.keys import trusted_keys
    from audits.core.note import open_checkpoint
    from audits.models import AuditCheckpoint
    before = _ready()
    t0 = time.perf_counter()
    keys = [k.verifier for k in trusted_keys()]
    checkpoints = []
    for cp in AuditCheckpoint.objects.order_by("size"):
        body, _ = open_checkpoint(cp.note.encode("utf-8"), keys)
        if body.size != cp.size or body.root_hash != bytes(cp.root_hash):
            return {"ok": False, "problem": "checkpoint_tampered"}
        checkpoints.append(body)
    builder = TreeBuilder()
    sha256 = hashlib.sha256
    expected = 0
    pending: list[bytes] = []
    cps = list(checkpoints)
    checked = 0
    problem = None
    for row in _raw_rows(None, binary=True, ts_text=True, itersize=PROTO_FETCH):
        seq, leaf, stored = row[0], row[1], row[2]
        if seq != expected:
            problem = f"gap/duplicate at {expected}"
            break
        parsed = check_canonical_leaf(leaf)
        if not isinstance(parsed, dict) or parsed.get("seq") != seq:
            problem = f"leaf_seq_mismatch at {seq}"
            break
        computed = sha256(b"\x00" + leaf).digest()
        if computed != stored:
            problem = f"hash_mismatch at {seq}"
            break
        if not _columns_match_text(parsed, row):
            problem = f"columns_mismatch at {seq}"
            break
        pending.append(computed)
        expected += 1
        if cps and cps[0].size == expected or len(pending) >= 4096:
            builder.extend(pending)
            pending.clear()
            while cps and cps[0].size == expected:
                if builder.root() != cps.pop(0).root_hash:
                    problem = f"root_mismatch at {expected}"
                    break
                checked += 1
            if problem:
                break
    builder.extend(pending)
    seconds = time.perf_counter() - t0
    peak = _peak_mb()
    ok = problem is None and not cps
    return {"seconds": round(seconds, 3), "ok": ok, "problem": problem, "size": expected,
            "checkpoints_checked": checked, "root": builder.root().hex(), "rss_before_mb": round(before, 1),
            "rss_peak_mb": round(peak, 1), "peak_delta_mb": round(peak - before, 1),
            "peak_method": _PEAK_METHOD[0]}


PARALLEL_CHUNK = 8_192  # rows per task of the parallel prototype (~5 MB of leaves in a worker)
PROTO_FETCH = 2_000  # rows per fetch of the single-process prototype (memory; see SMALL_CHUNK)
_WORKER_CONN: list[Any] = []


def _worker_init(database_url: str) -> None:
    """Each worker process keeps one connection (UTC, like Django's) for all its chunks."""
    import psycopg

    _WORKER_CONN.append(psycopg.connect(database_url, options="-c TimeZone=UTC", autocommit=True))


def _check_chunk(start: int) -> tuple[int, int, bytes, str | None]:
    """Check rows with seq in [start, start + PARALLEL_CHUNK): every per-row check of ``verify_log``.

    Returns (start, rows seen, their leaf hashes concatenated in seq order, first problem). The
    parent puts the hashes into the tree in order and checks density across chunks by the counts.
    """
    conn = _WORKER_CONN[0]
    sha256 = hashlib.sha256
    hashes: list[bytes] = []
    expected = start
    with conn.cursor(binary=True) as cur:
        cur.execute(_select(" WHERE seq >= %s AND seq < %s", ts_text=True), [start, start + PARALLEL_CHUNK])
        for row in cur:
            seq, leaf = row[0], row[1]
            if seq != expected:
                return start, len(hashes), b"", f"gap: expected seq {expected}, found {seq}"
            try:
                parsed = check_canonical_leaf(leaf)
            except ValueError as exc:
                return start, len(hashes), b"", f"leaf_not_canonical at {seq}: {exc}"
            if not isinstance(parsed, dict) or parsed.get("seq") != seq:
                return start, len(hashes), b"", f"leaf_seq_mismatch at {seq}"
            computed = sha256(b"\x00" + leaf).digest()
            if computed != row[2]:
                return start, len(hashes), b"", f"hash_mismatch at {seq}"
            if not _columns_match_text(parsed, row):
                return start, len(hashes), b"", f"columns_mismatch at {seq}"
            hashes.append(computed)
            expected += 1
    return start, len(hashes), b"".join(hashes), None


def internal_proto_parallel(workers: int) -> dict[str, Any]:
    """The proposed loop split over ``workers`` processes: same checks, tree built in order.

    Per-row checks are independent of each other; only the tree needs the leaf hashes in order,
    and it is cheap (half a microsecond a leaf). So worker processes (no Django, one connection
    each) check seq-range chunks and return 32 bytes per leaf; the parent feeds the hashes to
    ``TreeBuilder`` in seq order, compares the root at each signed checkpoint, and checks that
    every chunk was full up to the log's end. Memory stays bounded: ``imap`` delivers in order
    and a worker holds one chunk at a time.
    """
    import multiprocessing

    _django_setup()
    from audits.core.merkle import TreeBuilder
    from audits.core.note import open_checkpoint
    from audits.keys import trusted_keys
    from audits.models import AuditCheckpoint, AuditEvent
    from django.db.models import Count, Max, Min

    before = _ready()
    t0 = time.perf_counter()
    keys = [k.verifier for k in trusted_keys()]
    cps = []
    for cp in AuditCheckpoint.objects.order_by("size"):
        body, _ = open_checkpoint(cp.note.encode("utf-8"), keys)
        if body.size != cp.size or body.root_hash != bytes(cp.root_hash):
            return {"ok": False, "problem": "checkpoint_tampered"}
        cps.append(body)
    agg = AuditEvent.objects.aggregate(n=Count("seq"), lo=Min("seq"), hi=Max("seq"))
    size = 0 if agg["hi"] is None else agg["hi"] + 1
    problem = None
    if agg["n"] and (agg["lo"] != 0 or agg["n"] != size):
        problem = f"not dense: {agg}"  # a gap or a negative seq somewhere; the chunks will say where
    builder = TreeBuilder()
    checked = 0
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers, initializer=_worker_init, initargs=(os.environ["DATABASE_URL"],)) as pool:
        for start, n, blob, chunk_problem in pool.imap(_check_chunk, range(0, size, PARALLEL_CHUNK)):
            want = min(PARALLEL_CHUNK, size - start)
            if chunk_problem or n != want:
                problem = chunk_problem or f"gap: chunk at {start} has {n} of {want} events"
                pool.terminate()
                break
            hashes = [blob[i:i + 32] for i in range(0, len(blob), 32)]
            pos = 0
            while cps and cps[0].size <= start + n:
                cut = cps[0].size - start
                builder.extend(hashes[pos:cut])
                pos = cut
                if builder.root() != cps.pop(0).root_hash:
                    problem = f"root_mismatch at {builder.size}"
                    break
                checked += 1
            if problem:
                pool.terminate()
                break
            builder.extend(hashes[pos:])
    seconds = time.perf_counter() - t0
    peak = _peak_mb()
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"seconds": round(seconds, 3), "ok": problem is None and not cps, "problem": problem,
            "size": builder.size, "workers": workers, "checkpoints_checked": checked,
            "root": builder.root().hex(), "rss_before_mb": round(before, 1), "rss_peak_mb": round(peak, 1),
            "peak_delta_mb": round(peak - before, 1), "peak_method": _PEAK_METHOD[0],
            "largest_worker_rss_mb": round(children, 1)}


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
                        help="interleaved repetitions of stream and verify; the fastest of each counts (default 2)")
    parser.add_argument("--profile", action="store_true",
                        help="profile and run the prototype even when the ratio meets the target")
    parser.add_argument("--profile-events", type=int, default=100_000,
                        help="events the profile looks at (default 100,000)")
    parser.add_argument("--database", default="govaudit_bench_verify",
                        help="throw-away database name; must match govaudit_bench* (default govaudit_bench_verify)")
    parser.add_argument("--pg-url", default="postgres://postgres@127.0.0.1:5432",
                        help="PostgreSQL server URL without a database name")
    parser.add_argument("--chunk", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2,
                        help="processes of the parallel prototype (default: CPU count)")
    parser.add_argument("--internal", choices=["fill", "stream", "verify", "profile", "proto", "proto_parallel",
                                               "stream_raw"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.internal:
        if args.internal == "fill":
            answer = internal_fill(args.events, args.checkpoint_every)
        elif args.internal == "stream":
            answer = internal_stream(args.chunk)
        elif args.internal == "verify":
            answer = internal_verify(args.chunk)
        elif args.internal == "profile":
            answer = internal_profile(args.profile_events)
        elif args.internal == "proto_parallel":
            answer = internal_proto_parallel(args.workers)
        elif args.internal == "stream_raw":
            answer = internal_stream_raw()
        else:
            answer = internal_proto()
        print(json.dumps(answer))
        return 0

    if not DB_NAME_RE.match(args.database):
        parser.error(f"--database must match {DB_NAME_RE.pattern} (it is dropped at the end)")
    if not (1 <= args.events <= 20_000_000 and 1 <= args.checkpoint_every and 1 <= args.repeat <= 10
            and 1 <= args.profile_events):
        parser.error("out of range: 1<=events<=2e7, checkpoint-every>=1, 1<=repeat<=10, profile-events>=1")
    signal.signal(signal.SIGTERM, _raise_on_sigterm)

    t_start = time.perf_counter()
    base_url = args.pg_url.rstrip("/")
    admin_url = f"{base_url}/postgres"
    db_url = f"{base_url}/{args.database}"
    data_dir = tempfile.mkdtemp(prefix="govaudit-bench-verify-")
    env = _bench_env(db_url, data_dir)
    report: dict[str, Any] = {}
    failure: str | None = None
    db_created = False
    server: dict[str, str] = {}
    fill: dict[str, Any] = {}
    sizes: dict[str, Any] = {}
    streams: list[dict[str, Any]] = []
    verifies: list[dict[str, Any]] = []
    profile: dict[str, Any] = {}
    proto: dict[str, Any] = {}
    proto_parallel: dict[str, Any] = {}
    raw_stream: dict[str, Any] = {}
    small_chunk: dict[str, Any] = {}
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
            streams.append(_internal(env, "stream"))
            log(f"repeat {i + 1}/{args.repeat}: stream {streams[-1]['seconds']} s")
            verifies.append(_internal(env, "verify"))
            log(f"repeat {i + 1}/{args.repeat}: verify_log {verifies[-1]['seconds']} s, "
                f"ok={verifies[-1]['report']['ok']}")
        stream_s = min(s["seconds"] for s in streams)
        verify_s = min(v["seconds"] for v in verifies)
        ratio = verify_s / stream_s
        if ratio > TARGET_RATIO or args.profile:
            log(f"ratio {ratio:.2f}: profiling the first {min(args.profile_events, args.events):,} events")
            profile = _internal(env, "profile", "--profile-events", str(min(args.profile_events, args.events)))
            log("prototypes over the whole log: raw binary stream, single-process and parallel verifiers")
            raw_stream = _internal(env, "stream_raw")
            proto = _internal(env, "proto")
            proto_parallel = _internal(env, "proto_parallel", "--workers", str(args.workers))
            log(f"verify_log with {SMALL_CHUNK:,}-row fetches instead of 20,000 (memory)")
            small_chunk = _internal(env, "verify", "--chunk", str(SMALL_CHUNK))
            if (proto.get("ok") or proto_parallel.get("ok")) and verifies[0]["report"]["ok"] is not True:
                failure = "a prototype accepted a log verify_log rejected"
            elif proto.get("root") != proto_parallel.get("root"):
                failure = "the two prototypes computed different roots"
        if not all(v["report"]["ok"] for v in verifies):
            failure = f"verify_log failed: {verifies[0]['report']}"
        elif any(s["rows"] != args.events for s in streams):
            failure = "the stream did not return every event"
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

    lines: list[str] = []
    summary: dict[str, Any] = {}
    if verifies:
        summary["peak_method"] = verifies[0].get("peak_method")
    if streams and verifies:
        stream_s = min(s["seconds"] for s in streams)
        verify_s = min(v["seconds"] for v in verifies)
        ratio = verify_s / stream_s
        peak = max(v["peak_delta_mb"] for v in verifies)
        summary = {
            "stream_seconds": stream_s, "verify_seconds": verify_s, "ratio": round(ratio, 3),
            "target_ratio": TARGET_RATIO, "ratio_met": ratio <= TARGET_RATIO,
            "verify_events_per_s": round(args.events / verify_s), "stream_events_per_s": round(args.events / stream_s),
            "verify_peak_delta_mb": peak, "verify_peak_rss_mb": max(v["rss_peak_mb"] for v in verifies),
            "stream_peak_delta_mb": max(s["peak_delta_mb"] for s in streams),
            "target_peak_mb": TARGET_PEAK_MB, "peak_met": peak < TARGET_PEAK_MB,
        }
        lines.append(f"log: {args.events:,} events, mean leaf {fill.get('mean_leaf_bytes')} bytes, "
                     f"{fill.get('checkpoints')} signed checkpoints, table {sizes.get('table_total_mb')} MB")
        lines.append(f"stream (verify_log's query, rows touched): {[s['seconds'] for s in streams]} s -> "
                     f"{summary['stream_events_per_s']:,} events/s; peak +{summary['stream_peak_delta_mb']} MB")
        lines.append(f"verify_log:                                {[v['seconds'] for v in verifies]} s -> "
                     f"{summary['verify_events_per_s']:,} events/s; peak +{peak} MB (RSS high-water "
                     f"{summary['verify_peak_rss_mb']} MB, {verifies[0]['rss_before_mb']} MB before)")
        lines.append(f"verify_log resident memory as it goes (events done, MB): {verifies[0].get('rss_timeline_mb')}")
        lines.append(f"ratio verify/stream {ratio:.2f} (target <= {TARGET_RATIO}: "
                     f"{'MET' if ratio <= TARGET_RATIO else 'NOT MET'}); peak memory +{peak} MB (target < "
                     f"{TARGET_PEAK_MB:g} MB: {'MET' if peak < TARGET_PEAK_MB else 'NOT MET'}); verify_log report: "
                     f"ok={verifies[0]['report']['ok']}, checkpoints checked "
                     f"{verifies[0]['report']['checkpoints_checked']}")
    if profile:
        lines.append(f"profile on {profile['events']:,} events: verify_log {profile['verify_log_seconds']} s "
                     f"({profile['verify_log_profiled_seconds']} s under cProfile)")
        lines.append("  per-row cost of each step alone (microseconds):")
        for name, us in profile["per_row_us"].items():
            lines.append(f"    {name:<38} {us:>8}")
        lines.append("  cProfile, top by own time:")
        lines.extend(f"    {ln}" for ln in profile["cprofile_tottime"])
    if proto and summary:
        raw_s = raw_stream.get("seconds") or float("nan")
        summary["raw_stream_seconds"] = raw_s
        summary["prototypes"] = {}
        for name, res in (("single", proto), ("parallel", proto_parallel)):
            if not res:
                continue
            summary["prototypes"][name] = {
                "seconds": res.get("seconds"), "ok": res.get("ok"),
                "ratio_to_stream": round(res["seconds"] / summary["stream_seconds"], 3),
                "ratio_to_raw_stream": round(res["seconds"] / raw_s, 3),
                "peak_delta_mb": res.get("peak_delta_mb"), "workers": res.get("workers", 1)}
            lines.append(f"prototype verifier ({name}, {res.get('workers', 1)} process(es)): {res.get('seconds')} s, "
                         f"ok={res.get('ok')}, checkpoints {res.get('checkpoints_checked')}; ratio to the stream "
                         f"{summary['prototypes'][name]['ratio_to_stream']}, to the raw binary stream ({raw_s} s) "
                         f"{summary['prototypes'][name]['ratio_to_raw_stream']}; peak +{res.get('peak_delta_mb')} MB"
                         + (f", largest worker {res.get('largest_worker_rss_mb')} MB" if name == "parallel" else ""))
    if small_chunk and summary:
        summary["small_chunk"] = {"chunk": SMALL_CHUNK, "seconds": small_chunk["seconds"],
                                  "peak_delta_mb": small_chunk["peak_delta_mb"],
                                  "ratio_to_stream": round(small_chunk["seconds"] / summary["stream_seconds"], 3)}
        lines.append(f"verify_log fetching {SMALL_CHUNK:,} rows at a time: {small_chunk['seconds']} s, peak "
                     f"+{small_chunk['peak_delta_mb']} MB (RSS high-water {small_chunk['rss_peak_mb']} MB)")
    for line in lines:
        print(line)
    report = {
        "benchmark": "audit_verify",
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "postgres": server},
        "config": {"events": args.events, "checkpoint_every": args.checkpoint_every, "repeat": args.repeat,
                   "profile_events": args.profile_events, "seed": SEED},
        "fill": fill, "table": sizes, **summary,
        "streams": streams, "verifies": verifies, "profile": profile, "raw_stream": raw_stream, "proto": proto,
        "proto_parallel": proto_parallel, "verify_small_chunk": small_chunk,
        "total_runtime_seconds": round(time.perf_counter() - t_start, 1), "ok": failure is None,
    }
    if failure:
        report["failure"] = failure
        log(f"FAILED: {failure}")
    print(json.dumps(report, default=str))
    return 0 if failure is None else 1


if __name__ == "__main__":
    sys.exit(main())
