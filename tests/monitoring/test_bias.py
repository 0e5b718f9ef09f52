"""Bias metrics from confusion counts: equal to fairlearn, additive over chunks, honest about 0/0."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from monitoring.detectors.bias import GroupCounts, compute_bias, compute_bias_from_counts, counts_from_arrays
from monitoring.detectors.errors import DataError
from tests.monitoring import write_bytes, write_csv, write_parquet

RATES = ("selection_rate", "accuracy", "true_positive_rate", "false_positive_rate")


def _random_data(seed: int, n: int = 6000) -> pd.DataFrame:
    """Imbalanced groups over three sensitive features; labels correlate with group."""
    rng = np.random.default_rng(seed)
    sex = rng.choice(["F", "M"], n, p=[0.35, 0.65])
    race = rng.choice(["a", "b", "c", "d"], n, p=[0.6, 0.25, 0.1, 0.05])
    age = rng.choice([1, 2, 3], n, p=[0.2, 0.5, 0.3])
    base = 0.25 + 0.1 * (sex == "F") + 0.05 * age
    y_true = (rng.random(n) < base).astype(int)
    flip = rng.random(n) < np.where(race == "a", 0.1, 0.3)
    y_pred = np.where(flip, 1 - y_true, y_true)
    return pd.DataFrame({"y": y_true, "p": y_pred, "sex": sex, "race": race, "age": age})


def _fairlearn(frame: pd.DataFrame, features: list[str]) -> tuple[Any, dict[str, float]]:
    from fairlearn.metrics import (
        MetricFrame,
        demographic_parity_difference,
        demographic_parity_ratio,
        equalized_odds_difference,
        equalized_odds_ratio,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )
    from sklearn.metrics import accuracy_score

    y, p, sf = frame["y"].to_numpy(), frame["p"].to_numpy(), frame[features]
    metric_frame = MetricFrame(
        metrics={
            "selection_rate": selection_rate,
            "accuracy": accuracy_score,
            "true_positive_rate": true_positive_rate,
            "false_positive_rate": false_positive_rate,
        },
        y_true=y,
        y_pred=p,
        sensitive_features=sf,
    )
    aggregates = {
        "demographic_parity_difference": demographic_parity_difference(y, p, sensitive_features=sf),
        "demographic_parity_ratio": demographic_parity_ratio(y, p, sensitive_features=sf),
        "equalized_odds_difference": equalized_odds_difference(y, p, sensitive_features=sf),
        "equalized_odds_ratio": equalized_odds_ratio(y, p, sensitive_features=sf),
    }
    return metric_frame, aggregates


@pytest.mark.parametrize("features", [["race"], ["sex", "race"], ["sex", "race", "age"]])
@pytest.mark.parametrize("seed", range(4))
def test_equals_fairlearn(seed: int, features: list[str]) -> None:
    frame = _random_data(seed)
    counts = counts_from_arrays(frame["y"], frame["p"], {f: frame[f].to_numpy() for f in features})
    report = compute_bias_from_counts(counts)
    metric_frame, aggregates = _fairlearn(frame, features)
    assert not report["undefined"], "test data must give every group positives and negatives"

    by_group = metric_frame.by_group.dropna(how="all")  # fairlearn lists empty intersections as NaN rows
    assert report["n_groups"] == len(by_group)
    for group in report["groups"]:
        key = tuple(group["group"][f] for f in features)
        expected = by_group.loc[key if len(key) > 1 else key[0]]
        for metric in RATES:
            assert group[metric] == pytest.approx(expected[metric], abs=1e-9), (key, metric)
    for metric in RATES:
        assert report["overall"][metric] == pytest.approx(metric_frame.overall[metric], abs=1e-9)
    for name, value in aggregates.items():
        assert report[name] == pytest.approx(value, abs=1e-9), name


@pytest.mark.parametrize("chunk_rows", [1, 7, 100, 999, 10**6])
def test_chunked_equals_unchunked_exactly(tmp_path: Path, chunk_rows: int) -> None:
    frame = _random_data(11, n=1500)
    path = write_csv(tmp_path, "b.csv", frame)
    whole = compute_bias(path, label="y", prediction="p", sensitive_features=["sex", "race"], chunk_rows=10**7)
    chunked = compute_bias(path, label="y", prediction="p", sensitive_features=["sex", "race"], chunk_rows=chunk_rows)
    assert chunked == whole


def test_counts_add_up_across_partitions() -> None:
    frame = _random_data(5, n=3000)
    sens = ["sex", "age"]
    whole = counts_from_arrays(frame["y"], frame["p"], {f: frame[f] for f in sens})
    shuffled = frame.sample(frac=1.0, random_state=3)
    parts = [
        counts_from_arrays(part["y"], part["p"], {f: part[f] for f in sens})
        for part in (shuffled.iloc[rows] for rows in np.array_split(np.arange(len(frame)), 7))
    ]
    merged = GroupCounts.merge(parts)
    assert merged.counts.keys() == whole.counts.keys()
    for key, vec in whole.counts.items():
        assert merged.counts[key].tolist() == vec.tolist()
    assert compute_bias_from_counts(merged) == compute_bias_from_counts(whole)
    with pytest.raises(ValueError):
        merged.add(GroupCounts(("other",)))


def test_file_result_equals_array_result(tmp_path: Path) -> None:
    frame = _random_data(2, n=2000).astype({"age": str})  # CSV groups are read as text
    path = write_csv(tmp_path, "b.csv", frame)
    from_file = compute_bias(path, label="y", prediction="p", sensitive_features=["race", "age"], chunk_rows=300)
    from_arrays = compute_bias_from_counts(
        counts_from_arrays(frame["y"], frame["p"], {"race": frame["race"], "age": frame["age"]})
    )
    assert from_file == from_arrays
    assert json.loads(json.dumps(from_file, allow_nan=False)) == from_file


def test_group_without_positives_has_undefined_tpr() -> None:
    y = np.array([1, 0, 1, 0, 0, 0, 0, 1, 1, 0])
    p = np.array([1, 0, 0, 1, 0, 1, 0, 1, 0, 0])
    g = np.array(["a", "a", "a", "a", "b", "b", "b", "c", "c", "c"])  # group b: no actual positives
    report = compute_bias_from_counts(counts_from_arrays(y, p, {"g": g}))
    b = next(x for x in report["groups"] if x["group"] == {"g": "b"})
    assert b["true_positive_rate"] is None
    assert "no actual positives" in b["undefined"]["true_positive_rate"]
    assert b["false_positive_rate"] == pytest.approx(1 / 3)
    assert {"group": "g='b'", "metric": "true_positive_rate", "reason": b["undefined"]["true_positive_rate"]} in report["undefined"]
    tpr = report["components"]["true_positive_rate"]
    assert tpr["excluded_groups"] == ["g='b'"] and tpr["groups_used"] == 2
    # TPR: a = 1/2, c = 1/2 -> difference 0; FPR: a = 1/2, b = 1/3, c = 0 -> difference 1/2
    assert tpr["difference"] == 0.0 and tpr["ratio"] == 1.0
    assert report["equalized_odds_difference"] == pytest.approx(0.5)
    assert report["equalized_odds_ratio"] == 0.0
    assert any("excluded" in n and "g='b'" in n for n in report["notes"])

    # fairlearn reports 0.0 here instead, which would make the TPR difference 0.5:
    from fairlearn.metrics import MetricFrame, true_positive_rate

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = MetricFrame(metrics=true_positive_rate, y_true=y, y_pred=p, sensitive_features=g)
    assert theirs.by_group["b"] == 0.0 and theirs.difference() == 0.5


def test_no_positive_predictions_anywhere_gives_undefined_ratio() -> None:
    y = np.array([1, 0, 1, 0])
    p = np.zeros(4, dtype=int)
    report = compute_bias_from_counts(counts_from_arrays(y, p, {"g": ["a", "a", "b", "b"]}))
    assert report["demographic_parity_difference"] == 0.0
    assert report["demographic_parity_ratio"] is None
    assert report["equalized_odds_ratio"] is None
    assert "0/0" in report["components"]["selection_rate"]["reason"]


def test_string_labels_with_positive_label(tmp_path: Path) -> None:
    frame = pd.DataFrame({"y": ["approve", "deny"] * 20, "p": ["approve"] * 40, "g": ["x", "y"] * 20})
    report = compute_bias(write_csv(tmp_path, "s.csv", frame), label="y", prediction="p",
                          sensitive_features=["g"], positive_label="approve")
    assert report["positive_label"] == "approve"
    assert report["overall"]["selection_rate"] == 1.0 and report["overall"]["true_positive_rate"] == 1.0


def test_all_negative_predictions_are_accepted_with_default_label() -> None:
    report = compute_bias_from_counts(counts_from_arrays([0, 1, 0, 1], [0, 0, 0, 0], {"g": [1, 1, 2, 2]}))
    assert report["overall"]["selection_rate"] == 0.0


def test_missing_sensitive_value_forms_its_own_group(tmp_path: Path) -> None:
    frame = pd.DataFrame({"y": [1, 0, 1, 0, 1, 0], "p": [1, 0, 0, 1, 1, 1], "g": ["a", "a", None, None, "b", "b"]})
    report = compute_bias(write_csv(tmp_path, "m.csv", frame), label="y", prediction="p", sensitive_features=["g"])
    assert [grp["group"]["g"] for grp in report["groups"]] == ["a", "b", None]
    assert any("missing sensitive-feature value" in n for n in report["notes"])


# -------------------------------------------------------------------- bad data


def test_non_binary_labels_name_the_value_and_row(tmp_path: Path) -> None:
    frame = pd.DataFrame({"y": [0, 1] * 10 + [2], "p": [0, 1] * 10 + [1], "g": ["a"] * 21})
    with pytest.raises(DataError) as exc:
        compute_bias(write_csv(tmp_path, "n.csv", frame), label="y", prediction="p", sensitive_features=["g"], chunk_rows=8)
    err = exc.value
    assert err.code == "labels_not_binary"
    assert err.details["column"] == "y" and "data row 20" in err.message


def test_scores_instead_of_predictions(tmp_path: Path) -> None:
    frame = pd.DataFrame({"y": [0, 1, 1], "p": [0.2, 0.9, 0.6], "g": ["a", "b", "a"]})
    with pytest.raises(DataError) as exc:
        compute_bias(write_csv(tmp_path, "s.csv", frame), label="y", prediction="p", sensitive_features=["g"])
    assert exc.value.code == "labels_not_binary" and exc.value.details["column"] == "p"
    assert "threshold scores" in exc.value.message


@pytest.mark.parametrize(
    "labels",
    [["yes", "no", "yes"], ["no", "no", "no"]],  # two values without the positive label; one ambiguous value
)
def test_labels_without_the_positive_label(labels: list[str]) -> None:
    with pytest.raises(DataError) as exc:
        counts_from_arrays(labels, labels, {"g": ["a", "a", "b"]})
    assert exc.value.code == "labels_not_binary" and "positive_label" in exc.value.message


def test_missing_labels(tmp_path: Path) -> None:
    frame = pd.DataFrame({"y": [0, 1, None, 1], "p": [0, 1, 1, 1], "g": ["a"] * 4})
    with pytest.raises(DataError) as exc:
        compute_bias(write_csv(tmp_path, "m.csv", frame), label="y", prediction="p", sensitive_features=["g"])
    assert exc.value.code == "missing_values" and exc.value.details == {"file": "'m.csv'", "column": "y", "row": 2}


def test_all_missing_sensitive_feature(tmp_path: Path) -> None:
    frame = pd.DataFrame({"y": [0, 1], "p": [0, 1], "g": [None, None]})
    with pytest.raises(DataError) as exc:
        compute_bias(write_csv(tmp_path, "m.csv", frame), label="y", prediction="p", sensitive_features=["g"])
    assert exc.value.code == "all_missing"


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"", "empty_file"),
        (b"y,p,g\n", "header_only"),
        ("y,p,g\n1,1,Fran\u00e7ais\n".encode("latin-1"), "bad_encoding"),
        (b"y,p\n1,1\n", "missing_columns"),
    ],
)
def test_unreadable_files(tmp_path: Path, content: bytes, code: str) -> None:
    with pytest.raises(DataError) as exc:
        compute_bias(write_bytes(tmp_path, "x.csv", content), label="y", prediction="p", sensitive_features=["g"])
    assert exc.value.code == code


def test_mismatched_array_lengths() -> None:
    with pytest.raises(DataError) as exc:
        counts_from_arrays([0, 1, 1], [0, 1], {"g": ["a", "b", "c"]})
    assert exc.value.code == "length_mismatch"
    with pytest.raises(DataError) as exc:
        counts_from_arrays([0, 1], [0, 1], {"g": ["a"]})
    assert exc.value.code == "length_mismatch"


def test_parquet_matches_csv(tmp_path: Path) -> None:
    frame = _random_data(4, n=2000).astype({"age": str})
    kwargs: dict[str, Any] = {"label": "y", "prediction": "p", "sensitive_features": ["sex", "age"], "chunk_rows": 333}
    from_parquet = compute_bias(write_parquet(tmp_path, "b.parquet", frame, row_group_size=500), **kwargs)
    assert from_parquet == compute_bias(write_csv(tmp_path, "b.csv", frame), **kwargs)
