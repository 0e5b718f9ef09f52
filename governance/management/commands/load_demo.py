"""Load a small, realistic demo: teams, one user per role, models with versions and stages.

Idempotent: what exists is left alone, so running it twice changes nothing. Every write goes
through the same services as the API, so the demo's history is in the audit log like any other.
Refuses to run with production settings.
"""
from __future__ import annotations

import hashlib
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from governance import services as gov
from governance.access import Principal
from governance.models import Team
from governance.roles import ROLES
from registry import services as reg
from registry.models import Dataset, ModelVersion, RegisteredModel, StageAssignment

User = get_user_model()

TEAMS = [("credit-risk", "Credit Risk", "Retail credit scoring and churn"),
         ("clinical-ml", "Clinical ML", "Hospital readmission and triage models")]

# username, role, teams
USERS = [
    ("viewer", "viewer", ["credit-risk"]),
    ("scientist", "data_scientist", ["credit-risk"]),
    ("engineer", "ml_engineer", ["credit-risk"]),
    ("pipeline", "pipeline", ["credit-risk"]),
    ("clinic_engineer", "ml_engineer", ["clinical-ml"]),
    ("clinic_viewer", "viewer", ["clinical-ml"]),
    ("approver", "approver", []),
    ("compliance", "compliance_officer", []),
    ("auditor", "auditor", []),
    ("admin", "administrator", []),
]

MODELS = [
    ("credit-scoring", "credit-risk", "high", ["personal"], "Scores retail loan applications."),
    ("churn-predictor", "credit-risk", "medium", ["personal"], "Predicts customer churn for retention offers."),
    ("readmission-risk", "clinical-ml", "critical", ["phi", "personal", "special_category"],
     "Flags patients at risk of 30-day readmission for a nurse's review."),
]


def demo_password(username: str) -> str:
    """Demo passwords are printed by the command; they are for a laptop, never for production."""
    return f"{username}-demo-2026"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Command(BaseCommand):
    help = "Load demo teams, users (one per role), models, versions and stages. Safe to run twice."

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.PRODUCTION:
            raise CommandError("load_demo refuses to run with GOVAUDIT_ENV=production (demo passwords).")
        system = Principal.of_system("load_demo")
        teams: dict[str, Team] = {}
        for slug, name, description in TEAMS:
            teams[slug] = Team.objects.filter(slug=slug).first() or gov.team_create(
                actor=system, name=name, slug=slug, description=description)
        created_users = []
        for username, role, team_slugs in USERS:
            if not User.objects.filter(username=username).exists():
                gov.user_create(actor=system, username=username, email=f"{username}@example.org",
                                password=demo_password(username), roles=[role],
                                teams=[teams[s] for s in team_slugs])
                created_users.append(username)
        for name, team_slug, tier, categories, description in MODELS:
            model = RegisteredModel.objects.filter(name=name).first() or reg.model_create(
                actor=system, name=name, team=teams[team_slug], risk_tier=tier, data_categories=categories,
                description=description, intended_use=description, tags={"demo": "true"})
            dataset = Dataset.objects.filter(name=f"{name}-train").first() or reg.dataset_register(
                actor=system, team=teams[team_slug], name=f"{name}-train", sha256=_digest(f"{name}-train"),
                storage_uri=f"s3://demo-data/{name}/train.parquet", rows=120_000,
                schema={"columns": [{"name": "age", "type": "numeric"}, {"name": "label", "type": "numeric"}]},
                data_categories=categories)
            for n in (1, 2, 3):
                if not ModelVersion.objects.filter(model=model, version=n).exists():
                    reg.version_register(
                        actor=system, model=model, artifact_uri=f"s3://demo-models/{name}/v{n}/model.onnx",
                        artifact_sha256=_digest(f"{name}-v{n}"), artifact_size=1_000_000 + n, framework="onnx",
                        code_ref=f"git:{_digest(name + str(n))[:12]}", parameters={"max_depth": 4 + n},
                        metrics={"accuracy": round(0.84 + n * 0.02, 2)}, training_datasets=[dataset.pk],
                        pipeline_run_id=f"demo-run-{n}")
            if not StageAssignment.objects.filter(model=model).exists():
                v = {x.version: x for x in ModelVersion.objects.filter(model=model)}
                reg.stage_move(actor=system, version=v[1], stage="production", reason="demo: first release")
                reg.stage_move(actor=system, version=v[2], stage="production", reason="demo: retrained")
                reg.stage_move(actor=system, version=v[3], stage="staging", reason="demo: candidate")
        self.stdout.write(self.style.SUCCESS("Demo loaded. Sign in at http://127.0.0.1:8000/admin/ with:"))
        for username, role, team_slugs in USERS:
            note = "" if username in created_users else " (already existed)"
            self.stdout.write(f"  {username:<16} {demo_password(username):<28} {ROLES[role].label}"
                              f"{' in ' + ', '.join(team_slugs) if team_slugs else ''}{note}")
