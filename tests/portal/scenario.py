"""A realistic state for the portal's pages, built through the services on top of the cast.

Real evidence: drift, bias and validation reports computed by the detectors from small CSV files
(written deterministically, so the figures never change); two production policies; one promotion
of alpha-model waiting for an approver and one of beta-model blocked by a failing gate.
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from governance import promotions
from governance.access import Principal
from governance.models import PromotionRequest
from monitoring import services as mon
from monitoring.models import Report
from registry.models import ModelVersion
from tests.factories import SYSTEM, Cast, VersionFactory

PASSWORD = "portal-test-password-2026"

ALPHA_POLICY = """
name: alpha-production
description: What alpha-model needs before production.
target_stage: production
applies_to:
  models: [alpha-model]
gates:
  - type: validation_metric
    metric: accuracy
    op: ">="
    threshold: 0.7
  - type: bias_metric
    metric: demographic_parity_difference
    sensitive_feature: sex
    op: "<="
    threshold: 0.3
  - type: drift
    max_share_drifted: 0.5
  - type: approvals
    count: 1
    roles: [approver, compliance_officer]
"""

BETA_POLICY = """
name: beta-production
target_stage: production
applies_to:
  models: [beta-model]
gates:
  - type: validation_metric
    metric: accuracy
    op: ">="
    threshold: 0.99
  - type: approvals
    count: 1
    roles: [approver]
"""


@dataclass
class Scenario:
    pending: PromotionRequest  # alpha-model v2 to production, awaiting approval
    blocked: PromotionRequest  # beta-model v2 to production, blocked: accuracy below 0.99
    alpha_v2: ModelVersion
    beta_v2: ModelVersion
    reports: list[Report]


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> dict[str, Any]:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(",".join(header) + "\n" + "\n".join(",".join(str(v) for v in row) for row in rows) + "\n")
    data = path.read_bytes()
    return {"path": path, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def write_datasets(folder: Path) -> dict[str, dict[str, Any]]:
    """Reference/current samples (income drifts, age does not) and a labelled evaluation set."""
    rng = random.Random(7)
    regions = ["north", "south", "east", "west"]
    reference = [[round(rng.gauss(40, 8), 2), round(rng.gauss(50, 10), 2), rng.choice(regions)] for _ in range(400)]
    current = [[round(rng.gauss(40, 8), 2), round(rng.gauss(62, 10), 2), rng.choice(regions)] for _ in range(400)]
    evaluation = []
    for i in range(400):
        label = rng.random() < 0.5
        sex = "f" if i % 2 else "m"
        correct = rng.random() < (0.86 if sex == "m" else 0.78)
        pred = label if correct else not label
        evaluation.append([int(label), int(pred), sex])
    return {
        "reference": _write_csv(folder / "reference.csv", ["age", "income", "region"], reference),
        "current": _write_csv(folder / "current.csv", ["age", "income", "region"], current),
        "evaluation": _write_csv(folder / "evaluation.csv", ["label", "pred", "sex"], evaluation),
    }


def _reports(version: ModelVersion, datasets: dict[str, Any], kinds: tuple[str, ...]) -> list[Report]:
    options = {
        "validation": {"task": "classification", "label": "label", "prediction": "pred"},
        "bias": {"label": "label", "prediction": "pred", "sensitive_features": ["sex"]},
        "drift": {"features": ["age", "income", "region"], "categorical": ["region"]},
    }
    roles = {"validation": {"evaluation": datasets["evaluation"].pk}, "bias": {"evaluation": datasets["evaluation"].pk},
             "drift": {"reference": datasets["reference"].pk, "current": datasets["current"].pk}}
    out = []
    for kind in kinds:
        report = mon.report_request(actor=SYSTEM, version=version, kind=kind, datasets=roles[kind],
                                    options=options[kind], enqueue=False)
        out.append(mon.report_compute(report_id=report.pk))
    return out


def build_scenario(cast: Cast, folder: Path) -> Scenario:
    files = write_datasets(folder)
    datasets = {}
    for team_key in ("alpha", "beta"):
        for role, info in files.items():
            datasets[(team_key, role)] = mon.dataset_ingest(actor=SYSTEM, team=cast.teams[team_key],
                                                            name=f"{team_key}-{role}", **info)
    promotions.policy_publish(actor=SYSTEM, text=ALPHA_POLICY)
    promotions.policy_publish(actor=SYSTEM, text=BETA_POLICY)
    alpha_v2 = cast.versions["alpha2"]
    beta_v2 = VersionFactory(model=cast.models["beta"])
    alpha_ds = {role: datasets[("alpha", role)] for role in files}
    beta_ds = {role: datasets[("beta", role)] for role in files}
    reports = _reports(alpha_v2, alpha_ds, ("validation", "bias", "drift"))
    reports += _reports(beta_v2, beta_ds, ("validation",))
    pending, _ = promotions.promotion_request(actor=Principal(user=cast.users["ml_engineer"]), version=alpha_v2,
                                              target_stage="production", reason="quarterly retrain")
    blocked, _ = promotions.promotion_request(actor=Principal(user=cast.users["beta_engineer"]), version=beta_v2,
                                              target_stage="production", reason="new features")
    return Scenario(pending=pending, blocked=blocked, alpha_v2=alpha_v2, beta_v2=beta_v2, reports=reports)


def set_password(user: Any, password: str = PASSWORD) -> None:
    """Cast users are created without passwords (token users); portal tests sign in with one."""
    user.set_password(password)
    user.save(update_fields=["password"])
