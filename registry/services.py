"""Writes on the registry. Each validates, changes, and appends its audit event in one transaction."""
from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Model, OuterRef, Q, Subquery
from django.utils import timezone
from guardian.shortcuts import assign_perm, remove_perm

from audits.core.canonical import CanonicalError, canonical_bytes
from audits.services import Target, audit_append
from governance.access import Principal, require_team_member
from governance.errors import Conflict, ValidationFailed
from governance.models import Team
from governance.queries import Compiled, CompiledInsert, compiled_update, key_sequence
from registry.models import (
    SINGLE_HOLDER_STAGES,
    DataCategory,
    Dataset,
    ModelVersion,
    RegisteredModel,
    RiskTier,
    Stage,
    StageAssignment,
    name_validator,
    sha256_validator,
)

MODEL_EDITABLE = ("description", "risk_tier", "intended_use", "data_categories", "tags")
VERSION_EDITABLE = ("description", "tags")
MAX_JSON_KEYS = 500


def lock_model(model: RegisteredModel) -> RegisteredModel:
    """Take ``model``'s row lock for the current transaction; refresh what writers under it read.

    Every write that must see a model's latest state (a new version's number, a promotion's
    policy scope, a stage move) first locks the model's row. ``select_for_update().get()`` did
    that by loading a second copy of the whole row through the ORM, on the hot path of every
    registration and promotion. This is one plain ``SELECT .. FOR UPDATE`` of the four fields
    those writers decide on (archived, name, risk tier, team), written back onto ``model``, which
    is returned. The other fields are as the caller read them. SQLite has no row locks: there the
    write transaction (``BEGIN IMMEDIATE``, governance.settings) already holds the database.
    """
    return lock_model_reserving(model, None)[0]


def lock_model_reserving(model: RegisteredModel, reserve: type[Model] | None) -> tuple[RegisteredModel, int | None]:
    """``lock_model``, and in the same statement the next key of ``reserve``'s table (``governance.queries.reserve_key``).

    The key is None where the database has no sequence (SQLite). A key taken and not used (the
    caller then finds a replay or a conflict) is simply skipped, as a rolled-back insert's is.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("lock_model must run inside the transaction that needs the lock")
    table = connection.ops.quote_name(RegisteredModel._meta.db_table)
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    sequence = key_sequence(reserve) if reserve is not None else None
    key_column, params = (", nextval(%s::regclass)", [sequence, model.pk]) if sequence else ("", [model.pk])
    with connection.cursor() as cur:
        cur.execute(f"SELECT archived, name, risk_tier, team_id{key_column} FROM {table} WHERE id = %s{lock}", params)
        row = cur.fetchone()
    if row is None:
        raise RegisteredModel.DoesNotExist(f"Model {model.pk} no longer exists.")
    archived, name, risk_tier, team_id = row[:4]
    if team_id != model.team_id:
        RegisteredModel.team.field.delete_cached_value(model)
    model.archived, model.name, model.risk_tier, model.team_id = bool(archived), name, risk_tier, team_id
    return model, (int(row[4]) if sequence else None)


def model_target(model: RegisteredModel) -> Target:
    return Target("registry.model", str(model.pk), model.name)


def version_target(version: ModelVersion) -> Target:
    return Target("registry.version", str(version.pk), f"{version.model.name} v{version.version}")


def dataset_target(dataset: Dataset) -> Target:
    return Target("registry.dataset", str(dataset.pk), f"{dataset.name} v{dataset.version}")


def _check(validator: Any, value: str, field: str) -> None:
    try:
        validator(value)
    except DjangoValidationError as exc:
        raise ValidationFailed(f"{field}: {' '.join(exc.messages)}", code=f"invalid_{field}",
                               details={field: exc.messages}) from exc


def _check_categories(values: Any, field: str = "data_categories") -> list[str]:
    allowed = set(DataCategory.values)
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ValidationFailed(f"{field} must be a list of strings from {sorted(allowed)}.", code="invalid_categories")
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise ValidationFailed(f"{field} has unknown values {unknown}; allowed: {sorted(allowed)}.",
                               code="invalid_categories")
    return sorted(set(values))


def _check_mapping(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValidationFailed(f"{field} must be a JSON object.", code=f"invalid_{field}")
    if len(value) > MAX_JSON_KEYS:
        raise ValidationFailed(f"{field} has {len(value)} keys; at most {MAX_JSON_KEYS} are kept.",
                               code=f"invalid_{field}")
    try:
        canonical_bytes(value)  # it will be recorded in the audit log, so it must be canonical JSON
    except CanonicalError as exc:
        raise ValidationFailed(f"{field} cannot be recorded: {exc}. Integers must stay within +-2^53 and "
                               "numbers must be finite.", code=f"invalid_{field}") from exc
    return value


def _grant_team(obj: Any, team: Team, perms: tuple[str, ...]) -> None:
    for perm in perms:
        assign_perm(perm, team.group, obj)


def model_create(*, actor: Principal, name: str, team: Team, description: str = "",
                 risk_tier: str = RiskTier.MEDIUM, intended_use: str = "",
                 data_categories: list[str] | None = None, tags: dict[str, Any] | None = None) -> RegisteredModel:
    """Register a model for a team and grant that team's group access to it."""
    actor.require("create_model", action="registry.model.created")
    _check(name_validator, name, "name")
    if risk_tier not in RiskTier.values:
        raise ValidationFailed(f"risk_tier must be one of {RiskTier.values}.", code="invalid_risk_tier")
    categories = _check_categories(data_categories or [])
    tags = _check_mapping(tags or {}, "tags")
    require_team_member(actor, team)
    with transaction.atomic():
        if RegisteredModel.objects.filter(name=name).exists():
            raise Conflict(f"A model named {name!r} already exists; choose another name.", code="duplicate_model")
        try:
            with transaction.atomic():
                model = RegisteredModel.objects.create(
                    name=name, team=team, description=description, risk_tier=risk_tier,
                    intended_use=intended_use, data_categories=categories, tags=tags,
                    created_by=actor.user if actor.system is None else None)
        except IntegrityError as exc:
            raise Conflict(f"A model named {name!r} already exists; choose another name.",
                           code="duplicate_model") from exc
        _grant_team(model, team, ("registry.view_registeredmodel", "registry.change_registeredmodel"))
        audit_append(actor=actor.snapshot(), action="registry.model.created", target=model_target(model),
                     payload={"team": team.slug, "risk_tier": risk_tier, "data_categories": categories,
                              "description": description, "intended_use": intended_use, "tags": tags})
    return model


def model_update(*, actor: Principal, model: RegisteredModel, changes: dict[str, Any]) -> RegisteredModel:
    """Edit a model's descriptive fields; the event keeps before and after of what changed."""
    actor.require("change_model", target=model_target(model), action="registry.model.updated")
    require_team_member(actor, model.team)
    unknown = sorted(set(changes) - set(MODEL_EDITABLE))
    if unknown:
        raise ValidationFailed(f"These fields cannot be changed here: {unknown}. Editable: {list(MODEL_EDITABLE)}.",
                               code="immutable_field")
    if "risk_tier" in changes and changes["risk_tier"] not in RiskTier.values:
        raise ValidationFailed(f"risk_tier must be one of {RiskTier.values}.", code="invalid_risk_tier")
    if "data_categories" in changes:
        changes["data_categories"] = _check_categories(changes["data_categories"])
    if "tags" in changes:
        _check_mapping(changes["tags"], "tags")
    with transaction.atomic():
        model = RegisteredModel.objects.select_for_update().get(pk=model.pk)
        before = {k: getattr(model, k) for k in changes}
        after = {k: v for k, v in changes.items() if before[k] != v}
        if not after:
            return model
        for key, value in after.items():
            setattr(model, key, value)
        model.updated_at = timezone.now()
        model.save(update_fields=[*after, "updated_at"])
        audit_append(actor=actor.snapshot(), action="registry.model.updated", target=model_target(model),
                     payload={"before": {k: before[k] for k in after}, "after": after})
    return model


def model_archive(*, actor: Principal, model: RegisteredModel) -> RegisteredModel:
    """Archive a model: it stays, with all its versions and history, but takes no new versions."""
    actor.require("archive_model", target=model_target(model), action="registry.model.archived")
    require_team_member(actor, model.team)
    with transaction.atomic():
        model = RegisteredModel.objects.select_for_update().get(pk=model.pk)
        if model.archived:
            raise Conflict(f"Model {model.name!r} is already archived.", code="already_archived")
        if StageAssignment.objects.filter(model=model, ended_at__isnull=True, stage__in=SINGLE_HOLDER_STAGES).exists():
            raise Conflict(f"Model {model.name!r} still has a version in staging or production; "
                           "move it out before archiving the model.", code="model_in_use")
        model.archived = True
        model.updated_at = timezone.now()
        model.save(update_fields=["archived", "updated_at"])
        audit_append(actor=actor.snapshot(), action="registry.model.archived", target=model_target(model), payload={})
    return model


def model_delete(*, actor: Principal, model: RegisteredModel) -> None:
    """Delete a model that never had a version (a typo); anything with history is archived instead."""
    actor.require("archive_model", target=model_target(model), action="registry.model.deleted")
    require_team_member(actor, model.team)
    with transaction.atomic():
        model = RegisteredModel.objects.select_for_update().get(pk=model.pk)
        if model.versions.exists():
            raise Conflict(f"Model {model.name!r} has versions and can only be archived "
                           f"(POST /api/v1/models/{model.name}/archive/).", code="model_has_versions")
        target = model_target(model)
        for perm in ("registry.view_registeredmodel", "registry.change_registeredmodel"):
            remove_perm(perm, model.team.group, model)
        model.delete()
        audit_append(actor=actor.snapshot(), action="registry.model.deleted", target=target, payload={})


def _datasets_for(actor: Principal, lists: dict[str, list[int]]) -> dict[str, list[Dataset]]:
    """The datasets each field names, all looked up in one visibility-filtered query.

    The filter (django-guardian's, for team members) is the costly part of a registration, so
    training and evaluation lineage share it rather than building it once per field.
    """
    from registry.selectors import datasets_by_id

    for field, ids in lists.items():
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise ValidationFailed(f"{field} must be a list of dataset ids.", code="invalid_datasets")
    wanted = {i for ids in lists.values() for i in ids}
    found = datasets_by_id(principal=actor, ids=wanted)
    for field, ids in lists.items():
        missing = [i for i in ids if i not in found]
        if missing:
            raise ValidationFailed(f"{field}: no datasets with ids {missing} that you can see; register them first "
                                   "with POST /api/v1/datasets/.", code="unknown_datasets")
    return {field: [found[i] for i in ids] for field, ids in lists.items()}


def _remember_lineage(version: ModelVersion, **lists: list[Dataset]) -> None:
    """Keep a new version's lineage on it, as a prefetch would, so the answer reads no datasets back."""
    cache = version.__dict__.setdefault("_prefetched_objects_cache", {})
    for kind, datasets in lists.items():
        field = f"{kind}_datasets"
        qs = getattr(version, field).all()
        qs._result_cache = list(datasets)  # what prefetch_related stores; these are the rows just linked
        qs._prefetch_done = True
        cache[field] = qs


def _numbering(model: RegisteredModel, artifact_sha256: str) -> tuple[int | None, int | None]:
    """The model's last version number, and the number of its version with this digest (or None).

    One statement of two index probes, written out (the ORM builds it through several query
    clones on every registration). Each subquery walks one of the unique indexes on (model,
    version) and (model, artifact_sha256), so the cost does not grow with the model's history;
    an aggregate over the model's versions did, and cost 0.45 ms per registration at about 1,000
    versions in the promotion benchmark (docs/benchmarks/promotions.md).
    """
    table = connection.ops.quote_name(ModelVersion._meta.db_table)
    with connection.cursor() as cur:
        cur.execute(f"SELECT (SELECT version FROM {table} WHERE model_id = %s ORDER BY version DESC LIMIT 1), "
                    f"(SELECT version FROM {table} WHERE model_id = %s AND artifact_sha256 = %s)",
                    [model.pk, model.pk, artifact_sha256])
        last, same_digest = cur.fetchone()
    return last, same_digest


# The pipeline's hot writes, their SQL built once per connection (governance.queries.CompiledInsert).
_INSERT_VERSION = CompiledInsert(ModelVersion)
_INSERT_KEYED_VERSION = CompiledInsert(ModelVersion, with_key=True)
_INSERT_TRAINING = CompiledInsert(ModelVersion.training_datasets.through, ignore_conflicts=True)
_INSERT_EVALUATION = CompiledInsert(ModelVersion.evaluation_datasets.through, ignore_conflicts=True)
_INSERT_STINTS = CompiledInsert(StageAssignment)


def _link(insert: CompiledInsert[Any], version: ModelVersion, datasets: list[Dataset]) -> None:
    """Link ``datasets`` to the new ``version`` in one statement, each once."""
    ids = list(dict.fromkeys(d.pk for d in datasets))
    insert.insert([insert.model(modelversion_id=version.pk, dataset_id=pk) for pk in ids])


def _version_statement(version: ModelVersion, training: list[Dataset], evaluation: list[Dataset]) \
        -> tuple[str, list[Any]]:
    """PostgreSQL: one statement inserting ``version`` (its key reserved) and its lineage links.

    The version's own INSERT (``_INSERT_KEYED_VERSION``'s SQL, values prepared by each field),
    with the two link-table INSERTs (as ``add()`` writes them: ON CONFLICT DO NOTHING, each
    dataset once) as data-modifying CTEs: two round trips fewer on every registration, three
    with the audit event that records it (``audit_append(along=...)``).
    """
    sql, version_params, _ = _INSERT_KEYED_VERSION.statement([version])
    qn = connection.ops.quote_name
    links: list[str] = []
    params: list[Any] = []  # in the order the statement takes them: the links' first
    for name, insert, datasets in (("_training", _INSERT_TRAINING, training),
                                   ("_evaluation", _INSERT_EVALUATION, evaluation)):
        meta = insert.model._meta
        links.append(f"{name} AS (INSERT INTO {qn(meta.db_table)} ({qn(meta.get_field('modelversion').column)}, "
                     f"{qn(meta.get_field('dataset').column)}) SELECT %s, d FROM unnest(%s::bigint[]) AS d "
                     f"ON CONFLICT DO NOTHING)")
        params += [version.pk, list(dict.fromkeys(d.pk for d in datasets))]
    return f"WITH {', '.join(links)} {sql}", params + version_params


def version_register(*, actor: Principal, model: RegisteredModel, artifact_uri: str, artifact_sha256: str,
                     artifact_size: int | None = None, framework: str = "", code_ref: str = "",
                     parameters: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None,
                     training_datasets: list[int] | None = None, evaluation_datasets: list[int] | None = None,
                     pipeline_run_id: str = "", description: str = "",
                     tags: dict[str, Any] | None = None) -> ModelVersion:
    """Register a new version; the server numbers it. The same digest twice is a 409 naming the first."""
    actor.require("register_version", target=model_target(model), action="registry.version.registered")
    require_team_member(actor, model.team)
    _check(sha256_validator, artifact_sha256, "artifact_sha256")
    if not artifact_uri or len(artifact_uri) > 1024:
        raise ValidationFailed("artifact_uri is required (at most 1024 characters).", code="invalid_artifact_uri")
    if artifact_size is not None and (not isinstance(artifact_size, int) or artifact_size < 0):
        raise ValidationFailed("artifact_size must be a non-negative integer (bytes).", code="invalid_artifact_size")
    parameters = _check_mapping(parameters or {}, "parameters")
    metrics = _check_mapping(metrics or {}, "metrics")
    tags = _check_mapping(tags or {}, "tags")
    lineage = _datasets_for(actor, {"training_datasets": training_datasets or [],
                                    "evaluation_datasets": evaluation_datasets or []})
    training, evaluation = lineage["training_datasets"], lineage["evaluation_datasets"]
    with transaction.atomic():
        # The model row lock serialises numbering: two registrations never get the same number.
        # With it, the new version's key where the database hands keys out ahead (PostgreSQL).
        model, key = lock_model_reserving(model, ModelVersion)
        if model.archived:
            raise Conflict(f"Model {model.name!r} is archived and takes no new versions.", code="model_archived")
        # The last number and any version with this digest, in one read, after the lock (a read
        # in the locking statement would use a snapshot older than the lock: a concurrent
        # registration's number would be missed).
        last, same_digest = _numbering(model, artifact_sha256)
        if same_digest is not None:
            raise Conflict(f"This artifact (sha256 {artifact_sha256[:12]}…) is already registered as "
                           f"{model.name} version {same_digest}.", code="duplicate_artifact",
                           details={"existing_version": same_digest})
        number = (last or 0) + 1
        version = ModelVersion(
            pk=key, model=model, version=number, artifact_uri=artifact_uri, artifact_sha256=artifact_sha256,
            artifact_size=artifact_size, framework=framework, code_ref=code_ref, parameters=parameters,
            metrics=metrics, pipeline_run_id=pipeline_run_id, description=description, tags=tags,
            created_by=actor.user if actor.system is None else None)
        # The link rows as add() writes them, without set()'s read of the empty lineage a new
        # version has. PostgreSQL: the version, its links and its audit event in one statement.
        along = None
        if key is None:
            _INSERT_VERSION.insert([version])
            _link(_INSERT_TRAINING, version, training)
            _link(_INSERT_EVALUATION, version, evaluation)
        else:
            along = _version_statement(version, training, evaluation)
        audit_append(actor=actor.snapshot(), action="registry.version.registered", target=version_target(version),
                     payload={"model": model.name, "version": number, "artifact_uri": artifact_uri,
                              "artifact_sha256": artifact_sha256, "artifact_size": artifact_size,
                              "framework": framework, "code_ref": code_ref, "pipeline_run_id": pipeline_run_id,
                              "training_datasets": [{"id": d.pk, "sha256": d.sha256} for d in training],
                              "evaluation_datasets": [{"id": d.pk, "sha256": d.sha256} for d in evaluation],
                              "parameters": parameters, "metrics": metrics}, along=along)
        if along is not None:
            _INSERT_KEYED_VERSION.inserted([version])
        _remember_lineage(version, training=training, evaluation=evaluation)
    return version


def version_update(*, actor: Principal, version: ModelVersion, changes: dict[str, Any]) -> ModelVersion:
    """Edit a version's description and tags; everything else about a version is immutable."""
    actor.require("change_version", target=version_target(version), action="registry.version.updated")
    require_team_member(actor, version.model.team)
    immutable = sorted(set(changes) - set(VERSION_EDITABLE))
    if immutable:
        raise ValidationFailed(f"A version's {immutable} cannot change after registration; register a new "
                               f"version instead. Editable: {list(VERSION_EDITABLE)}.", code="immutable_field")
    if "tags" in changes:
        _check_mapping(changes["tags"], "tags")
    with transaction.atomic():
        version = ModelVersion.objects.select_for_update().select_related("model").get(pk=version.pk)
        before = {k: getattr(version, k) for k in changes}
        after = {k: v for k, v in changes.items() if before[k] != v}
        if not after:
            return version
        for key, value in after.items():
            setattr(version, key, value)
        version.save(update_fields=list(after))
        audit_append(actor=actor.snapshot(), action="registry.version.updated", target=version_target(version),
                     payload={"before": {k: before[k] for k in after}, "after": after})
    return version


def dataset_register(*, actor: Principal, team: Team, name: str, sha256: str, storage_uri: str,
                     schema: dict[str, Any] | None = None, rows: int | None = None, size_bytes: int | None = None,
                     data_categories: list[str] | None = None, description: str = "") -> Dataset:
    """Register a dataset by digest; the server numbers versions per name."""
    actor.require("register_dataset", action="registry.dataset.registered")
    _check(name_validator, name, "name")
    _check(sha256_validator, sha256, "sha256")
    if not storage_uri or len(storage_uri) > 1024:
        raise ValidationFailed("storage_uri is required (at most 1024 characters).", code="invalid_storage_uri")
    for field, value in (("rows", rows), ("size_bytes", size_bytes)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise ValidationFailed(f"{field} must be a non-negative integer.", code=f"invalid_{field}")
    schema = _check_mapping(schema or {}, "schema")
    categories = _check_categories(data_categories or [])
    require_team_member(actor, team)
    with transaction.atomic():
        existing = Dataset.objects.filter(team=team, sha256=sha256).first()
        if existing is not None:
            raise Conflict(f"This data (sha256 {sha256[:12]}…) is already registered as dataset "
                           f"{existing.name} v{existing.version} (id {existing.pk}).", code="duplicate_dataset",
                           details={"existing_id": existing.pk})
        # Lock the name's versions so concurrent registrations number densely (retry on the race).
        last = max(Dataset.objects.select_for_update().filter(name=name).values_list("version", flat=True),
                   default=0)
        try:
            with transaction.atomic():
                dataset = Dataset.objects.create(
                    name=name, version=last + 1, team=team, sha256=sha256, storage_uri=storage_uri, schema=schema,
                    rows=rows, size_bytes=size_bytes, data_categories=categories, description=description,
                    created_by=actor.user if actor.system is None else None)
        except IntegrityError as exc:
            raise Conflict(f"Another registration of dataset {name!r} happened at the same moment; retry.",
                           code="concurrent_registration") from exc
        _grant_team(dataset, team, ("registry.view_dataset",))
        audit_append(actor=actor.snapshot(), action="registry.dataset.registered", target=dataset_target(dataset),
                     payload={"team": team.slug, "name": name, "version": dataset.version, "sha256": sha256,
                              "storage_uri": storage_uri, "rows": rows, "size_bytes": size_bytes,
                              "schema": schema, "data_categories": categories})
    return dataset


# At most two rows, read whole, with no ORDER BY (see governance.queries.by_key for its cost);
# compiled once per connection (governance.queries.Compiled), as every promotion reads them.
def _current_stints(stage: str) -> Compiled[StageAssignment]:
    """The read of a version's current stint and ``stage``'s current holder, for one stage.

    One compiled read per stage, the stage written into its SQL: a prepared statement's generic
    plan can then use the partial unique index on the current holders of staging and production,
    which the unique check on every new stint keeps free of ended stints. With the stage a
    parameter it took an index that no plain read ever prunes, and without vacuum (this machine's
    PostgreSQL runs none) it walked every stint the model ever had in the stage. The held
    version's number comes by primary key (``held_version``) rather than by a join, which the
    planner, guessing the row count, made a scan of every version of every model.
    """
    return Compiled(
        f"current_stints:{stage}", lambda model_id, version_id: StageAssignment.objects.filter(
            Q(version_id=version_id) | Q(stage=stage), model_id=model_id, ended_at__isnull=True)
        .annotate(held_version=Subquery(
            ModelVersion.objects.filter(pk=OuterRef("version_id")).order_by().values("version")[:1]))
        .order_by(), model_id=int, version_id=int)


_CURRENT_STINTS = {stage: _current_stints(stage) for stage in SINGLE_HOLDER_STAGES}
_CURRENT_STINT = Compiled(
    "current_stint", lambda model_id, version_id: StageAssignment.objects.filter(
        version_id=version_id, model_id=model_id, ended_at__isnull=True).select_related("version").order_by(),
    model_id=int, version_id=int)


def stage_move(*, actor: Principal, version: ModelVersion, stage: str, reason: str = "",
               locked_model: RegisteredModel | None = None) -> StageAssignment:
    """Put ``version`` in ``stage``; the stage's previous holder goes to archived.

    This is the only code that writes stage assignments. It is deliberately not exposed by the API,
    the admin or a command: those reach it only through gated promotion services.
    ``locked_model``: the version's model, when the caller already holds its row lock in the
    current transaction (a promotion does); otherwise the lock is taken here.
    """
    if stage not in Stage.values:
        raise ValidationFailed(f"stage must be one of {Stage.values}.", code="invalid_stage")
    # No savepoint of its own: a failure here abandons the caller's transaction too, which is what
    # every caller wants (a half-made decision must not commit).
    with transaction.atomic(savepoint=False):
        if locked_model is not None and locked_model.pk == version.model_id:
            model = locked_model
        elif ModelVersion.model.is_cached(version):
            model = lock_model(version.model)
        else:
            model = RegisteredModel.objects.select_for_update().get(pk=version.model_id)
        now = timezone.now()
        snapshot = actor.snapshot()
        # The version's current stint and the stage's current holder, in one read.
        if stage in SINGLE_HOLDER_STAGES:
            current = _CURRENT_STINTS[stage].all(model_id=model.pk, version_id=version.pk)
        else:
            current = _CURRENT_STINT.all(model_id=model.pk, version_id=version.pk)
        current_of_version = next((a for a in current if a.version_id == version.pk), None)
        if current_of_version is not None and current_of_version.stage == stage:
            raise Conflict(f"{model.name} v{version.version} is already in {stage}.", code="already_in_stage")
        displaced = None
        if stage in SINGLE_HOLDER_STAGES:
            displaced = next((a for a in current if a.stage == stage and a.version_id != version.pk), None)
        if current_of_version is not None:
            current_of_version.ended_at = now
            compiled_update(current_of_version, ["ended_at"])
        rows = []
        if displaced is not None:
            displaced.ended_at = now
            compiled_update(displaced, ["ended_at"])
            rows.append(StageAssignment(model=model, version_id=displaced.version_id, stage=Stage.ARCHIVED,
                                        started_at=now, started_by=snapshot,
                                        reason=f"displaced from {stage} by v{version.version}"))
        assignment = StageAssignment(model=model, version=version, stage=stage, started_at=now,
                                     started_by=snapshot, reason=reason)
        # One INSERT (ids in this order), sent with the audit event that records it.
        stints = [*rows, assignment]
        sql, params, returning = _INSERT_STINTS.statement(stints)
        if not returning:
            raise TypeError("the stints' insert does not return their keys")
        keys = audit_append(actor=snapshot, action="registry.stage.moved",
                            target=version_target(version),
                            payload={"model": model.name, "version": version.version, "stage": stage,
                                     "from_stage": current_of_version.stage if current_of_version else None,
                                     "artifact_sha256": version.artifact_sha256, "reason": reason,
                                     "displaced_version": displaced.held_version if displaced else None},
                            along=(sql, params))
        _INSERT_STINTS.inserted(stints, keys=keys)
    return assignment

