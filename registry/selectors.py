"""Reads on the registry, always through what the principal may see.

A model of another team is reported as "not found", exactly like a model that does not exist,
so names of other teams' models never leak.
"""
from __future__ import annotations

from datetime import datetime

from django.db.models import Q, QuerySet
from guardian.shortcuts import get_objects_for_user

from governance.access import Principal
from governance.errors import NotFound
from registry.models import Dataset, ModelVersion, RegisteredModel, StageAssignment


def _visible(principal: Principal, qs: QuerySet, perm: str) -> QuerySet:
    if not principal.can("view_models"):
        return qs.none()
    if principal.sees_all:
        return qs
    if principal.system is not None:
        return qs
    scope = principal.team_scope
    if scope is not None and principal.can("view_all_models"):
        return qs.filter(team=scope)
    visible = get_objects_for_user(principal.user, perm, klass=qs, accept_global_perms=False,
                                   with_superuser=False)
    return visible.filter(team=scope) if scope is not None else visible


def model_list(*, principal: Principal) -> QuerySet[RegisteredModel]:
    return _visible(principal, RegisteredModel.objects.select_related("team"), "registry.view_registeredmodel")


def model_get(*, principal: Principal, name: str) -> RegisteredModel:
    model = model_list(principal=principal).filter(name=name).first()
    if model is None:
        raise NotFound(f"No model named {name!r} that you can see.", code="model_not_found")
    return model


def version_list(*, principal: Principal, model: RegisteredModel) -> QuerySet[ModelVersion]:
    # ``model`` came from model_get, so it is already visible to the principal.
    return (ModelVersion.objects.filter(model=model).select_related("model", "created_by")
            .prefetch_related("training_datasets", "evaluation_datasets"))


def version_get(*, principal: Principal, model: RegisteredModel, number: int) -> ModelVersion:
    version = version_list(principal=principal, model=model).filter(version=number).first()
    if version is None:
        raise NotFound(f"Model {model.name!r} has no version {number}.", code="version_not_found")
    return version


def dataset_list(*, principal: Principal) -> QuerySet[Dataset]:
    return _visible(principal, Dataset.objects.select_related("team"), "registry.view_dataset")


def dataset_get(*, principal: Principal, pk: int) -> Dataset:
    dataset = dataset_list(principal=principal).filter(pk=pk).first()
    if dataset is None:
        raise NotFound(f"No dataset with id {pk} that you can see.", code="dataset_not_found")
    return dataset


def stage_holders(*, model: RegisteredModel, at: datetime | None = None) -> QuerySet[StageAssignment]:
    """Which versions held a stage at ``at`` (now when None): one query, from the history."""
    qs = StageAssignment.objects.filter(model=model).select_related("version")
    if at is None:
        return qs.filter(ended_at__isnull=True)
    return qs.filter(started_at__lte=at).filter(Q(ended_at__isnull=True) | Q(ended_at__gt=at))


def stage_history(*, model: RegisteredModel) -> QuerySet[StageAssignment]:
    return StageAssignment.objects.filter(model=model).select_related("version")
