"""Factories that build through the services (so every object has its audit trail), via factory_boy."""
from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field
from typing import Any

import factory

from governance import services as gov
from governance.access import Principal
from governance.models import Team
from registry import services as reg
from registry.models import Dataset, ModelVersion, RegisteredModel

SYSTEM = Principal.of_system("tests")
_counter = itertools.count(1)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class TeamFactory(factory.Factory):
    class Meta:
        model = Team

    name = factory.Sequence(lambda n: f"Team {n}")
    slug = factory.Sequence(lambda n: f"team-{n}")

    @classmethod
    def _create(cls, model_class: type, *args: Any, **kwargs: Any) -> Team:
        return gov.team_create(actor=SYSTEM, **kwargs)


class ModelFactory(factory.Factory):
    class Meta:
        model = RegisteredModel

    name = factory.Sequence(lambda n: f"model-{n}")
    team = factory.SubFactory(TeamFactory)
    risk_tier = "medium"

    @classmethod
    def _create(cls, model_class: type, *args: Any, **kwargs: Any) -> RegisteredModel:
        return reg.model_create(actor=kwargs.pop("actor", SYSTEM), **kwargs)


class VersionFactory(factory.Factory):
    class Meta:
        model = ModelVersion

    model = factory.SubFactory(ModelFactory)
    artifact_uri = factory.Sequence(lambda n: f"s3://bucket/models/{n}/model.onnx")
    artifact_sha256 = factory.Sequence(lambda n: digest(f"artifact-{n}-{next(_counter)}"))
    framework = "sklearn"

    @classmethod
    def _create(cls, model_class: type, *args: Any, **kwargs: Any) -> ModelVersion:
        return reg.version_register(actor=kwargs.pop("actor", SYSTEM), **kwargs)


class DatasetFactory(factory.Factory):
    class Meta:
        model = Dataset

    name = factory.Sequence(lambda n: f"dataset-{n}")
    team = factory.SubFactory(TeamFactory)
    sha256 = factory.Sequence(lambda n: digest(f"dataset-{n}-{next(_counter)}"))
    storage_uri = factory.Sequence(lambda n: f"s3://bucket/data/{n}.parquet")

    @classmethod
    def _create(cls, model_class: type, *args: Any, **kwargs: Any) -> Dataset:
        return reg.dataset_register(actor=kwargs.pop("actor", SYSTEM), **kwargs)


CAST_POLICY = """
name: critical-staging
target_stage: staging
applies_to:
  risk_tiers: [critical]
gates:
  - type: validation_metric
    metric: accuracy
    op: ">="
    threshold: 0.9
"""

SCOPED_ROLES = ["viewer", "data_scientist", "ml_engineer", "pipeline"]
GLOBAL_ROLES = ["approver", "compliance_officer", "auditor", "administrator"]
ALL_ROLES = SCOPED_ROLES + GLOBAL_ROLES


@dataclass
class Cast:
    teams: dict[str, Team]
    users: dict[str, Any]
    tokens: dict[str, str]
    models: dict[str, RegisteredModel]
    versions: dict[str, ModelVersion] = field(default_factory=dict)
    datasets: dict[str, Dataset] = field(default_factory=dict)


def build_cast() -> Cast:
    """Team alpha (every scoped role), team beta (a viewer and an engineer), global roles, data."""
    alpha = TeamFactory(name="Alpha", slug="alpha")
    beta = TeamFactory(name="Beta", slug="beta")
    users: dict[str, Any] = {}
    tokens: dict[str, str] = {}
    for role in ALL_ROLES:
        teams = [alpha] if role in SCOPED_ROLES else []
        users[role] = gov.user_create(actor=SYSTEM, username=role, password=None, roles=[role], teams=teams)
    users["beta_viewer"] = gov.user_create(actor=SYSTEM, username="beta_viewer", roles=["viewer"], teams=[beta])
    users["beta_engineer"] = gov.user_create(actor=SYSTEM, username="beta_engineer", roles=["ml_engineer"],
                                             teams=[beta])
    for name, user in users.items():
        tokens[name] = gov.token_create(actor=SYSTEM, user=user, name=f"{name}-token")[1]
    alpha_ds = DatasetFactory(team=alpha, name="alpha-data")
    beta_ds = DatasetFactory(team=beta, name="beta-data")
    alpha_model = ModelFactory(name="alpha-model", team=alpha, data_categories=["personal"])
    beta_model = ModelFactory(name="beta-model", team=beta, data_categories=["phi"])
    v1 = VersionFactory(model=alpha_model, training_datasets=[alpha_ds.pk])
    v2 = VersionFactory(model=alpha_model)
    b1 = VersionFactory(model=beta_model, training_datasets=[beta_ds.pk])
    reg.stage_move(actor=SYSTEM, version=v1, stage="production", reason="test")
    reg.stage_move(actor=SYSTEM, version=b1, stage="production", reason="test")
    from datetime import timedelta

    from django.utils import timezone

    from governance import promotions

    promotions.policy_publish(actor=SYSTEM, text=CAST_POLICY)
    promotions.promotion_request(actor=SYSTEM, version=v2, target_stage="staging", reason="cast")  # blocked: no policy
    promotions.waiver_grant(actor=SYSTEM, version=v2, gate="validation_metric:accuracy>=0.9",
                            justification="cast waiver for tests", expires_at=timezone.now() + timedelta(days=1))
    from audits.checkpoints import checkpoint_create

    checkpoint_create()
    return Cast(teams={"alpha": alpha, "beta": beta}, users=users, tokens=tokens,
                models={"alpha": alpha_model, "beta": beta_model},
                versions={"alpha1": v1, "alpha2": v2, "beta1": b1},
                datasets={"alpha": alpha_ds, "beta": beta_ds})
