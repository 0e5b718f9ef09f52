"""Drift reports: alibi-detect's verdicts, its multiple-testing correction, and bad data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from monitoring.detectors.drift import compute_drift, compute_drift_arrays
from monitoring.detectors.errors import DataError
from tests.monitoring import write_bytes, write_csv, write_parquet

REPO = Path(__file__).resolve().parents[2]


def _frames(seed: int = 0, n: int = 400, shift: float = 0.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ref = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.exponential(size=n)})
    cur = pd.DataFrame({"a": rng.normal(shift, size=n), "b": rng.normal(size=n), "c": rng.exponential(size=n)})
    return ref, cur


def _json_roundtrip(report: dict[str, Any]) -> dict[str, Any]:
    """Reports are stored as canonical JSON: NaN/inf or NumPy types must never reach them."""
    return json.loads(json.dumps(report, allow_nan=False))


def _bh_rejections(p: np.ndarray, q: float) -> set[int]:
    """Benjamini-Hochberg written out independently of alibi, for the FDR checks."""
    order = np.argsort(p, kind="stable")
    n = len(p)
    below = [k for k in range(1, n + 1) if p[order[k - 1]] < q * k / n]
    return {int(i) for i in order[: max(below)]} if below else set()


def test_numeric_drift_report_shape_and_verdict(tmp_path: Path) -> None:
    ref, cur = _frames(shift=1.0)
    report = compute_drift(write_csv(tmp_path, "r.csv", ref), write_csv(tmp_path, "c.csv", cur))
    assert _json_roundtrip(report) == report
    assert report["detector"] == "KSDrift"
    assert report["drift"] is True
    assert report["correction"] == "bonferroni" and report["p_val"] == 0.05
    assert report["threshold"] == pytest.approx(0.05 / 3)
    assert (report["n_features"], report["n_reference"], report["n_current"]) == (3, 400, 400)
    names = [f["name"] for f in report["features"]]
    assert names == ["a", "b", "c"]
    first = report["features"][0]
    assert first["test"] == "ks" and first["drifted"] is True
    assert isinstance(first["statistic"], float) and isinstance(first["p_value"], float)
    assert report["n_drifted"] == sum(f["drifted"] for f in report["features"])
    assert report["share_drifted"] == report["n_drifted"] / 3


def test_same_data_does_not_drift(tmp_path: Path) -> None:
    ref, _ = _frames()
    path = write_csv(tmp_path, "r.csv", ref)
    report = compute_drift(path, path)
    assert report["drift"] is False and report["n_drifted"] == 0
    assert all(f["p_value"] == 1.0 and f["statistic"] == 0.0 for f in report["features"])


@pytest.mark.parametrize("correction", ["bonferroni", "fdr"])
def test_matches_bare_alibi_ksdrift(correction: str) -> None:
    from alibi_detect.cd import KSDrift

    rng = np.random.default_rng(7)
    x_ref = rng.normal(size=(300, 6))
    x_cur = rng.normal(size=(250, 6)) + np.array([0, 0.15, 0.3, 0, 0.6, 0.05])
    ours = compute_drift_arrays(x_ref, x_cur, p_val=0.05, correction=correction)
    theirs = KSDrift(x_ref, p_val=0.05, correction=correction).predict(x_cur)["data"]
    assert ours["drift"] == bool(theirs["is_drift"])
    assert [f["p_value"] for f in ours["features"]] == [float(p) for p in theirs["p_val"]]
    assert [f["statistic"] for f in ours["features"]] == [float(d) for d in theirs["distance"]]


@pytest.mark.parametrize("seed", range(6))
def test_bonferroni_flags_are_p_below_p_val_over_n(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x_ref = rng.normal(size=(200, 8))
    x_cur = rng.normal(size=(200, 8)) + rng.choice([0.0, 0.2, 0.5], size=8)
    report = compute_drift_arrays(x_ref, x_cur, correction="bonferroni", p_val=0.05)
    assert report["threshold"] == 0.05 / 8
    for f in report["features"]:
        assert f["drifted"] == (f["p_value"] < 0.05 / 8)
    assert report["drift"] == (report["n_drifted"] > 0)


@pytest.mark.parametrize("seed", range(6))
def test_fdr_flags_are_exactly_the_benjamini_hochberg_rejections(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    x_ref = rng.normal(size=(200, 10))
    x_cur = rng.normal(size=(200, 10)) + rng.choice([0.0, 0.0, 0.15, 0.3], size=10)
    report = compute_drift_arrays(x_ref, x_cur, correction="fdr", p_val=0.1)
    p = np.array([f["p_value"] for f in report["features"]])
    flagged = {i for i, f in enumerate(report["features"]) if f["drifted"]}
    assert flagged == _bh_rejections(p, 0.1)
    assert report["drift"] == bool(flagged)
    if not flagged:
        assert report["threshold"] == pytest.approx(0.1 / 10)


def test_fdr_can_flag_what_bonferroni_does_not() -> None:
    """Four moderately small p-values: BH rejects all four, Bonferroni none (q=0.05, n=5)."""
    from monitoring.detectors.drift import _feature_verdicts

    p = np.array([0.02, 0.025, 0.03, 0.035, 0.9], dtype=np.float32)
    threshold, flags = _feature_verdicts(p, 0.05 * 4 / 5, 0.05, "fdr")
    assert threshold == pytest.approx(0.04) and flags.tolist() == [True, True, True, True, False]
    threshold, flags = _feature_verdicts(p, 0.05 / 5, 0.05, "bonferroni")
    assert threshold == 0.01 and not flags.any()


def test_categorical_only_uses_chi_square(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    ref = pd.DataFrame({"color": rng.choice(["red", "blue"], 300), "size": rng.choice(["S", "M", "L"], 300)})
    cur = pd.DataFrame({"color": rng.choice(["red", "blue", "green"], 300), "size": rng.choice(["S", "M", "L"], 300)})
    report = compute_drift(write_csv(tmp_path, "r.csv", ref), write_csv(tmp_path, "c.csv", cur))
    assert report["detector"] == "ChiSquareDrift"
    assert [f["test"] for f in report["features"]] == ["chi2", "chi2"]
    assert report["features"][0]["drifted"] is True  # a new category appeared
    assert _json_roundtrip(report) == report


def test_mixed_uses_tabular_drift_with_per_feature_tests(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    ref = pd.DataFrame({"x": rng.normal(size=300), "plan": rng.choice(["a", "b"], 300), "ok": rng.random(300) < 0.5})
    cur = pd.DataFrame({"x": rng.normal(size=300), "plan": rng.choice(["a", "b"], 300, p=[0.9, 0.1]), "ok": rng.random(300) < 0.5})
    report = compute_drift(write_csv(tmp_path, "r.csv", ref), write_csv(tmp_path, "c.csv", cur))
    assert report["detector"] == "TabularDrift"
    assert {f["name"]: f["test"] for f in report["features"]} == {"x": "ks", "plan": "chi2", "ok": "chi2"}
    assert {f["name"]: f["drifted"] for f in report["features"]}["plan"] is True


def test_explicit_categorical_numeric_codes(tmp_path: Path) -> None:
    """A numeric code column can be tested as categories; its values stay shared across files."""
    ref = pd.DataFrame({"zone": [1, 2, 3] * 50, "v": np.linspace(0, 1, 150)})
    cur = pd.DataFrame({"zone": [1, 2, 3] * 50, "v": np.linspace(0, 1, 150)})
    report = compute_drift(write_csv(tmp_path, "r.csv", ref), write_csv(tmp_path, "c.csv", cur), categorical=["zone"])
    assert report["features"][0] == {"name": "zone", "test": "chi2", "statistic": 0.0, "p_value": 1.0, "drifted": False}


def test_missing_values_give_null_p_value_with_note(tmp_path: Path) -> None:
    ref, cur = _frames()
    ref.loc[5, "b"] = np.nan
    report = compute_drift(write_csv(tmp_path, "r.csv", ref), write_csv(tmp_path, "c.csv", cur))
    b = report["features"][1]
    assert b["p_value"] is None and b["statistic"] is None and b["drifted"] is False
    assert "missing values" in b["note"]
    assert any("'b'" in n for n in report["notes"])
    assert _json_roundtrip(report) == report


def test_datetime_columns_left_out_by_default_refused_when_asked(tmp_path: Path) -> None:
    ref = pd.DataFrame({"x": [1.0, 2.0, 3.0], "at": ["2024-01-01", "2024-01-02", "2024-01-03"]})
    r, c = write_csv(tmp_path, "r.csv", ref), write_csv(tmp_path, "c.csv", ref)
    report = compute_drift(r, c)
    assert [f["name"] for f in report["features"]] == ["x"]
    assert any("datetime" in n for n in report["notes"])
    with pytest.raises(DataError) as exc:
        compute_drift(r, c, features=["x", "at"])
    assert exc.value.code == "unsupported_type"


# -------------------------------------------------------------------- bad data


def test_schema_mismatch_between_reference_and_current(tmp_path: Path) -> None:
    ref = pd.DataFrame({"x": [1.0, 2.0, 3.0], "color": ["r", "g", "b"]})
    cur = pd.DataFrame({"x": [1.0, 2.0, 3.0], "color": [1, 2, 3]})
    with pytest.raises(DataError) as exc:
        compute_drift(write_csv(tmp_path, "r.csv", ref), write_csv(tmp_path, "c.csv", cur))
    assert exc.value.code == "schema_mismatch"
    assert "'color' is categorical in the reference but numeric" in exc.value.message


def test_missing_and_extra_columns(tmp_path: Path) -> None:
    ref, cur = _frames()
    r = write_csv(tmp_path, "r.csv", ref)
    with pytest.raises(DataError) as exc:
        compute_drift(r, write_csv(tmp_path, "c1.csv", cur.drop(columns=["c"])))
    assert exc.value.code == "missing_columns" and exc.value.details["missing"] == ["c"]
    wider = write_csv(tmp_path, "c2.csv", cur.assign(extra=1.0))
    with pytest.raises(DataError) as exc:
        compute_drift(r, wider)
    assert exc.value.code == "extra_columns" and exc.value.details["extra"] == ["extra"]
    assert compute_drift(r, wider, features=["a", "b"])["n_features"] == 2
    with pytest.raises(DataError) as exc:
        compute_drift(r, wider, features=["a", "zz"])
    assert exc.value.code == "missing_columns"


def test_non_numeric_value_in_numeric_feature(tmp_path: Path) -> None:
    ref, cur = _frames()
    cur = cur.astype({"a": object})
    cur.loc[123, "a"] = "#REF!"
    with pytest.raises(DataError) as exc:
        compute_drift(write_csv(tmp_path, "r.csv", ref), write_csv(tmp_path, "c.csv", cur))
    err = exc.value
    assert err.code == "non_numeric"
    assert (err.details["column"], err.details["row"], err.details["value"]) == ("a", 123, "#REF!")
    assert "current 'c.csv'" in err.message and "categorical" in err.message


def test_all_missing_feature(tmp_path: Path) -> None:
    ref, cur = _frames()
    cur["c"] = np.nan
    with pytest.raises(DataError) as exc:
        compute_drift(write_csv(tmp_path, "r.csv", ref), write_csv(tmp_path, "c.csv", cur))
    assert exc.value.code == "all_missing" and exc.value.details["columns"] == ["c"]


@pytest.mark.parametrize(
    ("content", "code"),
    [(b"", "empty_file"), (b"a,b,c\n", "header_only"), ("a,b,c\n1,2,caf\u00e9\n".encode("latin-1"), "bad_encoding")],
)
def test_unreadable_current_file(tmp_path: Path, content: bytes, code: str) -> None:
    ref, _ = _frames()
    with pytest.raises(DataError) as exc:
        compute_drift(write_csv(tmp_path, "r.csv", ref), write_bytes(tmp_path, "c.csv", content))
    assert exc.value.code == code


def test_too_many_categories(tmp_path: Path) -> None:
    ids = pd.DataFrame({"user_id": [f"u{i}" for i in range(60)]})
    with pytest.raises(DataError) as exc:
        compute_drift(write_csv(tmp_path, "r.csv", ids), write_csv(tmp_path, "c.csv", ids), max_categories=50)
    assert exc.value.code == "too_many_categories" and exc.value.details["column"] == "user_id"


def test_array_shape_mismatch_and_bad_parameters() -> None:
    with pytest.raises(DataError) as exc:
        compute_drift_arrays(np.zeros((5, 3)), np.zeros((5, 2)))
    assert exc.value.code == "schema_mismatch"
    with pytest.raises(ValueError):
        compute_drift_arrays(np.zeros((5, 1)), np.zeros((5, 1)), p_val=1.5)
    with pytest.raises(ValueError):
        compute_drift_arrays(np.zeros((5, 1)), np.zeros((5, 1)), correction="holm")  # type: ignore[arg-type]


def test_importing_drift_does_not_import_alibi() -> None:
    """alibi-detect takes seconds to import; web processes import this module and must not pay that."""
    code = (
        "import sys, monitoring.detectors, monitoring.detectors.drift, monitoring.detectors.bias, "
        "monitoring.detectors.validation; sys.exit('alibi_detect' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_parquet_files_give_the_array_result(tmp_path: Path) -> None:
    ref, cur = _frames(shift=0.5)
    ref["plan"] = np.where(ref["a"] > 0, "gold", "basic")
    cur["plan"] = np.where(cur["b"] > 0.5, "gold", "basic")
    from_files = compute_drift(
        write_parquet(tmp_path, "r.parquet", ref, row_group_size=64), write_parquet(tmp_path, "c.parquet", cur)
    )
    from_arrays = compute_drift_arrays(
        ref.to_numpy(dtype=object), cur.to_numpy(dtype=object), feature_names=list(ref.columns), categorical=["plan"]
    )
    assert from_files["detector"] == "TabularDrift"
    assert from_files == from_arrays


def test_numeric_parquet_equals_arrays_and_csv(tmp_path: Path) -> None:
    """The all-numeric path (the benchmark's): Parquet, CSV and in-memory arrays give one report."""
    ref, cur = _frames(shift=0.3)
    from_parquet = compute_drift(
        write_parquet(tmp_path, "r.parquet", ref, row_group_size=100), write_parquet(tmp_path, "c.parquet", cur)
    )
    assert from_parquet["detector"] == "KSDrift"
    assert from_parquet == compute_drift_arrays(ref.to_numpy(), cur.to_numpy(), feature_names=list(ref.columns))
    assert from_parquet == compute_drift(write_csv(tmp_path, "r.csv", ref), write_csv(tmp_path, "c.csv", cur))
