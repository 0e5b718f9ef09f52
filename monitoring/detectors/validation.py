"""Model validation metrics (scikit-learn) for the validation gate.

A validation report records how well a model version did on a held-out
dataset, so that a promotion can be gated on, and an auditor can later read,
accuracy-type figures next to the serving latency measured by the pipeline.
The maths is scikit-learn's; this module adds what a compliance record
needs around it: strict input checks with actionable errors, and explicit
``None`` plus a reason where a metric is undefined (scikit-learn would warn
and substitute 0.0, or raise), so a report never claims a number it could
not compute.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any, Final, Literal, TypeAlias

import numpy as np
import pandas as pd

from .bias import _BinaryLabels, _py
from .data import DEFAULT_MAX_BYTES, PathLike, _name, infer_schema, load_columns
from .errors import DataError

Task: TypeAlias = Literal["classification", "regression"]
Average: TypeAlias = Literal["binary", "macro", "micro", "weighted"]
#: Latency keys the pipeline may pass; milliseconds at the given percentile.
LATENCY_KEYS: Final[tuple[str, ...]] = ("p50_ms", "p95_ms", "p99_ms")


def _finite_or_none(value: Any) -> float | None:
    f = float(value)
    return f if math.isfinite(f) else None


def validate_latency(latency: Mapping[str, Any] | None) -> dict[str, float] | None:
    """Check pipeline-measured latency percentiles and return them as floats.

    The figures are not computed here, only carried into the signed report,
    so the one thing we can guarantee is that they are plausible: known keys,
    finite non-negative numbers, and p50 <= p95 <= p99 (a violation means the
    pipeline mislabelled them).
    """
    if latency is None:
        return None
    unknown = [k for k in latency if k not in LATENCY_KEYS]
    if unknown:
        raise DataError(
            "invalid_latency",
            f"unknown latency key(s) {unknown}; use {', '.join(LATENCY_KEYS)} (milliseconds).",
            keys=unknown,
        )
    out: dict[str, float] = {}
    for key in LATENCY_KEYS:
        if key not in latency:
            continue
        value = latency[key]
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise DataError(
                "invalid_latency",
                f"latency {key} must be a number of milliseconds, got {value!r}.",
                key=key,
            )
        f = float(value)
        if not math.isfinite(f) or f < 0:
            raise DataError(
                "invalid_latency",
                f"latency {key} must be a finite non-negative number of milliseconds, got {value!r}.",
                key=key,
            )
        out[key] = f
    ordered = [out[k] for k in LATENCY_KEYS if k in out]
    if any(a > b for a, b in zip(ordered, ordered[1:])):
        raise DataError(
            "invalid_latency",
            f"latency percentiles must not decrease (p50 <= p95 <= p99), got {out}.",
        )
    return out


def _check_no_missing(values: np.ndarray, column: str, file: str) -> None:
    missing = pd.isna(values)
    if missing.any():
        first = int(np.flatnonzero(missing)[0])
        raise DataError(
            "missing_values",
            f"{file}: column '{column}' has {int(missing.sum())} missing value(s), the first at data "
            f"row {first}. Every row needs a value here: drop or fill those rows.",
            file=file,
            column=column,
            row=first,
        )


def _classification(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    y_score: np.ndarray | None,
    *,
    positive_label: Any,
    average: str,
    names: tuple[str, str, str | None],
    file: str,
) -> dict[str, Any]:
    """Accuracy-family metrics; ROC AUC and log loss only when scores are given."""
    from sklearn import metrics as skm

    label_col, pred_col, score_col = names
    undefined: dict[str, str] = {}
    notes: list[str] = []
    if average == "binary":
        check = _BinaryLabels(positive_label, file)
        t01 = check(pd.Series(y_true), label_col)
        p01 = check(pd.Series(y_pred), pred_col)
        check.finish(label_col)
        negative = _py(check.negative_label)
        cm_labels: list[Any] = [negative, _py(positive_label)]
        yt, yp, kw = t01, p01, {"pos_label": 1, "average": "binary"}
        cm = skm.confusion_matrix(yt, yp, labels=[0, 1])
        tn, fp, fn, tp = (int(x) for x in cm.ravel())
        if tp + fp == 0:
            undefined["precision"] = "no positive predictions: precision = TP / (TP + FP) is 0/0"
        if tp + fn == 0:
            undefined["recall"] = "no actual positives: recall = TP / (TP + FN) is 0/0"
        if tp + fp + fn == 0:
            undefined["f1"] = "no positives predicted or actual: F1 = 2TP / (2TP + FP + FN) is 0/0"
    else:
        _check_no_missing(y_true, label_col, file)
        _check_no_missing(y_pred, pred_col, file)
        from sklearn.utils.multiclass import unique_labels

        try:
            label_values = unique_labels(y_true, y_pred)
        except (ValueError, TypeError) as exc:
            raise DataError(
                "schema_mismatch",
                f"{file}: '{label_col}' and '{pred_col}' hold labels of different kinds ({exc}). "
                "Use the same label values (e.g. both integers) in both columns.",
                file=file,
            ) from exc
        cm_labels = [_py(v) for v in label_values]
        yt, yp, kw = y_true, y_pred, {"average": average}
        cm = skm.confusion_matrix(yt, yp, labels=label_values)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zero-division cases are reported as undefined instead
        values = {
            "accuracy": skm.accuracy_score(yt, yp),
            "precision": skm.precision_score(yt, yp, zero_division=np.nan, **kw),
            "recall": skm.recall_score(yt, yp, zero_division=np.nan, **kw),
            "f1": skm.f1_score(yt, yp, zero_division=np.nan, **kw),
        }
    metrics: dict[str, float | None] = {}
    for key, value in values.items():
        metrics[key] = _finite_or_none(value)
        if metrics[key] is None and key not in undefined:
            undefined[key] = "a class has a zero denominator (no predictions or no actual members)"

    if y_score is not None:
        if average != "binary":
            raise DataError(
                "labels_not_binary",
                f"{file}: ROC AUC and log loss from the single score column '{score_col}' need binary "
                "labels; drop the score column or use binary labels.",
                file=file,
            )
        _check_no_missing(y_score, score_col or "score", file)
        if t01.min() == t01.max():
            undefined["roc_auc"] = "only one class present in the labels: ROC AUC needs both"
            metrics["roc_auc"] = None
        else:
            metrics["roc_auc"] = _finite_or_none(skm.roc_auc_score(t01, y_score))
        if float(np.min(y_score)) < 0.0 or float(np.max(y_score)) > 1.0:
            metrics["log_loss"] = None
            undefined["log_loss"] = (
                f"scores in '{score_col}' lie outside [0, 1], so they are not probabilities; "
                "log loss needs the predicted probability of the positive class"
            )
        else:
            metrics["log_loss"] = _finite_or_none(skm.log_loss(t01, y_score, labels=[0, 1]))
    else:
        notes.append("no score column given: roc_auc and log_loss not computed")
    return {
        "task": "classification",
        "average": average,
        "positive_label": _py(positive_label) if average == "binary" else None,
        "metrics": metrics,
        "confusion_matrix": {
            "labels": cm_labels,
            "matrix": [[int(x) for x in row] for row in cm],
            "rows": "actual",
            "columns": "predicted",
        },
        "undefined": undefined,
        "notes": notes,
    }


def _regression(y_true: np.ndarray, y_pred: np.ndarray, *, names: tuple[str, str], file: str) -> dict[str, Any]:
    """RMSE, MAE and R^2; R^2 is undefined (None) when the labels are constant."""
    from sklearn import metrics as skm

    _check_no_missing(y_true, names[0], file)
    _check_no_missing(y_pred, names[1], file)
    undefined: dict[str, str] = {}
    metrics = {
        "rmse": _finite_or_none(skm.root_mean_squared_error(y_true, y_pred)),
        "mae": _finite_or_none(skm.mean_absolute_error(y_true, y_pred)),
    }
    if len(y_true) < 2 or float(np.min(y_true)) == float(np.max(y_true)):
        metrics["r2"] = None
        undefined["r2"] = (
            "labels are constant (or fewer than two rows): R^2 divides by their variance, which is 0 "
            "(scikit-learn would report 0.0 or 1.0 by convention)"
        )
    else:
        metrics["r2"] = _finite_or_none(skm.r2_score(y_true, y_pred))
    return {"task": "regression", "metrics": metrics, "undefined": undefined, "notes": []}


def compute_validation_arrays(
    y_true: Any,
    y_pred: Any,
    *,
    y_score: Any | None = None,
    task: Task = "classification",
    positive_label: Any = 1,
    average: Average = "binary",
    latency: Mapping[str, Any] | None = None,
    names: tuple[str, str, str | None] = ("y_true", "y_pred", "y_score"),
    file: str = "input",
) -> dict[str, Any]:
    """Validation report for in-memory arrays (see ``compute_validation``)."""
    if task not in ("classification", "regression"):
        raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")
    if average not in ("binary", "macro", "micro", "weighted"):
        raise ValueError(f"average must be binary, macro, micro or weighted, got {average!r}")
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    arrays = {names[0]: y_true, names[1]: y_pred}
    if y_score is not None:
        y_score = np.asarray(y_score, dtype=np.float64)
        arrays[names[2] or "y_score"] = y_score
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise DataError(
            "length_mismatch",
            f"{file}: arrays have different lengths {lengths}; each must have one value per row.",
            lengths=lengths,
        )
    if len(y_true) == 0:
        raise DataError("header_only", f"{file}: no rows to validate on.", file=file)
    checked_latency = validate_latency(latency)
    if task == "regression" and y_score is not None:
        raise ValueError("a score column is only used for classification (ROC AUC, log loss)")
    if task == "classification":
        report = _classification(
            y_true, y_pred, y_score, positive_label=positive_label, average=average, names=names, file=file
        )
    else:
        for col, arr in ((names[0], y_true), (names[1], y_pred)):
            if not np.issubdtype(arr.dtype, np.number):
                raise DataError(
                    "non_numeric",
                    f"{file}: regression column '{col}' is not numeric (dtype {arr.dtype}).",
                    column=col,
                )
        report = _regression(y_true.astype(np.float64), y_pred.astype(np.float64), names=names[:2], file=file)
    report["n_rows"] = int(len(y_true))
    report["latency"] = checked_latency
    return report


def compute_validation(
    path: PathLike,
    *,
    label: str,
    prediction: str,
    score: str | None = None,
    task: Task = "classification",
    positive_label: Any = 1,
    average: Average = "binary",
    latency: Mapping[str, Any] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> dict[str, Any]:
    """Validation report for the ``label`` / ``prediction`` (/ ``score``) columns of a file.

    Classification: accuracy, precision, recall, f1 (``average="binary"``
    requires exactly two label values, one being ``positive_label``; other
    averages allow multiclass), the confusion matrix with its labels, and
    ``roc_auc`` / ``log_loss`` when ``score`` names a column holding the
    positive-class probability. Regression: rmse, mae, r2. ``latency``
    (p50_ms/p95_ms/p99_ms from the pipeline) is validated and copied through.
    """
    file = f"'{_name(path)}'"
    schema = infer_schema(path)
    columns = [label, prediction] + ([score] if score else [])
    dtypes: dict[str, Any] = {}
    if task == "regression":
        dtypes = {label: "float", prediction: "float"}
    if score:
        dtypes[score] = "float"
    data = load_columns(path, list(dict.fromkeys(columns)), dtypes=dtypes, schema=schema, max_bytes=max_bytes)
    return compute_validation_arrays(
        data[label],
        data[prediction],
        y_score=data[score] if score else None,
        task=task,
        positive_label=positive_label,
        average=average,
        latency=latency,
        names=(label, prediction, score),
        file=file,
    )
