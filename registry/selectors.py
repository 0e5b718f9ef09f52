"""Reads on the registry, always through what the principal may see.

A model of another team is reported as "not found", exactly like a model that does not exist,
so names of other teams' models never leak.
"""
from __future__ import annotations

from datetime import datetime

from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.models import Q, QuerySet
from django.db.models.expressions import RawSQL

from governance.access import Principal, access_of
from governance.errors import NotFound
from governance.queries import by_key
from registry.models import (
    Dataset,
    DatasetGroupObjectPermission,
    DatasetUserObjectPermission,
    ModelVersion,
    RegisteredModel,
    RegisteredModelGroupObjectPermission,
    RegisteredModelUserObjectPermission,
    StageAssignment,
)

# django-guardian's direct-foreign-key permission tables of each guarded model.
_OBJECT_PERMISSION_TABLES = {
    RegisteredModel: (RegisteredModelGroupObjectPermission, RegisteredModelUserObjectPermission),
    Dataset: (DatasetGroupObjectPermission, DatasetUserObjectPermission),
}


def _object_permission(principal: Principal, model: type, perm: str) -> Q:
    """A filter: the principal holds ``perm`` on the row, itself or through one of its groups.

    The same rows django-guardian's ``get_objects_for_user(..., accept_global_perms=False,
    with_superuser=False)`` returns, read from the same tables
    (``tests/registry/test_visibility.py`` holds the two to each other), written as two
    uncorrelated ``IN`` subqueries: guardian builds its query through several ORM querysets
    (about 3.5 ms of Python per call, measured), and every registration and promotion looks up
    at least one guarded row. Uncorrelated, so the filter stays right when the queryset is itself
    used as a subquery (``model__in=model_list(...)``, where Django renames the table). The
    principal's groups come from ``access_of``, read once per request.
    """
    group_table, user_table = (t._meta.db_table for t in _OBJECT_PERMISSION_TABLES[model])
    quote = connection.ops.quote_name
    app_label, codename = perm.split(".", 1)
    perm_match = (f"SELECT p.id FROM {quote(Permission._meta.db_table)} p JOIN "
                  f"{quote(ContentType._meta.db_table)} ct ON ct.id = p.content_type_id "
                  "WHERE p.codename = %s AND ct.app_label = %s AND ct.model = %s")
    perm_params = (codename, app_label, model._meta.model_name)
    user = principal.user
    allowed = Q(pk__in=RawSQL(f"SELECT uop.content_object_id FROM {quote(user_table)} uop WHERE uop.user_id = %s "
                              f"AND uop.permission_id IN ({perm_match})", (user.pk, *perm_params)))
    groups = sorted(access_of(user).group_ids)
    if groups:
        allowed |= Q(pk__in=RawSQL(
            f"SELECT gop.content_object_id FROM {quote(group_table)} gop "
            f"WHERE gop.group_id IN ({', '.join(['%s'] * len(groups))}) AND gop.permission_id IN ({perm_match})",
            (*groups, *perm_params)))
    return allowed


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
    visible = qs.filter(_object_permission(principal, qs.model, perm))
    return visible.filter(team=scope) if scope is not None else visible


def model_list(*, principal: Principal) -> QuerySet[RegisteredModel]:
    return _visible(principal, RegisteredModel.objects.select_related("team"), "registry.view_registeredmodel")


def model_get(*, principal: Principal, name: str) -> RegisteredModel:
    model = by_key(model_list(principal=principal).filter(name=name))
    if model is None:
        raise NotFound(f"No model named {name!r} that you can see.", code="model_not_found")
    return model


def version_list(*, principal: Principal, model: RegisteredModel) -> QuerySet[ModelVersion]:
    # ``model`` came from model_get, so it is already visible to the principal.
    return (ModelVersion.objects.filter(model=model).select_related("model", "created_by")
            .prefetch_related("training_datasets", "evaluation_datasets"))


def version_get(*, principal: Principal, model: RegisteredModel, number: int) -> ModelVersion:
    version = by_key(version_list(principal=principal, model=model).filter(version=number))
    if version is None:
        raise NotFound(f"Model {model.name!r} has no version {number}.", code="version_not_found")
    return version


def version_by_name(*, principal: Principal, name: str, number: int) -> ModelVersion:
    """A version by model name and number in one query (the model's visibility as a subquery).

    With its model, without the lineage: for callers that act on a version (promotions) rather
    than show it, where every extra query sits on a pipeline's hot path.
    """
    visible = model_list(principal=principal).filter(name=name)
    version = by_key(ModelVersion.objects.select_related("model").filter(model__in=visible, version=number))
    if version is None:  # which of the two is missing decides the answer; the model's 404 comes first
        model = model_get(principal=principal, name=name)
        raise NotFound(f"Model {model.name!r} has no version {number}.", code="version_not_found")
    return version


def dataset_list(*, principal: Principal) -> QuerySet[Dataset]:
    return _visible(principal, Dataset.objects.select_related("team"), "registry.view_dataset")


def dataset_get(*, principal: Principal, pk: int) -> Dataset:
    dataset = by_key(dataset_list(principal=principal).filter(pk=pk))
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
