"""Validation reports: scikit-learn's numbers, explicit undefined metrics, and bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from monitoring.detectors.errors import DataError
from monitoring.detectors.validation import compute_validation, compute_validation_arrays, validate_latency
from tests.monitoring import write_bytes, write_csv, write_parquet


def _classified(seed: int = 0, n: int = 500) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    score = np.clip(0.35 * y + rng.random(n) * 0.65, 0, 1)
    return pd.DataFrame({"label": y, "pred": (score > 0.5).astype(int), "proba": score})


def _roundtrip(report: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(report, allow_nan=False))


def test_binary_classification_equals_sklearn(tmp_path: Path) -> None:
    frame = _classified()
    report = compute_validation(
        write_csv(tmp_path, "v.csv", frame), label="label", prediction="pred", score="proba",
        latency={"p50_ms": 4, "p95_ms": 12.5, "p99_ms": 30},
    )
    y, p, s = frame["label"], frame["pred"], frame["proba"]
    assert report["task"] == "classification" and report["n_rows"] == 500
    assert report["metrics"] == pytest.approx(
        {
            "accuracy": skm.accuracy_score(y, p),
            "precision": skm.precision_score(y, p),
            "recall": skm.recall_score(y, p),
            "f1": skm.f1_score(y, p),
            "roc_auc": skm.roc_auc_score(y, s),
            "log_loss": skm.log_loss(y, s),
        },
        abs=1e-12,
    )
    assert report["confusion_matrix"] == {
        "labels": [0, 1],
        "matrix": skm.confusion_matrix(y, p, labels=[0, 1]).tolist(),
        "rows": "actual",
        "columns": "predicted",
    }
    assert report["latency"] == {"p50_ms": 4.0, "p95_ms": 12.5, "p99_ms": 30.0}
    assert _roundtrip(report) == report


def test_score_metrics_only_with_scores(tmp_path: Path) -> None:
    report = compute_validation(write_csv(tmp_path, "v.csv", _classified()), label="label", prediction="pred")
    assert set(report["metrics"]) == {"accuracy", "precision", "recall", "f1"}
    assert report["latency"] is None
    assert any("roc_auc" in n for n in report["notes"])


def test_string_labels_with_positive_label() -> None:
    y = np.array(["fraud", "ok", "ok", "fraud", "ok"])
    p = np.array(["fraud", "ok", "fraud", "ok", "ok"])
    report = compute_validation_arrays(y, p, positive_label="fraud")
    assert report["confusion_matrix"]["labels"] == ["ok", "fraud"]
    assert report["confusion_matrix"]["matrix"] == [[2, 1], [1, 1]]
    assert report["metrics"]["precision"] == skm.precision_score(y, p, pos_label="fraud")


def test_multiclass_with_macro_average() -> None:
    rng = np.random.default_rng(3)
    y, p = rng.integers(0, 3, 90), rng.integers(0, 3, 90)
    report = compute_validation_arrays(y, p, average="macro")
    assert report["metrics"]["f1"] == pytest.approx(skm.f1_score(y, p, average="macro"), abs=1e-12)
    assert report["confusion_matrix"]["labels"] == [0, 1, 2]


def test_undefined_metrics_are_null_with_reasons() -> None:
    y = np.zeros(10, dtype=int)
    report = compute_validation_arrays(y, y, y_score=np.linspace(0, 1, 10))
    m, why = report["metrics"], report["undefined"]
    assert m["accuracy"] == 1.0
    assert m["precision"] is None and m["recall"] is None and m["f1"] is None and m["roc_auc"] is None
    assert "no actual positives" in why["recall"] and "only one class" in why["roc_auc"]
    assert m["log_loss"] is not None


def test_scores_that_are_not_probabilities() -> None:
    frame = _classified()
    logits = (frame["proba"] - 0.5) * 8
    report = compute_validation_arrays(frame["label"], frame["pred"], y_score=logits)
    assert report["metrics"]["roc_auc"] == pytest.approx(skm.roc_auc_score(frame["label"], logits))
    assert report["metrics"]["log_loss"] is None and "outside [0, 1]" in report["undefined"]["log_loss"]


def test_regression_equals_sklearn(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    y = rng.normal(10, 2, 300)
    p = y + rng.normal(0, 1, 300)
    report = compute_validation(write_csv(tmp_path, "r.csv", {"y": y, "yhat": p}), label="y", prediction="yhat", task="regression")
    assert report["metrics"] == pytest.approx(
        {"rmse": skm.root_mean_squared_error(y, p), "mae": skm.mean_absolute_error(y, p), "r2": skm.r2_score(y, p)},
        abs=1e-9,
    )


def test_constant_regression_labels_make_r2_undefined() -> None:
    report = compute_validation_arrays(np.full(5, 3.0), np.array([3.0, 3.1, 2.9, 3.0, 3.0]), task="regression")
    assert report["metrics"]["r2"] is None and "variance" in report["undefined"]["r2"]


# -------------------------------------------------------------------- bad data


def test_non_binary_labels_for_binary_metrics() -> None:
    with pytest.raises(DataError) as exc:
        compute_validation_arrays([0, 1, 2, 1], [0, 1, 1, 1])
    assert exc.value.code == "labels_not_binary" and "more than two" in exc.value.message


def test_predictions_with_a_different_negative_value() -> None:
    with pytest.raises(DataError) as exc:
        compute_validation_arrays([0, 1, 0, 1], [-1, 1, -1, 1])
    assert exc.value.code == "labels_not_binary"


def test_nan_in_labels(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "n.csv", {"label": [1, 0, None, 1], "pred": [1, 0, 0, 1]})
    with pytest.raises(DataError) as exc:
        compute_validation(path, label="label", prediction="pred")
    assert exc.value.code == "missing_values" and exc.value.details["row"] == 2
    with pytest.raises(DataError) as exc:
        compute_validation(path, label="label", prediction="pred", task="regression")
    assert exc.value.code == "missing_values"


def test_mismatched_lengths() -> None:
    with pytest.raises(DataError) as exc:
        compute_validation_arrays([0, 1, 1], [0, 1])
    assert exc.value.code == "length_mismatch"
    with pytest.raises(DataError) as exc:
        compute_validation_arrays([0, 1], [0, 1], y_score=[0.5])
    assert exc.value.code == "length_mismatch"


def test_missing_columns(tmp_path: Path) -> None:
    with pytest.raises(DataError) as exc:
        compute_validation(write_csv(tmp_path, "m.csv", _classified()), label="label", prediction="prediction")
    assert exc.value.code == "missing_columns" and "did you mean 'pred'" in exc.value.message


def test_non_numeric_regression_values(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "t.csv", {"y": ["1.5", "2.0", "n/a!"], "yhat": [1.0, 2.0, 3.0]})
    with pytest.raises(DataError) as exc:
        compute_validation(path, label="y", prediction="yhat", task="regression")
    assert exc.value.code == "non_numeric" and exc.value.details["value"] == "n/a!"


@pytest.mark.parametrize(
    ("content", "code"),
    [(b"", "empty_file"), (b"label,pred\n", "header_only"), ("label,pred,who\n1,1,Ren\u00e9e\n".encode("latin-1"), "bad_encoding")],
)
def test_unreadable_files(tmp_path: Path, content: bytes, code: str) -> None:
    with pytest.raises(DataError) as exc:
        compute_validation(write_bytes(tmp_path, "x.csv", content), label="label", prediction="pred")
    assert exc.value.code == code


@pytest.mark.parametrize(
    "latency",
    [{"p50_ms": -1}, {"p95_ms": "12ms"}, {"p99_ms": float("nan")}, {"p50_ms": True}, {"p90_ms": 3},
     {"p50_ms": 10, "p95_ms": 5}],
)
def test_invalid_latency(latency: dict[str, Any]) -> None:
    with pytest.raises(DataError) as exc:
        validate_latency(latency)
    assert exc.value.code == "invalid_latency"


def test_latency_subset_is_copied_as_floats() -> None:
    assert validate_latency({"p95_ms": np.int64(7)}) == {"p95_ms": 7.0}
    assert validate_latency(None) is None


def test_parquet_input(tmp_path: Path) -> None:
    frame = _classified(9)
    from_file = compute_validation(write_parquet(tmp_path, "v.parquet", frame), label="label", prediction="pred", score="proba")
    assert from_file == compute_validation_arrays(
        frame["label"], frame["pred"], y_score=frame["proba"], names=("label", "pred", "proba"), file="'v.parquet'"
    )
