#!/usr/bin/env python
"""Read throughput and latency of the registry API behind gunicorn on PostgreSQL.

Usage (from the project root)::

    .venv/bin/python tests/benchmarks/registry_reads.py [--seconds 10] [--clients 8] [--workers 2]

Why it exists: the registry's read endpoints sit on every pipeline's and every reviewer's path,
and each one stacks token authentication, role checks, object-permission filtering (django-
guardian) and serialisation on top of its own queries. This script measures them in one run,
next to a ``/healthz`` baseline that has none of that, so that the *ratio* to the baseline (which
survives a noisy machine far better than absolute figures) shows what the stack costs.

What it does, and why each step is shaped the way it is:

1. Creates a throw-away PostgreSQL database (dropped first if a previous run left it), runs
   ``migrate`` and ``load_demo`` and then seeds a realistic volume (by default 200 models across the
   two demo teams, 10 versions each, with dataset lineage and staging/production holders) *through
   the project's own services*, so the guardian permission rows, stage history and audit log look
   exactly like production data rather than like rows inserted behind the services' back. Then
   ``VACUUM (ANALYZE)`` and ``CHECKPOINT``, so that no autovacuum or checkpoint of the seed lands
   in the middle of a measured phase and the planner has statistics, as in a database in service.
2. Counts the SQL queries each endpoint issues and splits one request's time into database and
   Python (Django test client, in a subprocess on the same database), so a throughput regression
   can be told apart from a query-count regression and pointed at SQL or at serialisation.
3. Starts gunicorn (sync workers, as deployed) on a free loopback port with a temporary data
   directory, so the developer's SQLite file and signing keys are never touched.
4. Drives it with N closed-loop client threads. Each phase gets ``--seconds`` in total, split into
   ``--rounds`` interleaved rounds (every phase once per round), because on a shared machine the
   speed drifts by a factor of two within minutes and a burst should hit all phases alike. Every
   response must be 200; one that is not fails the run.
5. Always stops gunicorn and drops the database, whatever happened.

The last line of standard output is one JSON object with every figure (for CI or a notebook);
progress goes to standard error. Only 127.0.0.1 is ever contacted over HTTP.
"""
from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import math
import os
import platform
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

if __package__ in (None, ""):  # run as a script: make ``tests.benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.benchmarks._common import (  # noqa: E402 - after the path fix above
    DB_NAME_RE,
    HOST,
    Server,
    log,
)
from tests.benchmarks._common import bench_env as _bench_env  # noqa: E402
from tests.benchmarks._common import cpu_snapshot as _cpu_snapshot  # noqa: E402
from tests.benchmarks._common import own_cpu_between  # noqa: E402
from tests.benchmarks._common import create_database as _create_database  # noqa: E402
from tests.benchmarks._common import django_setup as _django_setup  # noqa: E402
from tests.benchmarks._common import drop_database as _drop_database  # noqa: E402
from tests.benchmarks._common import json_safe as _json_safe  # noqa: E402
from tests.benchmarks._common import manage as _manage  # noqa: E402
from tests.benchmarks._common import percentile as _percentile  # noqa: E402
from tests.benchmarks._common import raise_on_sigterm as _raise_on_sigterm  # noqa: E402
from tests.benchmarks._common import run_step as _run  # noqa: E402
from tests.benchmarks._common import settle_database as _settle_database  # noqa: E402
from tests.benchmarks._common import start_gunicorn as _start_gunicorn  # noqa: E402
from tests.benchmarks._common import stop_server as _stop_gunicorn  # noqa: E402

TEAM_SLUGS = ("credit-risk", "clinical-ml")
DATASETS_PER_TEAM = 10
# =================================================================================================
# Inside Django (run as subprocesses of this script: --internal seed|probe)
# =================================================================================================

def _sha(text: str) -> str:
    """Deterministic digests, so a rerun seeds byte-identical data and figures stay comparable."""
    return hashlib.sha256(text.encode()).hexdigest()


def internal_seed(models: int, versions: int) -> dict[str, Any]:
    """Seed models, versions, datasets and stages through the services, as production data is made.

    Each model with its versions and stage moves is one outer transaction: the services' own
    transactions become savepoints, which keeps every invariant (locks, numbering, audit append)
    while letting the audit sequencer run once per model instead of once per version, so seeding
    2,000 versions takes seconds rather than minutes.
    """
    _django_setup()
    from django.db import transaction

    from governance.access import Principal
    from governance.models import Team
    from registry import services as reg

    started = time.perf_counter()
    system = Principal.of_system("bench")
    teams = {t.slug: t for t in Team.objects.filter(slug__in=TEAM_SLUGS)}
    missing = sorted(set(TEAM_SLUGS) - set(teams))
    if missing:
        raise SystemExit(f"seed: demo teams {missing} are missing; did load_demo run?")
    categories = {"credit-risk": ["personal"], "clinical-ml": ["personal", "phi"]}
    datasets: dict[str, list[int]] = {}
    for slug, team in teams.items():
        datasets[slug] = []
        for j in range(DATASETS_PER_TEAM):
            ds = reg.dataset_register(
                actor=system, team=team, name=f"bench-{slug}-data-{j:02d}", sha256=_sha(f"bench-{slug}-data-{j}"),
                storage_uri=f"s3://bench-data/{slug}/{j:02d}.parquet", rows=50_000 + j * 1000,
                size_bytes=8_000_000 + j, data_categories=categories[slug],
                schema={"columns": [{"name": f"f{k}", "type": "numeric"} for k in range(12)]})
            datasets[slug].append(ds.pk)
    tiers = ["low", "medium", "high", "critical"]
    names: list[str] = []
    for i in range(models):
        slug = TEAM_SLUGS[i % len(TEAM_SLUGS)]
        name = f"bench-{slug}-{i:04d}"
        with transaction.atomic():
            model = reg.model_create(
                actor=system, name=name, team=teams[slug], risk_tier=tiers[i % len(tiers)],
                data_categories=categories[slug],
                description=f"Benchmark model {i} of team {slug}: scores applications for a downstream decision "
                            "and is reviewed quarterly by the model risk committee.",
                intended_use="Decision support only; a person reviews every adverse outcome.",
                tags={"bench": "true", "owner": f"owner-{i % 17}", "cost_center": f"cc-{i % 5}"})
            registered = []
            for n in range(1, versions + 1):
                ds = datasets[slug]
                registered.append(reg.version_register(
                    actor=system, model=model, artifact_uri=f"s3://bench-models/{name}/v{n}/model.onnx",
                    artifact_sha256=_sha(f"{name}-v{n}"), artifact_size=5_000_000 + n, framework="onnx",
                    code_ref=f"git:{_sha(name + str(n))[:12]}",
                    parameters={"max_depth": 3 + n % 5, "n_estimators": 100 * n, "learning_rate": 0.05,
                                "subsample": 0.8, "seed": i},
                    metrics={"auc": round(0.80 + (n % 10) / 100, 3), "accuracy": round(0.85 + (n % 7) / 100, 3),
                             "ks": 0.41, "brier": 0.12},
                    training_datasets=[ds[(i + n) % len(ds)]], evaluation_datasets=[ds[(i + n + 1) % len(ds)]],
                    pipeline_run_id=f"bench-run-{i}-{n}", description=f"Retrain {n}"))
            if len(registered) >= 2:
                reg.stage_move(actor=system, version=registered[-2], stage="production", reason="bench")
                reg.stage_move(actor=system, version=registered[-1], stage="staging", reason="bench")
        names.append(name)
    return {"models": names, "versions_per_model": versions, "datasets": sum(map(len, datasets.values())),
            "seed_seconds": round(time.perf_counter() - started, 2)}


def internal_probe(paths: dict[str, str], repeat: int) -> dict[str, Any]:
    """Per phase: SQL query count, status, and where one request's time goes (database vs. Python).

    Throughput alone cannot say *why* an endpoint is slow. The query count is deterministic, so a
    regression in it shows even on the noisiest machine; the database/application split (median
    of ``repeat`` in-process requests, timed around each ``cursor.execute``) says whether to look
    at SQL or at serialisation. The tokens come from the environment (BENCH_TOKEN_<ROLE>) so they
    never appear in ``ps``.
    """
    _django_setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    tokens = {"compliance": os.environ["BENCH_TOKEN_COMPLIANCE"], "engineer": os.environ["BENCH_TOKEN_ENGINEER"]}
    out: dict[str, Any] = {}
    for phase, spec in paths.items():
        who, _, path = spec.partition(" ")
        headers = {"HTTP_AUTHORIZATION": f"Bearer {tokens[who]}"} if who in tokens else {}
        client = Client(**headers)
        client.get(path)  # warm-up: content types, permission caches
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(path)
        body: Any = None
        if response.headers.get("Content-Type", "").startswith("application/json"):
            body = json.loads(response.content)
        sql = [q["sql"] for q in ctx.captured_queries]

        per_query: list[list[float]] = [[] for _ in sql]
        totals: list[float] = []
        db_totals: list[float] = []
        for _ in range(repeat):
            timings: list[float] = []

            def timed(execute: Any, query: str, params: Any, many: bool, context: Any) -> Any:
                """Time each query where it runs; Django's own query log only has millisecond resolution."""
                t0 = time.perf_counter()
                try:
                    return execute(query, params, many, context)
                finally:
                    timings.append(time.perf_counter() - t0)

            t0 = time.perf_counter()
            with connection.execute_wrapper(timed):
                client.get(path)
            totals.append(time.perf_counter() - t0)
            db_totals.append(sum(timings))
            for i, t in enumerate(timings[: len(per_query)]):
                per_query[i].append(t)
        medians = [sorted(ts)[len(ts) // 2] * 1000 if ts else 0.0 for ts in per_query]
        slowest = max(range(len(medians)), key=medians.__getitem__) if medians else None
        request_ms = sorted(totals)[len(totals) // 2] * 1000
        db_ms = sorted(db_totals)[len(db_totals) // 2] * 1000
        out[phase] = {
            "status": response.status_code,
            "queries": len(sql),
            "count": body.get("count") if isinstance(body, dict) else None,
            "inprocess_ms": round(request_ms, 2),
            "db_ms": round(db_ms, 2),
            "slowest_query_ms": round(medians[slowest], 2) if slowest is not None else None,
            "slowest_query": sql[slowest][:160] if slowest is not None else None,
        }
    return out


# =================================================================================================
# Orchestration (outside Django)
# =================================================================================================

def _internal(env: dict[str, str], mode: str, payload: dict[str, Any],
              extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run this file in a Django subprocess; its last stdout line is the JSON answer."""
    out = _run([sys.executable, str(Path(__file__).resolve()), "--internal", mode, "--payload", json.dumps(payload)],
               env, f"internal {mode}", extra_env)
    return json.loads(out.strip().splitlines()[-1])


# --- Load generation ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Phase:
    """One measured workload: who asks, and a path generator (seeded, so runs are repeatable)."""

    name: str
    description: str
    who: str | None  # "compliance", "engineer" or None (no Authorization header)
    make_path: Callable[[random.Random], str]
    probe_path: str  # one representative path, for the query-count probe


@dataclass
class ClientResult:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    ended: float = 0.0


def _client_loop(port: int, phase: Phase, token: str | None, rng: random.Random, go: threading.Event,
                 clock: dict[str, float], max_requests: int, result: ClientResult) -> None:
    """A closed-loop client: one request at a time, bounded by the deadline and by a request count."""
    # Keep-alive is asked for; gunicorn's sync workers answer "Connection: close" anyway, and
    # http.client then reconnects on the next request (a loopback connect, tens of microseconds).
    headers = {"Accept": "application/json", "Connection": "keep-alive"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    go.wait()
    deadline = clock["deadline"]
    try:
        while len(result.latencies) + result.errors < max_requests and time.perf_counter() < deadline:
            path = phase.make_path(rng)
            t0 = time.perf_counter()
            try:
                conn.request("GET", path, headers=headers)
                resp = conn.getresponse()
                resp.read()
                status = resp.status
            except (OSError, http.client.HTTPException) as exc:
                conn.close()  # the next request() reconnects
                result.errors += 1
                if len(result.error_samples) < 5:
                    result.error_samples.append(f"GET {path}: {type(exc).__name__}: {exc}")
                continue
            elapsed = time.perf_counter() - t0
            if status != 200:
                result.errors += 1
                if len(result.error_samples) < 5:
                    result.error_samples.append(f"GET {path}: HTTP {status}")
                continue
            result.latencies.append(elapsed)
    finally:
        result.ended = time.perf_counter()
        conn.close()


@dataclass
class PhaseResult:
    name: str
    description: str
    requests: int
    errors: int
    seconds: float
    ops_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    ratio_to_baseline: float = math.nan
    ops_per_s_by_round: list[float] = field(default_factory=list)  # their spread shows the noise
    foreign_cpu_pct: float | None = None  # other processes' CPU during the phase, % of one core
    queries_per_request: int | None = None
    inprocess_ms: float | None = None  # one request at a time, no HTTP: the endpoint's own cost
    db_ms: float | None = None  # of which spent in cursor.execute
    slowest_query_ms: float | None = None
    slowest_query: str | None = None
    error_samples: list[str] = field(default_factory=list)


@dataclass
class Sample:
    """One timed slice of one phase: raw latencies (seconds), failures and its wall time."""

    latencies: list[float]
    errors: int
    error_samples: list[str]
    wall: float
    foreign_cpu_s: float | None  # CPU seconds used by processes that are not part of the benchmark


def run_phase(port: int, phase: Phase, token: str | None, clients: int, seconds: float, max_requests: int,
              seed: int, cpu_markers: tuple[str, ...] = ()) -> Sample:
    """All clients start together; the slice's wall time runs until the last in-flight answer."""
    go = threading.Event()
    clock: dict[str, float] = {}
    results = [ClientResult() for _ in range(clients)]
    threads = [threading.Thread(target=_client_loop, name=f"{phase.name}-{i}", daemon=True,
                                args=(port, phase, token, random.Random(seed * 1000 + i), go, clock,
                                      max_requests, results[i]))
               for i in range(clients)]
    for t in threads:
        t.start()
    cpu_before = _cpu_snapshot(cpu_markers)
    start = time.perf_counter()
    clock["deadline"] = start + seconds
    go.set()
    for t in threads:
        t.join(timeout=seconds + 60)
    if any(t.is_alive() for t in threads):
        raise RuntimeError(f"phase {phase.name}: clients did not finish (server hung?)")
    cpu_after = _cpu_snapshot(cpu_markers)
    foreign = None
    if cpu_before and cpu_after:
        foreign = max(0.0, (cpu_after.busy - cpu_before.busy) - own_cpu_between(cpu_before, cpu_after))
    return Sample(latencies=[x for r in results for x in r.latencies], errors=sum(r.errors for r in results),
                  error_samples=[s for r in results for s in r.error_samples][:10],
                  wall=max(r.ended for r in results) - start, foreign_cpu_s=foreign)


def summarise(phase: Phase, samples: list[Sample]) -> PhaseResult:
    """Pool the rounds: ops/s over the summed wall time, percentiles over all latencies."""
    lat = sorted(x for s in samples for x in s.latencies)
    wall = sum(s.wall for s in samples)
    per_round = [round(len(s.latencies) / s.wall, 1) if s.wall > 0 else 0.0 for s in samples]
    foreign = [s.foreign_cpu_s for s in samples if s.foreign_cpu_s is not None]
    return PhaseResult(
        name=phase.name, description=phase.description, requests=len(lat), errors=sum(s.errors for s in samples),
        seconds=round(wall, 3), ops_per_s=round(len(lat) / wall, 1) if wall > 0 else 0.0,
        p50_ms=round(_percentile(lat, 50) * 1000, 2), p95_ms=round(_percentile(lat, 95) * 1000, 2),
        p99_ms=round(_percentile(lat, 99) * 1000, 2),
        mean_ms=round(sum(lat) / len(lat) * 1000, 2) if lat else math.nan, ops_per_s_by_round=per_round,
        foreign_cpu_pct=round(sum(foreign) / wall * 100, 1) if foreign and wall > 0 else None,
        error_samples=[e for s in samples for e in s.error_samples][:10])


def build_phases(names: list[str], versions: int) -> list[Phase]:
    """The baseline first, then the compliance officer's reads, then the team-scoped engineer's list."""
    first = names[0]
    mid = max(1, versions // 2)
    return [
        Phase("healthz", "GET /healthz (no DB, no auth): the WSGI + middleware floor", None,
              lambda r: "/healthz", "none /healthz"),
        Phase("models_list", "GET /api/v1/models/?page_size=50 as compliance (sees all)", "compliance",
              lambda r: "/api/v1/models/?page_size=50", "compliance /api/v1/models/?page_size=50"),
        Phase("model_detail", "GET /api/v1/models/<random>/ as compliance", "compliance",
              lambda r: f"/api/v1/models/{r.choice(names)}/", f"compliance /api/v1/models/{first}/"),
        Phase("versions_list", "GET /api/v1/models/<random>/versions/ as compliance", "compliance",
              lambda r: f"/api/v1/models/{r.choice(names)}/versions/", f"compliance /api/v1/models/{first}/versions/"),
        Phase("version_detail", "GET /api/v1/models/<random>/versions/<random n>/ as compliance", "compliance",
              lambda r: f"/api/v1/models/{r.choice(names)}/versions/{r.randint(1, versions)}/",
              f"compliance /api/v1/models/{first}/versions/{mid}/"),
        Phase("models_list_engineer", "GET /api/v1/models/?page_size=50 as engineer (team credit-risk; "
              "guardian object-permission filter)", "engineer",
              lambda r: "/api/v1/models/?page_size=50", "engineer /api/v1/models/?page_size=50"),
    ]


def _print_table(results: list[PhaseResult]) -> None:
    """Two tables: the HTTP figures under load, then the in-process profile that explains them."""
    head = (f"{'phase':<22}{'ops/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'x base':>8}"
            f"{'requests':>10}{'errors':>8}{'foreign':>9}  ops/s by round")
    print(head)
    print("-" * len(head))
    for r in results:
        print(f"{r.name:<22}{r.ops_per_s:>9.1f}{r.p50_ms:>9.2f}{r.p95_ms:>9.2f}{r.p99_ms:>9.2f}"
              f"{r.ratio_to_baseline:>8.3f}{r.requests:>10}{r.errors:>8}"
              f"{'-' if r.foreign_cpu_pct is None else f'{r.foreign_cpu_pct:.0f}%':>9}  "
              f"{' / '.join(f'{x:.1f}' for x in r.ops_per_s_by_round)}")
    print()
    print("In-process profile (Django test client, one request at a time, median):")
    head = f"{'phase':<22}{'queries':>8}{'req ms':>8}{'db ms':>8}{'top q ms':>9}  slowest query"
    print(head)
    print("-" * 110)
    for r in results:
        def num(v: float | int | None, fmt: str) -> str:
            """A missing figure prints as '-' rather than breaking the column."""
            return "-" if v is None else format(v, fmt)
        print(f"{r.name:<22}{num(r.queries_per_request, 'd'):>8}{num(r.inprocess_ms, '.2f'):>8}"
              f"{num(r.db_ms, '.2f'):>8}{num(r.slowest_query_ms, '.2f'):>9}  {(r.slowest_query or '-')[:60]}")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    """Set up, measure, always clean up, then print the tables and the JSON line; 1 on any failure."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per phase (default 10)")
    parser.add_argument("--rounds", type=int, default=4,
                        help="split each phase's seconds into this many interleaved rounds, so a burst of "
                             "noise on the machine hits all phases alike (default 4)")
    parser.add_argument("--warmup", type=float, default=1.0,
                        help="unmeasured seconds before each phase's first round (default 1)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent client threads (default 8)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers (default 2)")
    parser.add_argument("--models", type=int, default=200, help="models to seed (default 200)")
    parser.add_argument("--versions", type=int, default=10, help="versions per seeded model (default 10)")
    parser.add_argument("--max-requests", type=int, default=1_000_000,
                        help="hard cap on requests per client per phase (default 1e6)")
    parser.add_argument("--database", default="govaudit_bench_reads",
                        help="throw-away database name; must match govaudit_bench* (default govaudit_bench_reads)")
    parser.add_argument("--pg-url", default="postgres://postgres@127.0.0.1:5432",
                        help="PostgreSQL server URL without a database name")
    parser.add_argument("--seed", type=int, default=20261126, help="random seed for the clients' path choices")
    parser.add_argument("--internal", choices=["seed", "probe"], help=argparse.SUPPRESS)
    parser.add_argument("--payload", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.internal:
        payload = json.loads(args.payload)
        answer = (internal_seed(int(payload["models"]), int(payload["versions"])) if args.internal == "seed"
                  else internal_probe(payload["paths"], int(payload["repeat"])))
        print(json.dumps(answer))
        return 0

    if not DB_NAME_RE.match(args.database):
        parser.error(f"--database must match {DB_NAME_RE.pattern} (it is dropped at the end)")
    if not (1 <= args.clients <= 64 and 1 <= args.workers <= 32 and 0 < args.seconds <= 300
            and 0 <= args.warmup <= 60 and 1 <= args.rounds <= 20 and args.models >= 2 and args.versions >= 1
            and args.max_requests >= 1):
        parser.error("out of range: 1<=clients<=64, 1<=workers<=32, 0<seconds<=300, 0<=warmup<=60, "
                     "1<=rounds<=20, models>=2 (one per team), versions>=1, max-requests>=1")
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    sys.setswitchinterval(0.0005)  # client threads wake promptly on I/O, so latencies are the server's

    t_start = time.perf_counter()
    base_url = args.pg_url.rstrip("/")
    admin_url = f"{base_url}/postgres"
    database_url = f"{base_url}/{args.database}"
    data_dir = tempfile.mkdtemp(prefix="govaudit-bench-")
    env = _bench_env(database_url, data_dir)
    server: Server | None = None
    results: list[PhaseResult] = []
    report: dict[str, Any] = {}
    db_created = False
    failure: str | None = None
    try:
        log(f"database {args.database}: drop if exists, create")
        db_created = True  # from here on, dropping it is always right (DROP ... IF EXISTS)
        pg_version = _create_database(admin_url, args.database)
        t = time.perf_counter()
        _manage(env, "migrate", "--noinput")
        _manage(env, "load_demo")
        setup_s = time.perf_counter() - t
        log(f"migrate + load_demo: {setup_s:.1f} s; seeding {args.models} models x {args.versions} versions")
        seed = _internal(env, "seed", {"models": args.models, "versions": args.versions})
        log(f"seeded in {seed['seed_seconds']} s; VACUUM ANALYZE + CHECKPOINT")
        _settle_database(base_url, args.database)
        tokens = {
            "compliance": _manage(env, "create_token", "--user", "compliance", "--name", "bench").strip(),
            "engineer": _manage(env, "create_token", "--user", "engineer", "--name", "bench").strip(),
        }
        phases = build_phases(seed["models"], args.versions)
        token_env = {"BENCH_TOKEN_COMPLIANCE": tokens["compliance"], "BENCH_TOKEN_ENGINEER": tokens["engineer"]}
        probe = _internal(env, "probe", {"paths": {p.name: p.probe_path for p in phases}, "repeat": 15}, token_env)
        bad = {k: v["status"] for k, v in probe.items() if v["status"] != 200}
        if bad:
            raise RuntimeError(f"probe: non-200 answers {bad}")
        seen = {"compliance": probe["models_list"]["count"], "engineer": probe["models_list_engineer"]["count"]}
        if not (isinstance(seen["engineer"], int) and isinstance(seen["compliance"], int)
                and 0 < seen["engineer"] < seen["compliance"]):
            # The engineer phase only means something if the guardian filter really narrows the list.
            raise RuntimeError(f"probe: visible models {seen}; expected 0 < engineer < compliance")
        log("queries per request: " + ", ".join(f"{k}={v['queries']}" for k, v in probe.items()))

        server = _start_gunicorn(env, args.workers, data_dir)
        log(f"gunicorn up on {HOST}:{server.port} with {args.workers} workers; {args.rounds} round(s) of "
            f"{len(phases)} phases x {args.seconds / args.rounds:g} s ({args.warmup:g} s warm-up first), "
            f"{args.clients} clients")
        # Our processes: this client, gunicorn on our port, PostgreSQL backends of our database.
        markers = (f"-b {HOST}:{server.port}", f" {args.database} ")
        samples: dict[str, list[Sample]] = {p.name: [] for p in phases}
        for rnd in range(args.rounds):
            for i, phase in enumerate(phases):
                token = tokens.get(phase.who or "")
                if args.warmup > 0 and rnd == 0:  # later rounds find the workers already warm
                    run_phase(server.port, phase, token, args.clients, args.warmup, args.max_requests,
                              args.seed + 97 + i)
                sample = run_phase(server.port, phase, token, args.clients, args.seconds / args.rounds,
                                   args.max_requests, args.seed + 1000 * rnd + i, markers)
                samples[phase.name].append(sample)
                foreign = ("?" if sample.foreign_cpu_s is None
                           else f"{sample.foreign_cpu_s / sample.wall * 100:.0f}%")
                log(f"round {rnd + 1}/{args.rounds} {phase.name}: {len(sample.latencies) / sample.wall:.1f} ops/s, "
                    f"errors {sample.errors}, foreign CPU {foreign}")
                if server.proc.poll() is not None:
                    raise RuntimeError(f"gunicorn died during {phase.name}:\n{server.log_tail()}")
        for phase in phases:
            result = summarise(phase, samples[phase.name])
            for key in ("queries_per_request", "inprocess_ms", "db_ms", "slowest_query_ms", "slowest_query"):
                setattr(result, key, probe[phase.name]["queries" if key == "queries_per_request" else key])
            results.append(result)
        baseline = results[0].ops_per_s
        for r in results:
            r.ratio_to_baseline = round(r.ops_per_s / baseline, 4) if baseline else math.nan
        report = {
            "benchmark": "registry_reads",
            "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                        "python": platform.python_version(), "postgres": pg_version},
            "config": {"seconds": args.seconds, "rounds": args.rounds, "warmup": args.warmup, "clients": args.clients,
                       "workers": args.workers, "models": args.models, "versions": args.versions,
                       "seed": args.seed, "gunicorn_worker_class": "sync"},
            "data": {"bench_models": len(seed["models"]), "versions_per_model": seed["versions_per_model"],
                     "datasets": seed["datasets"], "seed_seconds": seed["seed_seconds"],
                     "setup_seconds": round(setup_s, 1),
                     "visible_models": seen},
            "phases": {r.name: {k: v for k, v in asdict(r).items() if k not in ("name", "error_samples")}
                       for r in results},
        }
    except BaseException as exc:  # noqa: BLE001 - reported after cleanup; the exit status says it failed
        failure = f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, (RuntimeError, SystemExit, KeyboardInterrupt)):
            traceback.print_exc()
    finally:
        if server is not None:
            log("stopping gunicorn")
            _stop_gunicorn(server)
        if db_created:
            log(f"dropping database {args.database}")
            try:
                _drop_database(admin_url, args.database)
            except Exception as exc:  # noqa: BLE001 - keep cleaning up; say so loudly
                log(f"WARNING: could not drop {args.database}: {exc}")
        shutil.rmtree(data_dir, ignore_errors=True)

    total = round(time.perf_counter() - t_start, 1)
    if results:
        _print_table(results)
    errors = sum(r.errors for r in results)
    for r in results:
        for sample in r.error_samples:
            log(f"ERROR in {r.name}: {sample}")
    if failure is None and errors:
        failure = f"{errors} request(s) did not answer 200"
    empty = [r.name for r in results if r.requests == 0]
    if failure is None and empty:
        failure = f"no successful request in {empty}"
    report.update({"total_runtime_seconds": total, "errors": errors, "ok": failure is None})
    if failure:
        report["failure"] = failure
        log(f"FAILED: {failure}")
    print(json.dumps(_json_safe(report), allow_nan=False))
    return 0 if failure is None else 1


if __name__ == "__main__":
    sys.exit(main())
