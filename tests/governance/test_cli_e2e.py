"""The ``govaudit`` executable against a running server, as a CI pipeline would use it.

The server is pytest-django's ``live_server`` (a real HTTP server thread on the test database);
without ``CELERY_BROKER_URL`` the reports are computed in-process when their request commits. The
client is the installed console script, run as a subprocess: register, evaluate, get blocked by a
biased model, fix it, pass the gates, wait for approval, get approved, get promoted, and verify
the signed receipt offline (and see a tampered copy refused).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import pytest

from registry.models import StageAssignment
from tests.factories import Cast

pytestmark = pytest.mark.django_db(transaction=True)

POLICY = """
name: credit-production
description: Credit models going to production need accuracy, fairness across gender, stable inputs, a validator.
target_stage: production
applies_to:
  models: [credit-scoring]
gates:
  - type: validation_metric
    metric: accuracy
    op: ">="
    threshold: 0.75
  - type: bias_metric
    metric: demographic_parity_difference
    sensitive_feature: gender
    op: "<="
    threshold: 0.1
  - type: drift
    max_share_drifted: 0.5
  - type: evidence_binding
  - type: approvals
    count: 1
    roles: [approver]
"""
BIAS_GATE = "bias_metric:demographic_parity_difference[gender]<=0.1"


def govaudit_executable() -> str:
    """The console script installed with the package (next to this interpreter in the venv)."""
    beside = Path(sys.executable).parent / "govaudit"
    found = str(beside) if beside.exists() else shutil.which("govaudit")
    assert found, ("the govaudit console script is not installed; run "
                   ".venv/bin/uv pip install --python .venv/bin/python --no-deps -e .")
    return found


def scored_applicants(*, biased: bool, per_group: int = 300, seed: int = 7) -> pd.DataFrame:
    """Loan applicants with a true outcome and a model's prediction, for two genders.

    Each group has exactly half positive outcomes. The fair model errs on 10% of each group in
    both directions, so both groups are approved at the same rate (parity difference 0) and
    accuracy is 0.9. The biased model does the same for men but turns down 60% of the creditworthy
    women: women are approved at 0.2 against 0.5 for men (difference 0.3), accuracy 0.8.
    """
    rng = np.random.default_rng(seed)
    frames = []
    for gender in ("f", "m"):
        label = np.array([1, 0] * (per_group // 2))
        pred = label.copy()
        flip = per_group // 20  # 5% of the group each way
        pred[np.flatnonzero(label == 1)[:flip]] = 0
        pred[np.flatnonzero(label == 0)[:flip]] = 1
        if biased and gender == "f":
            positives = np.flatnonzero(pred == 1)
            pred[positives[: int(0.6 * (per_group // 2))]] = 0
        frames.append(pd.DataFrame({
            "age": rng.normal(41, 11, per_group).round(1),
            "income": rng.normal(52_000, 9_000, per_group).round(0),
            "gender": gender,
            "label": label,
            "pred": pred,
            "score": np.clip(pred * 0.55 + rng.random(per_group) * 0.45, 0, 1).round(4),
        }))
    return pd.concat(frames).sample(frac=1.0, random_state=seed).reset_index(drop=True)


@pytest.fixture
def cli(live_server: Any, cast: Cast) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``govaudit`` as ``who`` (a cast member's real token) against the live server."""
    exe = govaudit_executable()

    def run(*args: str, who: str = "pipeline", timeout: float = 60,
            extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GOVAUDIT_", "DJANGO_"))}
        env.update({"GOVAUDIT_URL": live_server.url, "GOVAUDIT_TOKEN": cast.tokens[who]}, **(extra_env or {}))
        return subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=timeout)

    return run


def _ok(result: subprocess.CompletedProcess[str], code: int = 0) -> subprocess.CompletedProcess[str]:
    assert result.returncode == code, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


def _json(result: subprocess.CompletedProcess[str], code: int = 0) -> Any:
    return json.loads(_ok(result, code).stdout)


def test_pipeline_blocked_by_bias_then_fixed_approved_promoted_and_receipt_verified(
        cli: Callable[..., subprocess.CompletedProcess[str]], cast: Cast, live_server: Any, tmp_path: Path,
        settings: Any) -> None:
    settings.STORAGE_DIR = tmp_path / "storage"
    work = tmp_path / "ci"
    work.mkdir()
    (work / "policy.yaml").write_text(POLICY)
    scored_applicants(biased=False, seed=1).drop(columns=["label", "pred", "score"]).to_csv(work / "train.csv",
                                                                                           index=False)
    scored_applicants(biased=True).to_parquet(work / "eval-v1.parquet", index=False)
    scored_applicants(biased=False).to_csv(work / "eval-v2.csv", index=False)
    (work / "model-v1.bin").write_bytes(b"gradient boosted trees, trained on all features\n" * 4000)
    (work / "model-v2.bin").write_bytes(b"gradient boosted trees, reweighed for demographic parity\n" * 4000)

    # A compliance officer keeps the policy as code and publishes it.
    published = _ok(cli("publish-policy", str(work / "policy.yaml"), who="compliance_officer"))
    assert "Published policy credit-production v1" in published.stdout

    # The pipeline registers the model, its data and version 1 (the biased one) and asks for evidence.
    _ok(cli("create-model", "credit-scoring", "--risk-tier", "high", "--data-category", "personal"))
    train = _json(cli("--json", "upload", str(work / "train.csv"), "--name", "credit-train",
                      "--data-category", "personal"))
    eval1 = _json(cli("upload", str(work / "eval-v1.parquet"), "--name", "credit-eval", "--json"))
    assert (train["rows"], eval1["rows"]) == (600, 600)
    v1 = _json(cli("register", "credit-scoring", "--artifact", str(work / "model-v1.bin"),
                   "--uri", "s3://models/credit-scoring/1/model.bin", "--framework", "sklearn",
                   "--code-ref", "git:4f1c2e9", "--metric", "accuracy=0.8",
                   "--training-dataset", str(train["id"]), "--evaluation-dataset", str(eval1["id"]), "--json"))
    assert v1["version"] == 1
    assert v1["artifact_sha256"] == hashlib.sha256((work / "model-v1.bin").read_bytes()).hexdigest()
    assert v1["training_datasets"][0]["id"] == train["id"]

    def evidence(version: int, evaluation: int) -> None:
        wait = ["--wait", "--timeout", "60", "--interval", "0.2"]
        validation = _json(cli("report", "credit-scoring", str(version), "--kind", "validation",
                               "--evaluation", str(evaluation), "--option", "label=label",
                               "--option", "prediction=pred", "--option", "score=score", *wait, "--json"))
        assert validation["status"] == "succeeded", validation
        bias = _ok(cli("report", "credit-scoring", str(version), "--kind", "bias", "--evaluation", str(evaluation),
                       "--options", '{"label": "label", "prediction": "pred", "sensitive_features": ["gender"]}',
                       *wait))
        assert "succeeded" in bias.stdout and "demographic_parity_difference" in bias.stdout
        drift = _json(cli("report", "credit-scoring", str(version), "--kind", "drift", "--reference",
                          str(train["id"]), "--current", str(evaluation), "--option", 'features=["age", "income"]',
                          *wait, "--json"))
        assert drift["status"] == "succeeded" and drift["result"]["share_drifted"] <= 0.5, drift["result"]

    evidence(1, eval1["id"])

    # Version 1 is refused by the bias gate: exit 2, the gate and its reason printed.
    blocked = _ok(cli("promote", "credit-scoring", "1", "--to", "production", "--reason", "monthly retrain",
                      "--wait", "--timeout", "5", "--interval", "0.2"), 2)
    assert "credit-scoring v1 -> production: blocked" in blocked.stdout
    gate_line = next(line for line in blocked.stdout.splitlines() if BIAS_GATE in line)
    assert gate_line.strip().startswith("FAILED") and "0.3" in gate_line, blocked.stdout
    assert f"Not promoted: {BIAS_GATE}:" in blocked.stderr

    # The fix: version 2, evaluated on fresh predictions of the reweighed model.
    eval2 = _json(cli("upload", str(work / "eval-v2.csv"), "--name", "credit-eval", "--json"))
    assert eval2["version"] == 2
    again = _json(cli("upload", str(work / "eval-v2.csv"), "--name", "credit-eval", "--exist-ok", "--json"))
    assert again["id"] == eval2["id"]
    v2 = _json(cli("register", "credit-scoring", "--artifact", str(work / "model-v2.bin"),
                   "--uri", "s3://models/credit-scoring/2/model.bin", "--evaluation-dataset", str(eval2["id"]),
                   "--json"))
    assert v2["version"] == 2
    evidence(2, eval2["id"])

    # Every evidence gate passes; the approval is missing, so a short wait ends with exit 3.
    request = ["promote", "credit-scoring", "2", "--to", "production", "--reason", "monthly retrain, reweighed",
               "--idempotency-key", "ci-run-812"]
    waiting = _json(cli(*request, "--wait", "--timeout", "1", "--interval", "0.2", "--json"), 3)
    assert waiting["outcome"] == "awaiting_approval" and waiting["exit_code"] == 3
    statuses = {r["gate"]: r["status"] for r in waiting["promotion"]["decision"]["results"]}
    assert statuses[BIAS_GATE] == "passed" and statuses["approvals:1[approver]"] == "waiting", statuses
    pk = waiting["promotion"]["id"]
    assert _ok(cli("promotion-status", str(pk)), 3).stdout.startswith(f"Promotion #{pk}")

    # Separation of duties holds through the client too: the server's 403 is exit 1 with its message.
    refused = _ok(cli("approve", str(pk), "--comment", "self-approval"), 1)
    assert "HTTP 403" in refused.stderr and cast.tokens["pipeline"] not in refused.stderr + refused.stdout

    approved = _ok(cli("approve", str(pk), "--comment", "evidence reviewed", who="approver"))
    assert "it is now promoted" in approved.stdout

    # The CI job's retry with the same key replays the request and now ends 0, saving the receipt.
    receipt = work / "receipt.txt"
    done = _ok(cli(*request, "--wait", "--timeout", "10", "--interval", "0.2", "--receipt-out", str(receipt),
                   extra_env={"PYTHONPROFILEIMPORTTIME": "1"}))
    assert f"Replayed promotion #{pk}" in done.stderr and "production: promoted" in done.stdout
    imported = [line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")]
    assert imported and not [m for m in imported if m.split(".")[0] in {"django", "celery", "rest_framework"}]
    holder = StageAssignment.objects.get(model__name="credit-scoring", stage="production", ended_at__isnull=True)
    assert holder.version.version == 2

    # Anyone verifies the receipt offline: against the served keys, and against keys pinned earlier.
    verified = _ok(cli("verify-receipt", str(receipt), "--artifact", str(work / "model-v2.bin"),
                       "--expect-outcome", "promoted"))
    assert verified.stdout.startswith(f"OK: receipt for promotion #{pk}: credit-scoring v2 -> production: promoted")
    with urllib.request.urlopen(f"{live_server.url}/api/v1/audit/keys") as answer:  # noqa: S310 - local server
        (work / "keys.json").write_bytes(answer.read())
    pinned = _json(cli("verify-receipt", str(receipt), "--keys-file", str(work / "keys.json"), "--json"))
    body = pinned["receipt"]
    assert pinned["valid"] and body["outcome"] == "promoted" and body["artifact_sha256"] == v2["artifact_sha256"]
    assert [a["user"] for a in body["approvals"]] == ["approver"]
    assert {g["gate"] for g in body["gates"]} >= {BIAS_GATE, "approvals:1[approver]"}
    assert len(body["reports"]) == 3

    tampered = work / "receipt-tampered.txt"
    tampered.write_bytes(receipt.read_bytes().replace(b'"approver"', b'"mallory"', 1))
    rejected = _ok(cli("verify-receipt", str(tampered), "--keys-file", str(work / "keys.json")), 1)
    assert "does not verify" in rejected.stderr
