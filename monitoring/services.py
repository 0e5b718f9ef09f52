"""Writes on evidence: dataset intake, and the life of a report (request, start, finish, fail, reap).

Each state change runs in one transaction that also appends exactly one audit event (names in
``EVENTS``). ``report_compute`` is the orchestration a worker runs: it calls the pure detector
core (``monitoring.detectors``) between ``report_start`` and ``report_finish``/``report_fail``,
and sorts failures into three kinds:

* bad data (``DataError``): the report fails with the detector's code and message; retrying
  cannot help, so it is never retried;
* transient database errors (``OperationalError``): re-raised for the task to retry; the report
  stays running and the retry restarts it (the result is deterministic, so restarting is safe);
* anything else: logged, and the report fails with a generic message, never left running.
"""
from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable, Mapping
from datetime import timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

from django.db import OperationalError, transaction
from django.utils import timezone

from audits.core.canonical import CanonicalError, canonical_bytes
from audits.services import Target, audit_append
from governance.access import Principal, require_team_member
from governance.errors import Conflict, NotFound, ValidationFailed
from governance.models import Team
from monitoring import storage
from monitoring.detectors import DataError, infer_schema
from monitoring.detectors.data import check_not_all_missing, check_same_schema, require_columns
from monitoring.models import Report, ReportKind, ReportStatus
from registry.models import Dataset, ModelVersion
from registry.services import dataset_register, version_target

log = logging.getLogger("monitoring")

EVENTS = {
    "queued": "monitoring.report.queued",
    "started": "monitoring.report.started",
    "finished": "monitoring.report.finished",
    "failed": "monitoring.report.failed",
}
WORKER = Principal.of_system("report-worker")
REAPER = Principal.of_system("report-reaper")
# Roles each kind reads; the API's ``datasets`` object must hold exactly these keys.
DATASET_ROLES: dict[str, tuple[str, ...]] = {
    ReportKind.DRIFT: ("reference", "current"),
    ReportKind.BIAS: ("evaluation",),
    ReportKind.VALIDATION: ("evaluation",),
}
LIBRARIES = ("alibi-detect", "fairlearn", "scikit-learn", "numpy", "pandas", "pyarrow")
CORRECTIONS = ("bonferroni", "fdr")
TASKS = ("classification", "regression")


def report_target(report: Report) -> Target:
    version = report.version
    return Target("monitoring.report", str(report.pk), f"{report.kind} report of {version.model.name} v{version.version}")


def library_versions() -> dict[str, str | None]:
    """Versions of the numerical libraries in this process: a result is only reproducible with them."""
    found: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def _digest(value: Any) -> str:
    return hashlib.sha256(canonical_bytes(value)).hexdigest()


def report_inputs_digest(*, kind: str, artifact_sha256: str, datasets: Mapping[str, str],
                         options: Mapping[str, Any]) -> str:
    """What a report is computed on, as one digest: kind, artifact, each role's dataset digest, options.

    Recorded when the report is requested; the promotion gates recompute it from the version
    and the datasets the report row points at (``evidence_binding``), so a report moved to
    another version or re-pointed at other data no longer counts as evidence.
    """
    return _digest({"kind": kind, "artifact_sha256": artifact_sha256, "datasets": dict(datasets),
                    "options": dict(options)})


class InputUnavailable(Exception):
    """A report's stored dataset file is gone: not the uploader's data problem, but not retryable."""

    code = "dataset_unavailable"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _as_invalid(exc: DataError) -> ValidationFailed:
    """A detector's data check, run at submission, as a 400 with the same code and message."""
    return ValidationFailed(exc.message, code=exc.code, details=exc.details)


# --- Datasets ------------------------------------------------------------------------------------

def dataset_ingest(*, actor: Principal, team: Team, name: str, path: Path, sha256: str, size: int,
                   data_categories: list[str] | None = None, description: str = "") -> Dataset:
    """Register a dataset file this service can read, with the schema and row count it really has.

    The schema is inferred from the file (never taken from the client), so report requests can be
    checked against it at submission. Unusable files (empty, header only, bad encoding, neither
    CSV nor Parquet) are a 400 with the detector's code; the registration and its audit event are
    ``registry.services.dataset_register``'s.
    """
    actor.require("register_dataset", action="registry.dataset.registered")
    try:
        schema = infer_schema(path)
    except DataError as exc:
        raise _as_invalid(exc) from exc
    return dataset_register(actor=actor, team=team, name=name, sha256=sha256, storage_uri=storage.file_uri(path),
                            schema=schema, rows=int(schema["rows"]), size_bytes=size,
                            data_categories=data_categories, description=description)


def dataset_upload(*, actor: Principal, team: Team, name: str, staged: storage.StagedFile,
                   data_categories: list[str] | None = None, description: str = "") -> Dataset:
    """Accept a streamed upload: check it, store it by digest, register it.

    Nothing is stored unless the registration succeeds: on any refusal the staged file is left for
    the handler's cleanup and a file this call moved into place is removed again.
    """
    actor.require("register_dataset", action="registry.dataset.registered")
    try:
        schema = infer_schema(staged.path)  # also detects the format; DataError for unusable files
    except DataError as exc:
        raise _as_invalid(exc) from exc
    final, created = storage.store_by_digest(staged, schema["format"])
    try:
        return dataset_register(actor=actor, team=team, name=name, sha256=staged.sha256,
                                storage_uri=storage.file_uri(final), schema=schema, rows=int(schema["rows"]),
                                size_bytes=staged.size, data_categories=data_categories, description=description)
    except Exception:
        if created:
            final.unlink(missing_ok=True)
        raise


def dataset_register_file(*, actor: Principal, team: Team, name: str, path: str, sha256: str,
                          data_categories: list[str] | None = None, description: str = "") -> Dataset:
    """Register a file already under the import root, after checking its bytes match ``sha256``."""
    actor.require("register_dataset", action="registry.dataset.registered")
    resolved = storage.resolve_import_path(path)
    actual, size = storage.sha256_of(resolved)
    if actual != sha256:
        raise ValidationFailed(f"The file's SHA-256 is {actual}, not {sha256}: the file changed or the digest "
                               "belongs to another file. Recompute it (sha256sum) and register again.",
                               code="digest_mismatch", details={"expected": sha256, "actual": actual})
    return dataset_ingest(actor=actor, team=team, name=name, path=resolved, sha256=sha256, size=size,
                          data_categories=data_categories, description=description)


# --- Options -------------------------------------------------------------------------------------

def _str_list(options: Mapping[str, Any], key: str, *, required: bool) -> list[str] | None:
    value = options.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise ValidationFailed(f"options.{key} must be a non-empty list of column names.", code="invalid_options")
    return list(dict.fromkeys(value))


def _str(options: Mapping[str, Any], key: str, *, required: bool) -> str | None:
    value = options.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise ValidationFailed(f"options.{key} is required: the name of a column.", code="invalid_options")
    return value


def _label_value(options: Mapping[str, Any]) -> Any:
    value = options.get("positive_label", 1)
    if isinstance(value, float) or not isinstance(value, (str, int, bool)):
        raise ValidationFailed("options.positive_label must be a string, an integer or a boolean.",
                               code="invalid_options")
    return value


def normalise_options(kind: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Check a kind's options and fill in defaults, so the stored options say exactly what ran."""
    if not isinstance(options, Mapping):
        raise ValidationFailed("options must be a JSON object.", code="invalid_options")
    allowed = {
        ReportKind.DRIFT: {"features", "categorical", "p_val", "correction"},
        ReportKind.BIAS: {"label", "prediction", "sensitive_features", "positive_label"},
        ReportKind.VALIDATION: {"task", "label", "prediction", "score", "latency", "positive_label"},
    }[kind]
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValidationFailed(f"options {unknown} are not used by {kind} reports; accepted: {sorted(allowed)}.",
                               code="invalid_options")
    if kind == ReportKind.DRIFT:
        p_val = options.get("p_val", 0.05)
        if isinstance(p_val, bool) or not isinstance(p_val, (int, float)) or not math.isfinite(p_val) \
                or not 0 < p_val < 1:
            raise ValidationFailed("options.p_val must be a number strictly between 0 and 1 (e.g. 0.05).",
                                   code="invalid_options")
        correction = options.get("correction", "bonferroni")
        if correction not in CORRECTIONS:
            raise ValidationFailed(f"options.correction must be one of {list(CORRECTIONS)}.", code="invalid_options")
        features = _str_list(options, "features", required=False)
        categorical = _str_list(options, "categorical", required=False)
        if features is not None and categorical is not None:
            outside = [c for c in categorical if c not in features]
            if outside:
                raise ValidationFailed(f"options.categorical lists {outside}, which are not in options.features; "
                                       "add them to features or drop them.", code="invalid_options")
        return {"features": features, "categorical": categorical, "p_val": float(p_val), "correction": correction}
    label = _str(options, "label", required=True)
    prediction = _str(options, "prediction", required=True)
    if kind == ReportKind.BIAS:
        sensitive = _str_list(options, "sensitive_features", required=True) or []
        overlap = [c for c in sensitive if c in (label, prediction)]
        if overlap:
            raise ValidationFailed(f"options.sensitive_features {overlap} cannot also be the label or prediction.",
                                   code="invalid_options")
        return {"label": label, "prediction": prediction, "sensitive_features": sensitive,
                "positive_label": _label_value(options)}
    task = options.get("task", "classification")
    if task not in TASKS:
        raise ValidationFailed(f"options.task must be one of {list(TASKS)}.", code="invalid_options")
    latency = options.get("latency")
    if latency is not None:
        from monitoring.detectors import validate_latency

        try:
            latency = validate_latency(latency)
        except DataError as exc:
            raise _as_invalid(exc) from exc
    return {"task": task, "label": label, "prediction": prediction,
            "score": _str(options, "score", required=False), "latency": latency,
            "positive_label": _label_value(options)}


def _schema(dataset: Dataset, role: str) -> dict[str, Any]:
    """The recorded schema of a dataset the service can read, or a 400 saying how to fix that."""
    schema = dataset.schema or {}
    if storage.path_from_uri(dataset.storage_uri) is None or not isinstance(schema.get("columns"), list) \
            or not isinstance(schema.get("rows"), int):
        raise ValidationFailed(
            f"datasets.{role}: dataset {dataset.name} v{dataset.version} (id {dataset.pk}) is registered at "
            f"{dataset.storage_uri!r} without a schema this service inferred, so workers cannot read it. "
            "Upload it with POST /api/v1/datasets/upload/ or register it with POST /api/v1/datasets/register-file/.",
            code="dataset_not_readable", details={"dataset": dataset.pk})
    return schema


def check_columns(kind: str, options: dict[str, Any], schemas: dict[str, dict[str, Any]],
                  labels: dict[str, str]) -> None:
    """Everything the recorded schemas can tell before any data is read; DataError on a problem.

    Uses the detectors' own checks, so a 400 here carries the code and wording a failed report
    would have had, only sooner.
    """
    if kind == ReportKind.DRIFT:
        ref, cur = schemas["reference"], schemas["current"]
        features = options["features"]
        if features is None:
            extra = [c["name"] for c in cur["columns"] if c["name"] not in {r["name"] for r in ref["columns"]}]
            if extra:
                raise DataError("extra_columns",
                                f"{labels['current']} has columns the reference lacks: {', '.join(map(repr, extra))}. "
                                "Export both with the same columns, or name the columns to compare in "
                                "options.features.", extra=extra)
            features = [c["name"] for c in ref["columns"] if c["type"] != "datetime"]
        require_columns(ref, features, file=labels["reference"])
        require_columns(cur, features, file=labels["current"])
        require_columns(features, options["categorical"] or [], file="options.features")
        check_not_all_missing(ref, features, file=labels["reference"])
        check_not_all_missing(cur, features, file=labels["current"])
        ref_types = {c["name"]: c["type"] for c in ref["columns"]}
        cur_types = {c["name"]: c["type"] for c in cur["columns"]}
        categorical = set(options["categorical"] or [])
        for name in features:
            if name not in categorical and ref_types[name] == "numeric" and cur_types[name] == "categorical":
                raise DataError("non_numeric",
                                f"{labels['current']}: column '{name}' is numeric in the reference but holds text in "
                                "the current data (a value such as 'n/a' or '1,5'). Fix or blank those cells, or "
                                "list the column in options.categorical if it is not a number.",
                                column=name, file=labels["current"])
        compared = [n for n in features if n not in categorical]
        check_same_schema(ref, cur, columns=compared)
        return
    schema = schemas["evaluation"]
    file = labels["evaluation"]
    required = [options["label"], options["prediction"]]
    if kind == ReportKind.BIAS:
        require_columns(schema, required + options["sensitive_features"], file=file)
        check_not_all_missing(schema, options["sensitive_features"], file=file)
    else:
        if options["score"]:
            required.append(options["score"])
        require_columns(schema, required, file=file)
    by_name = {c["name"]: c for c in schema["columns"]}
    check_not_all_missing(schema, required, file=file)
    gaps = [c for c in required if by_name[c]["missing"]]
    if gaps:
        raise DataError("missing_values",
                        f"{file}: column {', '.join(map(repr, gaps))} has empty cells "
                        f"({', '.join(str(by_name[c]['missing']) for c in gaps)} of {schema['rows']} rows); labels, "
                        "predictions and scores need a value in every row. Drop or fill those rows.",
                        file=file, columns=gaps)
    numeric_needed = required if kind == ReportKind.VALIDATION and options["task"] == "regression" else \
        ([options["score"]] if kind == ReportKind.VALIDATION and options["score"] else [])
    texty = [c for c in numeric_needed if by_name[c]["type"] not in ("numeric", "boolean")]
    if texty:
        raise DataError("non_numeric",
                        f"{file}: column {', '.join(map(repr, texty))} must hold numbers for this check but holds "
                        f"{by_name[texty[0]]['type']} values. Fix the export or choose another column.",
                        file=file, columns=texty)


# --- Reports -------------------------------------------------------------------------------------

def report_request(*, actor: Principal, version: ModelVersion, kind: str, datasets: Mapping[str, Any],
                   options: Mapping[str, Any] | None = None, enqueue: bool = True) -> Report:
    """Queue a report after checking everything knowable now; the worker is started on commit.

    ``datasets`` maps roles to dataset ids: ``reference`` and ``current`` for drift, ``evaluation``
    for bias and validation. Datasets must be visible to the actor and readable by the service;
    option and column problems are 400s naming what to fix. ``enqueue=False`` is for callers that
    compute in-process (the ``run_report`` command).
    """
    from registry.selectors import dataset_list

    actor.require("register_version", target=version_target(version), action=EVENTS["queued"])
    require_team_member(actor, version.model.team)
    if kind not in ReportKind.values:
        raise ValidationFailed(f"kind must be one of {ReportKind.values}.", code="invalid_kind")
    roles = DATASET_ROLES[kind]
    if not isinstance(datasets, Mapping) or set(datasets) != set(roles):
        raise ValidationFailed(f"A {kind} report needs datasets {{{', '.join(f'{r!r}: id' for r in roles)}}} "
                               f"and nothing else.", code="invalid_datasets", details={"required": list(roles)})
    normalised = normalise_options(kind, options or {})
    visible = dataset_list(principal=actor)
    chosen: dict[str, Dataset] = {}
    for role in roles:
        pk = datasets[role]
        if isinstance(pk, bool) or not isinstance(pk, int):
            raise ValidationFailed(f"datasets.{role} must be a dataset id (an integer).", code="invalid_datasets")
        found = visible.filter(pk=pk).first()
        if found is None:
            raise ValidationFailed(f"datasets.{role}: no dataset with id {pk} that you can see; upload it first "
                                   "with POST /api/v1/datasets/upload/.", code="unknown_dataset",
                                   details={"role": role, "id": pk})
        chosen[role] = found
    schemas = {role: _schema(ds, role) for role, ds in chosen.items()}
    labels = {role: f"{role} dataset {ds.name} v{ds.version}" for role, ds in chosen.items()}
    try:
        check_columns(kind, normalised, schemas, labels)
    except DataError as exc:
        raise _as_invalid(exc) from exc
    inputs_digest = report_inputs_digest(kind=kind, artifact_sha256=version.artifact_sha256,
                                         datasets={role: ds.sha256 for role, ds in chosen.items()}, options=normalised)
    snapshot = actor.snapshot()
    with transaction.atomic():
        report = Report.objects.create(version=version, kind=kind, options=normalised, inputs_digest=inputs_digest,
                                       requested_by=snapshot, **chosen)
        audit_append(actor=snapshot, action=EVENTS["queued"], target=report_target(report),
                     payload={"kind": kind, "model": version.model.name, "version": version.version,
                              "datasets": {r: {"id": d.pk, "sha256": d.sha256} for r, d in chosen.items()},
                              "options": normalised, "inputs_digest": report.inputs_digest})
        if enqueue:
            from monitoring.tasks import run_report_task

            pk = report.pk
            transaction.on_commit(lambda: run_report_task.delay(pk))
    return report


def _locked(report: Report) -> Report:
    return Report.objects.select_for_update().select_related("version__model").get(pk=report.pk)


def _refuse_final(report: Report) -> None:
    if report.is_final:
        raise Conflict(f"Report {report.pk} is already {report.status}; a final report never changes. "
                       "Request a new report instead.", code="report_final", details={"status": report.status})


def report_start(*, actor: Principal, report: Report) -> Report:
    """Mark a report running (again, when a redelivered task restarts it after a lost worker)."""
    with transaction.atomic():
        report = _locked(report)
        _refuse_final(report)
        restarted = report.status == ReportStatus.RUNNING
        report.status = ReportStatus.RUNNING
        report.started_at = timezone.now()
        report.attempts += 1
        report.library_versions = library_versions()
        report.save(update_fields=["status", "started_at", "attempts", "library_versions"])
        audit_append(actor=actor.snapshot(), action=EVENTS["started"], target=report_target(report),
                     payload={"kind": report.kind, "attempt": report.attempts, "restarted": restarted,
                              "inputs_digest": report.inputs_digest})
    return report


def report_finish(*, actor: Principal, report: Report, result: dict[str, Any]) -> Report:
    """Store a running report's result with its digest; the report is final from here on."""
    try:
        result_digest = _digest(result)  # refuses NaN/inf and anything that is not plain JSON
    except CanonicalError as exc:
        raise ValueError(f"detector result is not canonical JSON: {exc}") from exc
    with transaction.atomic():
        report = _locked(report)
        _refuse_final(report)
        if report.status != ReportStatus.RUNNING:
            raise Conflict(f"Report {report.pk} is {report.status}, not running; start it first.",
                           code="report_not_running")
        report.status = ReportStatus.SUCCEEDED
        report.result = result
        report.result_digest = result_digest
        report.finished_at = timezone.now()
        report.save(update_fields=["status", "result", "result_digest", "finished_at"])
        audit_append(actor=actor.snapshot(), action=EVENTS["finished"], target=report_target(report),
                     payload={"kind": report.kind, "status": report.status, "inputs_digest": report.inputs_digest,
                              "result_digest": result_digest, "attempts": report.attempts,
                              "library_versions": report.library_versions})
        transaction.on_commit(lambda: _wake_promotions(report.version_id))
    return report


def report_fail(*, actor: Principal, report: Report, code: str, message: str) -> Report:
    """Mark a queued or running report failed with a code (for programs) and a message (for people)."""
    with transaction.atomic():
        report = _locked(report)
        _refuse_final(report)
        report.status = ReportStatus.FAILED
        report.error_code = code[:64]
        report.error_message = message
        report.finished_at = timezone.now()
        report.save(update_fields=["status", "error_code", "error_message", "finished_at"])
        audit_append(actor=actor.snapshot(), action=EVENTS["failed"], target=report_target(report),
                     payload={"kind": report.kind, "status": report.status, "error_code": report.error_code,
                              "inputs_digest": report.inputs_digest, "attempts": report.attempts})
        transaction.on_commit(lambda: _wake_promotions(report.version_id))
    return report


def _wake_promotions(version_id: int) -> None:
    """Promotion requests waiting on this version's evidence are judged again (by a task)."""
    from governance.tasks import reevaluate_promotions

    reevaluate_promotions.delay(version_id)


def report_reap(*, actor: Principal = REAPER, older_than: timedelta) -> list[Report]:
    """Fail reports running for longer than ``older_than``: their worker died or gave up retrying.

    One transaction and one audit event per report, so a crash halfway leaves the rest for the
    next run. A report that finished meanwhile is skipped, not overwritten.
    """
    deadline = timezone.now() - older_than
    reaped = []
    ids = list(Report.objects.filter(status=ReportStatus.RUNNING, started_at__lt=deadline).values_list("pk", flat=True))
    minutes = older_than.total_seconds() / 60
    for pk in ids:
        with transaction.atomic():
            report = Report.objects.select_for_update().get(pk=pk)
            if report.status != ReportStatus.RUNNING or report.started_at is None or report.started_at >= deadline:
                continue
            reaped.append(report_fail(
                actor=actor, report=report, code="worker_lost",
                message=f"No worker finished this report within {minutes:g} minutes of starting it (attempt "
                        f"{report.attempts}); the worker probably stopped or ran out of memory. Request the report "
                        "again; if it keeps failing, use smaller datasets or ask an operator to check the workers."))
    return reaped


def _run_detector(report: Report) -> dict[str, Any]:
    """Call the pure detector for a report's kind on its stored files."""
    from monitoring import detectors

    paths: dict[str, Path] = {}
    for role, dataset in report.datasets().items():
        path = storage.path_from_uri(dataset.storage_uri)
        if path is None or not path.is_file():
            raise InputUnavailable(f"The {role} dataset {dataset.name} v{dataset.version} is no longer at "
                                   f"{dataset.storage_uri}; upload it again and request a new report.")
        paths[role] = path
    opts = report.options
    if report.kind == ReportKind.DRIFT:
        return detectors.compute_drift(paths["reference"], paths["current"], features=opts.get("features"),
                                       categorical=opts.get("categorical"), p_val=opts["p_val"],
                                       correction=opts["correction"])
    if report.kind == ReportKind.BIAS:
        return detectors.compute_bias(paths["evaluation"], label=opts["label"], prediction=opts["prediction"],
                                      sensitive_features=opts["sensitive_features"],
                                      positive_label=opts["positive_label"])
    return detectors.compute_validation(paths["evaluation"], label=opts["label"], prediction=opts["prediction"],
                                        score=opts.get("score"), task=opts["task"],
                                        positive_label=opts["positive_label"], latency=opts.get("latency"))


def report_compute(*, report_id: int, on_stage: Callable[[str], None] | None = None) -> Report | None:
    """Run a report from start to a final state; safe to call again for the same id.

    Returns None when the report does not exist (its request rolled back), the report unchanged
    when it is already final, else the final report. Only ``OperationalError`` escapes.
    """
    stage = on_stage or (lambda name: None)
    report = Report.objects.select_related("version__model", "reference", "current", "evaluation") \
        .filter(pk=report_id).first()
    if report is None:
        log.warning("report %s not found; its request was probably rolled back", report_id)
        return None
    if report.is_final:
        return report
    try:
        stage("start")
        report = report_start(actor=WORKER, report=report)
    except Conflict:
        return Report.objects.get(pk=report_id)  # finished by another delivery meanwhile
    try:
        stage("compute")
        result = _run_detector(report)
        _digest(result)
    except OperationalError:
        raise
    except (DataError, InputUnavailable) as exc:
        stage("fail")
        return _final(lambda: report_fail(actor=WORKER, report=report, code=exc.code, message=exc.message), report_id)
    except Exception:
        log.exception("report %s (%s) failed unexpectedly", report_id, report.kind)
        stage("fail")
        return _final(lambda: report_fail(
            actor=WORKER, report=report, code="internal_error",
            message=f"The {report.kind} computation failed on our side (report {report_id}); it was logged. "
                    "Request the report again later, or quote the report id to an operator."), report_id)
    stage("finish")
    return _final(lambda: report_finish(actor=WORKER, report=report, result=result), report_id)


def _final(write: Callable[[], Report], report_id: int) -> Report:
    """Apply the final write; if another delivery already made the report final, keep its outcome."""
    try:
        return write()
    except Conflict:
        return Report.objects.get(pk=report_id)
