#!/usr/bin/env python
"""Audit pack generation over a large period: 100,000 events and 50 models (SOC 2, every model).

Usage (from the project root)::

    .venv/bin/python tests/benchmarks/audit_pack.py [--events 100000] [--models 50] [--sqlite]
        [--image docs/images/audit-pack-page.png --image-page 3]

Why it exists: a pack proves every event of its period against a signed checkpoint and carries
them all, so its cost grows with the period. The targets: memory stays under 500 MB (the events
are streamed from the database into the zip, proofs are computed in one pass, the whole log is
never loaded), and the time is reported with what it went to.

What it does:

1. Creates a throw-away database (PostgreSQL ``govaudit_bench_pack`` at 127.0.0.1, dropped first
   and at the end; ``--sqlite`` uses a file in a temporary folder instead), migrates it, with
   temporary data, key and pack folders (development keys and certificate are generated there).
2. Seeds through the services: 5 teams, ``--models`` models (HIPAA, GDPR and SOC 2 scopes), a
   version of each with drift, bias and validation reports (results in the detectors' formats;
   the detectors themselves are benchmarked elsewhere), half promoted through a gated, approved
   policy, half moved directly, waivers, tokens and failed sign-ins.
3. Appends ``--events`` further events the way the sequencer stores them (canonical leaf with
   its seq, SHA-256 leaf hash, filter columns), spread over the 30-day period, with realistic
   actions (registrations, stage moves, reports, sign-ins, refusals, token changes), signing a
   checkpoint every 10,000 events, as the scheduled checkpointer would.
4. In a fresh process: generates the pack (``pack_request`` + ``pack_generate``, as the Celery
   task does), timing it and measuring its peak memory (the kernel's ``VmHWM`` reset through
   ``/proc/self/clear_refs`` after Django's imports, so the figure is what generation added,
   plus the absolute peak). Then verifies the pack with the standalone verifier (time).
5. Optionally renders one page of the PDF to PNG (``--image``) for the docs.

Human-readable lines go to stdout (progress to stderr); the LAST stdout line is one JSON object.
Exit status 0 only if the pack was built and verified.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DB_NAME = "govaudit_bench_pack"
DB_NAME_RE = re.compile(r"^govaudit_bench[a-z0-9_]{0,40}$")
TARGET_PEAK_MB = 500.0
PERIOD_DAYS = 30


def log(message: str) -> None:
    print(f"[pack {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _django_setup() -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "governance.settings")
    import django

    django.setup()


def _status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _reset_peak() -> float:
    """Reset the kernel's high-water mark to the current RSS; returns that RSS (MB)."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    return _status_mb("VmRSS") or 0.0


# --- seeding (runs inside a Django process) ------------------------------------------------------

POLICY = """
name: bench-production
target_stage: production
applies_to:
  risk_tiers: [low, medium, high, critical]
gates:
  - type: validation_metric
    metric: accuracy
    op: ">="
    threshold: 0.8
  - type: approvals
    count: 1
    roles: [approver]
"""
CATEGORIES = [["phi"], ["personal"], ["personal", "special_category"], [], ["phi", "personal"]]


def _results(rng: random.Random) -> dict[str, dict[str, Any]]:
    feats = [{"name": f"feature_{i}", "test": "ks", "statistic": round(rng.random() * 0.3, 4),
              "p_value": 10 ** -rng.uniform(0, 8), "drifted": False} for i in range(12)]
    threshold = 0.05 / len(feats)
    for f in feats:
        f["drifted"] = f["p_value"] < threshold
    n_drifted = sum(f["drifted"] for f in feats)
    groups = [{"group": {"sex": s}, "label": f"sex='{s}'", "count": 500, "tn": 200, "fp": 50, "fn": 40, "tp": 210,
               "selection_rate": round(rng.uniform(0.3, 0.6), 4), "accuracy": round(rng.uniform(0.7, 0.9), 4),
               "true_positive_rate": round(rng.uniform(0.6, 0.95), 4),
               "false_positive_rate": round(rng.uniform(0.05, 0.3), 4)} for s in ("f", "m", "x")]
    return {
        "drift": {"detector": "KSDrift", "library": "alibi-detect 0.13.0", "drift": n_drifted > 0, "p_val": 0.05,
                  "correction": "bonferroni", "threshold": threshold, "n_features": len(feats), "n_drifted": n_drifted,
                  "share_drifted": n_drifted / len(feats), "n_reference": 5000, "n_current": 5000, "features": feats,
                  "notes": []},
        "bias": {"sensitive_features": ["sex"], "positive_label": 1, "method": "between_groups", "agg": "worst_case",
                 "n_rows": 1500, "n_groups": 3, "groups": groups, "demographic_parity_difference": 0.12,
                 "demographic_parity_ratio": 0.7, "equalized_odds_difference": 0.1, "equalized_odds_ratio": 0.8,
                 "undefined": [], "notes": []},
        "validation": {"task": "classification", "average": "binary", "positive_label": 1, "n_rows": 1500,
                       "metrics": {"accuracy": round(rng.uniform(0.82, 0.95), 4), "precision": 0.81, "recall": 0.79,
                                   "f1": 0.8, "roc_auc": 0.88, "log_loss": 0.41},
                       "confusion_matrix": {"labels": [0, 1], "matrix": [[600, 90], [110, 700]], "rows": "actual",
                                            "columns": "predicted"}, "undefined": {}, "notes": []},
    }


def seed(n_models: int, data_dir: Path) -> dict[str, Any]:
    _django_setup()
    from django.utils import timezone as tz

    from governance import promotions
    from governance import services as gov
    from governance.access import Principal
    from monitoring import services as mon
    from registry import services as reg

    system = Principal.of_system("benchmark")
    rng = random.Random(20261126)
    teams = [gov.team_create(actor=system, name=f"Team {t}", slug=f"team-{t}") for t in "abcde"]
    approver = gov.user_create(actor=system, username="approver", roles=["approver"])
    officer = gov.user_create(actor=system, username="compliance", roles=["compliance_officer"])
    for i in range(20):
        user = gov.user_create(actor=system, username=f"engineer{i}", roles=["ml_engineer"], teams=[teams[i % 5]])
        gov.token_create(actor=system, user=user, name="ci")
    csv = data_dir / "evaluation.csv"
    csv.write_text("label,pred,score,sex\n" + "".join(
        f"{i % 2},{(i // 3) % 2},0.{rng.randrange(10, 99)},{'fmx'[i % 3]}\n" for i in range(300)))
    digest = hashlib.sha256(csv.read_bytes()).hexdigest()
    datasets = [mon.dataset_ingest(actor=system, team=t, name=f"eval-{t.slug}", path=csv, sha256=digest,
                                   size=csv.stat().st_size, data_categories=["personal"]) for t in teams]
    promotions.policy_publish(actor=Principal(user=officer), text=POLICY)
    for i in range(n_models):
        team = teams[i % 5]
        model = reg.model_create(actor=system, name=f"model-{i:02d}", team=team,
                                 risk_tier=["low", "medium", "high", "critical"][i % 4],
                                 data_categories=CATEGORIES[i % len(CATEGORIES)],
                                 intended_use=f"Benchmark model {i} scoring cases for team {team.slug}.")
        version = reg.version_register(actor=system, model=model, artifact_uri=f"s3://bench/{i}/model.onnx",
                                       artifact_sha256=hashlib.sha256(f"bench-{i}".encode()).hexdigest(),
                                       training_datasets=[datasets[i % 5].pk])
        results = _results(rng)
        ds = datasets[i % 5].pk
        for kind, sets, options in (("validation", {"evaluation": ds}, {"label": "label", "prediction": "pred"}),
                                    ("bias", {"evaluation": ds}, {"label": "label", "prediction": "pred",
                                                                  "sensitive_features": ["sex"]}),
                                    ("drift", {"reference": ds, "current": ds}, {})):
            report = mon.report_request(actor=system, version=version, kind=kind, datasets=sets, options=options,
                                        enqueue=False)
            report = mon.report_start(actor=system, report=report)
            mon.report_finish(actor=system, report=report, result=results[kind])
        if i % 2:
            reg.stage_move(actor=system, version=version, stage="production", reason="benchmark: direct")
        else:
            req, _ = promotions.promotion_request(actor=system, version=version, target_stage="production",
                                                  reason="benchmark release")
            promotions.promotion_approve(actor=Principal(user=approver), request=req, comment="ok")
    for i in range(30):
        gov.login_record_failure(username=f"intruder{i % 4}", ip="203.0.113.7")
    from audits.checkpoints import checkpoint_create
    from audits.services import audit_sequence

    audit_sequence(inline=True)
    cp = checkpoint_create()
    return {"seed_events": cp.size if cp else 0, "now": tz.now().isoformat()}


ACTIONS = [  # shares of the filler events (failed sign-ins are rare and come mostly from a few names)
    (0.27, "registry.version.registered"), (0.13, "registry.stage.moved"), (0.20, "monitoring.report.finished"),
    (0.12, "security.login.succeeded"), (0.004, "security.login.failed"), (0.02, "security.access.denied"),
    (0.13, "registry.model.updated"), (0.01, "governance.token.created"), (0.05, "audits.export.downloaded"),
    (0.066, "registry.dataset.registered"),
]


def _filler(rng: random.Random, seq: int, ts: datetime) -> dict[str, Any]:
    r, acc = rng.random(), 0.0
    action = ACTIONS[-1][1]
    for p, name in ACTIONS:
        acc += p
        if r < acc:
            action = name
            break
    uid = rng.randrange(1, 400)
    model = rng.randrange(50)
    actor: dict[str, Any] = {"type": "user", "id": uid, "username": f"engineer{uid}", "roles": ["ml_engineer"]}
    payload: dict[str, Any] = {"model": f"model-{model:02d}", "version": rng.randrange(1, 40)}
    target: dict[str, Any] | None = {"type": "registry.model", "id": str(model + 1), "label": f"model-{model:02d}"}
    if action.startswith("security.login"):
        target = None
        actor = {"type": "anonymous"} if action.endswith("failed") else actor
        name = f"engineer{uid}" if action.endswith("succeeded") or rng.random() < 0.3 else rng.choice(
            ["admin", "root", "test"])
        payload = {"username": name, "ip": f"10.0.{uid % 256}.{rng.randrange(1, 255)}"}
    elif action == "monitoring.report.finished":
        payload |= {"kind": rng.choice(["drift", "bias", "validation"]), "result_digest": f"{rng.getrandbits(256):064x}",
                    "library_versions": {"alibi-detect": "0.13.0", "scikit-learn": "1.5.2"}}
    elif action == "registry.version.registered":
        payload |= {"artifact_sha256": f"{rng.getrandbits(256):064x}", "framework": "xgboost",
                    "metrics": {"auc": 0.91, "ks": 0.43}}
    return {"ts": ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "actor": actor, "action": action, "target": target,
            "request_id": f"{rng.getrandbits(128):032x}", "payload": payload}


def fill(events: int) -> dict[str, Any]:
    """Append events as the sequencer stores them, with a checkpoint every 10,000."""
    _django_setup()
    from audits.checkpoints import checkpoint_create, tree_size
    from audits.core.canonical import canonical_bytes
    from audits.models import AuditEvent

    rng = random.Random(6962)
    seq = tree_size()
    now = datetime.now(timezone.utc)
    start = now - timedelta(days=PERIOD_DAYS) + timedelta(hours=1)
    step = (now - timedelta(minutes=5) - start) / max(events, 1)
    batch: list[AuditEvent] = []
    t0 = time.perf_counter()
    for i in range(events):
        ts = start + step * i
        body = _filler(rng, seq, ts)
        leaf = canonical_bytes(body | {"seq": seq})
        actor, target = body["actor"], body["target"] or {}
        batch.append(AuditEvent(seq=seq, ts=ts, action=body["action"],
                                actor_id=actor.get("id") if actor.get("type") == "user" else None,
                                actor_name=str(actor.get("username") or actor.get("name") or ""),
                                target_type=target.get("type", ""), target_id=str(target.get("id", "")),
                                request_id=body["request_id"], leaf=leaf,
                                leaf_hash=hashlib.sha256(b"\x00" + leaf).digest()))
        seq += 1
        if len(batch) == 5000:
            AuditEvent.objects.bulk_create(batch)
            batch.clear()
            if seq % 10_000 < 5000:
                checkpoint_create()
    if batch:
        AuditEvent.objects.bulk_create(batch)
    checkpoint_create()
    return {"fill_seconds": round(time.perf_counter() - t0, 1), "log_size": seq}


def generate(image: str | None, image_page: int) -> dict[str, Any]:
    """Build the pack (as the task does) in this fresh process; time and peak memory."""
    _django_setup()
    from django.utils import timezone as tz

    from audits.packs import services
    from governance.access import Principal

    stages: list[tuple[float, str]] = []
    progress = services._progress

    def timed(pack_id: int, percent: int, stage: str) -> None:
        stages.append((time.perf_counter(), stage))
        progress(pack_id, percent, stage)

    services._progress = timed  # type: ignore[assignment]
    rss0 = _reset_peak()
    t0 = time.perf_counter()
    now = tz.now()
    pack = services.pack_request(actor=Principal.of_system("benchmark"), framework="soc2",
                                 period_start=now - timedelta(days=PERIOD_DAYS), period_end=now, enqueue=False)
    pack = services.pack_generate(pack_id=pack.pk)
    seconds = time.perf_counter() - t0
    peak = _status_mb("VmHWM") or 0.0
    if pack is None or pack.status != "succeeded":
        raise SystemExit(f"pack failed: {pack.error_code if pack else '?'} {pack.error_message if pack else ''}")
    path = services.pack_path(pack)
    marks = [(t0, "request")] + stages + [(t0 + seconds, "end")]
    steps = {re.sub(r" \(\d+ of \d+\)", "", s): 0.0 for _, s in marks[:-1]}
    for (start, stage), (end, _) in zip(marks, marks[1:]):
        steps[re.sub(r" \(\d+ of \d+\)", "", stage)] += end - start
    out: dict[str, Any] = {"steps_seconds": {k: round(v, 1) for k, v in steps.items()},
                           "pack_seconds": round(seconds, 1), "pages": pack.pages, "size_bytes": pack.size_bytes,
                           "events_in_pack": pack.event_count, "models_in_scope": len(pack.scope),
                           "peak_mb_added": round(peak - rss0, 1), "peak_mb_absolute": round(peak, 1),
                           "controls": pack.summary, "path": str(path)}
    from audits.keys import trusted_keys
    from audits.pack_verifier import verify_pack
    from audits.packs.signing import organisation_signer

    t0 = time.perf_counter()
    report = verify_pack(str(path), log_keys=[k.verifier.encode() for k in trusted_keys()],
                         pdf_certs=[organisation_signer().cert_pem])
    out["verify_seconds"] = round(time.perf_counter() - t0, 1)
    out["verified"] = report.ok
    out["verify_problems"] = [str(p) for p in report.problems[:5]]
    if image:
        import zipfile

        with zipfile.ZipFile(path) as zf, tempfile.TemporaryDirectory() as tmp:
            pdf = Path(tmp) / "report.pdf"
            pdf.write_bytes(zf.read("report.pdf"))
            if image_page == 0:  # the control table's first page
                image_page = next(p for p in range(1, 20) if "Each control is answered" in subprocess.run(
                    ["pdftotext", "-f", str(p), "-l", str(p), str(pdf), "-"], capture_output=True,
                    text=True).stdout)
            out["image_page"] = image_page
            subprocess.run(["pdftoppm", "-r", "80", "-png", "-singlefile", "-f", str(image_page), "-l",
                            str(image_page), str(pdf), str(Path(tmp) / "page")], check=True)
            Path(image).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(Path(tmp) / "page.png", image)
        out["image"] = image
    return out


# --- orchestration -------------------------------------------------------------------------------

def _internal(env: dict[str, str], mode: str, *args: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, "--internal", mode, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _pg(admin_url: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(statement)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--sqlite", action="store_true", help="a throw-away SQLite file instead of PostgreSQL")
    parser.add_argument("--pg-admin-url", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--image", help="write one page of the PDF as PNG here")
    parser.add_argument("--image-page", type=int, default=0, help="page to render (default: the control table)")
    parser.add_argument("--internal", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.internal:
        mode, rest = args.internal[0], args.internal[1:]
        result = (seed(int(rest[0]), Path(rest[1])) if mode == "seed" else fill(int(rest[0])) if mode == "fill"
                  else generate(rest[0] or None, int(rest[1])))
        print(json.dumps(result, default=str))
        return 0

    tmp = Path(tempfile.mkdtemp(prefix="govaudit-pack-bench-"))
    env = {**os.environ, "GOVAUDIT_DATA_DIR": str(tmp), "GOVAUDIT_ENV": "development", "CELERY_BROKER_URL": "",
           "DJANGO_SETTINGS_MODULE": "governance.settings", "DEBUG": "0"}  # DEBUG would keep every query
    env.pop("AUDIT_SIGNING_KEY", None)
    if args.sqlite:
        env["DATABASE_URL"] = f"sqlite:///{tmp / 'bench.sqlite3'}"
        database = "sqlite"
    else:
        assert DB_NAME_RE.match(DB_NAME)
        _pg(args.pg_admin_url, f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        _pg(args.pg_admin_url, f"CREATE DATABASE {DB_NAME}")
        env["DATABASE_URL"] = args.pg_admin_url.rsplit("/", 1)[0] + f"/{DB_NAME}"
        database = "postgresql"
    figures: dict[str, Any] = {"benchmark": "audit_pack", "database": database, "events_requested": args.events,
                               "models": args.models, "target_peak_mb": TARGET_PEAK_MB}
    try:
        log(f"{database}: migrate")
        subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "--noinput"], cwd=ROOT, env=env,
                       check=True, capture_output=True)
        log(f"seeding {args.models} models through the services")
        t0 = time.perf_counter()
        figures |= _internal(env, "seed", str(args.models), str(tmp))
        figures["seed_seconds"] = round(time.perf_counter() - t0, 1)
        log(f"appending {args.events:,} events")
        figures |= _internal(env, "fill", str(args.events))
        log("generating the pack (fresh process)")
        figures |= _internal(env, "generate", args.image or "", str(args.image_page))
    finally:
        if not args.sqlite:
            _pg(args.pg_admin_url, f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        shutil.rmtree(tmp, ignore_errors=True)
    figures.pop("path", None)
    figures["peak_ok"] = figures["peak_mb_absolute"] < TARGET_PEAK_MB
    figures["load_average_1m"] = round(os.getloadavg()[0], 1)
    figures["cpus"] = os.cpu_count()
    print(f"pack over {figures['events_in_pack']:,} events and {figures['models_in_scope']} models ({database}): "
          f"{figures['pack_seconds']} s, {figures['pages']} pages, {figures['size_bytes'] / 1e6:.1f} MB, peak memory "
          f"{figures['peak_mb_absolute']} MB (+{figures['peak_mb_added']} MB during generation; target < "
          f"{TARGET_PEAK_MB:.0f} MB)")
    print(f"standalone verification: {figures['verify_seconds']} s, ok={figures['verified']}")
    print(json.dumps(figures, sort_keys=True))
    return 0 if figures["verified"] else 1


if __name__ == "__main__":
    sys.exit(main())
