"""Reads on the registry, always through what the principal may see.

A model of another team is reported as "not found", exactly like a model that does not exist,
so names of other teams' models never leak.
"""
from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Any, Callable, Generic, TypeVar

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.models import Model, Q, QuerySet
from django.db.models.expressions import RawSQL

from governance.access import Principal
from governance.errors import NotFound
from governance.queries import Compiled, by_key
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

M = TypeVar("M", bound=Model)

# django-guardian's direct-foreign-key permission tables of each guarded model.
_OBJECT_PERMISSION_TABLES = {
    RegisteredModel: (RegisteredModelGroupObjectPermission, RegisteredModelUserObjectPermission),
    Dataset: (DatasetGroupObjectPermission, DatasetUserObjectPermission),
}


def _object_permission(user_id: int, model: type, perm: str) -> Q:
    """A filter: the user holds ``perm`` on the row, itself or through one of its groups.

    The same rows django-guardian's ``get_objects_for_user(..., accept_global_perms=False,
    with_superuser=False)`` returns, read from the same tables
    (``tests/registry/test_visibility.py`` holds the two to each other), written as two
    uncorrelated ``IN`` subqueries: guardian builds its query through several ORM querysets
    (about 3.5 ms of Python per call, measured), and every registration and promotion looks up
    at least one guarded row. Uncorrelated, so the filter stays right when the queryset is itself
    used as a subquery (``model__in=model_list(...)``, where Django renames the table). The
    user's groups are a subquery too, so the SQL is the same for every user and can be compiled
    once (``governance.queries.Compiled``).
    """
    group_table, user_table = (t._meta.db_table for t in _OBJECT_PERMISSION_TABLES[model])
    quote = connection.ops.quote_name
    app_label, codename = perm.split(".", 1)
    perm_match = (f"SELECT p.id FROM {quote(Permission._meta.db_table)} p JOIN "
                  f"{quote(ContentType._meta.db_table)} ct ON ct.id = p.content_type_id "
                  "WHERE p.codename = %s AND ct.app_label = %s AND ct.model = %s")
    perm_params = (codename, app_label, model._meta.model_name)
    memberships = quote(get_user_model().groups.through._meta.db_table)
    return Q(pk__in=RawSQL(f"SELECT uop.content_object_id FROM {quote(user_table)} uop WHERE uop.user_id = %s "
                           f"AND uop.permission_id IN ({perm_match})", (user_id, *perm_params))) | \
        Q(pk__in=RawSQL(f"SELECT gop.content_object_id FROM {quote(group_table)} gop WHERE gop.group_id IN "
                        f"(SELECT ug.group_id FROM {memberships} ug WHERE ug.user_id = %s) "
                        f"AND gop.permission_id IN ({perm_match})", (user_id, *perm_params)))


# How a principal's view of guarded rows is cut, and the ids each cut needs:
# all rows (system work, or view_all_models without a team-scoped token), one team's rows (a
# team-scoped token with view_all_models), the rows the user holds a permission on, and those
# within a scoped token's team.
_SCOPES: dict[str, tuple[str, ...]] = {"all": (), "team": ("team_id",), "granted": ("user_id",),
                                       "granted_in_team": ("user_id", "team_id")}


def _scope_of(principal: Principal) -> tuple[str, dict[str, int]] | None:
    """Which cut applies to the principal and its ids; None when it may see no models at all."""
    if not principal.can("view_models"):
        return None
    if principal.sees_all or principal.system is not None:
        return "all", {}
    scope = principal.team_scope
    if scope is not None and principal.can("view_all_models"):
        return "team", {"team_id": scope.pk}
    if scope is None:
        return "granted", {"user_id": principal.user.pk}
    return "granted_in_team", {"user_id": principal.user.pk, "team_id": scope.pk}


def _cut(qs: QuerySet, perm: str, scope: str, user_id: int = 0, team_id: int = 0) -> QuerySet:
    if scope == "all":
        return qs
    if scope == "team":
        return qs.filter(team_id=team_id)
    visible = qs.filter(_object_permission(user_id, qs.model, perm))
    return visible.filter(team_id=team_id) if scope == "granted_in_team" else visible


def _visible(principal: Principal, qs: QuerySet, perm: str) -> QuerySet:
    found = _scope_of(principal)
    if found is None:
        return qs.none()
    return _cut(qs, perm, found[0], **found[1])


class _Visible(Generic[M]):
    """A read through what the principal may see, compiled once per kind of cut (``Compiled``)."""

    def __init__(self: _Visible[M], label: str, build: Callable[..., QuerySet[M]], /, **kinds: type) -> None:
        self.reads = {scope: Compiled(f"{label}:{scope}", partial(build, scope), **kinds, **{i: int for i in ids})
                      for scope, ids in _SCOPES.items()}

    def all(self: _Visible[M], principal: Principal, **values: Any) -> list[M]:
        found = _scope_of(principal)
        if found is None:
            return []
        return self.reads[found[0]].all(**values, **found[1])

    def one(self: _Visible[M], principal: Principal, **values: Any) -> M | None:
        rows = self.all(principal, **values)
        return rows[0] if rows else None


_MODEL_BY_NAME: _Visible[RegisteredModel] = _Visible(
    "model_by_name", lambda scope, name, **ids: _cut(RegisteredModel.objects.select_related("team"),
                                                     "registry.view_registeredmodel", scope, **ids)
    .filter(name=name).order_by()[:1], name=str)
_VERSION_BY_NAME: _Visible[ModelVersion] = _Visible(
    "version_by_name", lambda scope, name, number, **ids: ModelVersion.objects.select_related("model").filter(
        model__in=_cut(RegisteredModel.objects.all(), "registry.view_registeredmodel", scope, **ids).filter(name=name),
        version=number).order_by()[:1], name=str, number=int)
# A registration names a dataset or two: one compiled read per count up to this, the ORM beyond.
_DATASETS_COMPILED_UP_TO = 4


def _datasets_read(n: int) -> _Visible[Dataset]:
    def build(scope: str, **values: int) -> QuerySet[Dataset]:
        ids = [values.pop(f"id{i}") for i in range(n)]
        return _cut(Dataset.objects.select_related("team"), "registry.view_dataset", scope, **values) \
            .filter(pk__in=ids).order_by()
    return _Visible(f"datasets_by_id:{n}", build, **{f"id{i}": int for i in range(n)})


_DATASETS_BY_ID = {n: _datasets_read(n) for n in range(1, _DATASETS_COMPILED_UP_TO + 1)}


def model_list(*, principal: Principal) -> QuerySet[RegisteredModel]:
    return _visible(principal, RegisteredModel.objects.select_related("team"), "registry.view_registeredmodel")


def model_get(*, principal: Principal, name: str) -> RegisteredModel:
    model = _MODEL_BY_NAME.one(principal, name=name)
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
    version = _VERSION_BY_NAME.one(principal, name=name, number=number)
    if version is None:  # which of the two is missing decides the answer; the model's 404 comes first
        model = model_get(principal=principal, name=name)
        raise NotFound(f"Model {model.name!r} has no version {number}.", code="version_not_found")
    return version


def dataset_list(*, principal: Principal) -> QuerySet[Dataset]:
    return _visible(principal, Dataset.objects.select_related("team"), "registry.view_dataset")


def datasets_by_id(*, principal: Principal, ids: set[int]) -> dict[int, Dataset]:
    """The datasets with these ids that the principal may see, by id (the missing ones absent)."""
    if not ids:
        return {}
    read = _DATASETS_BY_ID.get(len(ids))
    if read is None:
        return {d.pk: d for d in dataset_list(principal=principal).filter(pk__in=ids)}
    return {d.pk: d for d in read.all(principal, **{f"id{i}": pk for i, pk in enumerate(sorted(ids))})}


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
