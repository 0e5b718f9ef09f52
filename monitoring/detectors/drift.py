"""Data drift between a reference and a current dataset, with alibi-detect.

The promotion gates ask one question of this module: "has the input
distribution moved since the model was validated?". We answer it with
alibi-detect's univariate detectors rather than our own statistics so the
evidence in an audit pack is produced by a published, reviewed library:

* all features numeric      -> ``KSDrift``        (two-sample Kolmogorov-Smirnov per feature)
* all features categorical  -> ``ChiSquareDrift`` (chi-squared on the category counts)
* mixed                     -> ``TabularDrift``   (KS or chi-squared per feature)

The per-feature p-values are combined with alibi's multiple-testing
correction; see ``_feature_verdicts`` for exactly what "drifted" then means.
alibi-detect takes seconds to import, so it is imported inside the functions
that run a detector, never at module import.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Final, Literal, TypeAlias

import numpy as np
import pandas as pd

from .data import (
    DEFAULT_MAX_BYTES,
    PathLike,
    Schema,
    _name,
    check_not_all_missing,
    check_numeric,
    check_same_schema,
    infer_schema,
    load_columns,
    load_numeric_matrix,
    require_columns,
)
from .errors import DataError

Correction: TypeAlias = Literal["bonferroni", "fdr"]
CORRECTIONS: Final[tuple[str, ...]] = ("bonferroni", "fdr")
#: A chi-squared test over more categories than this is both slow in alibi
#: (one pass over the data per category) and statistically meaningless (most
#: cells nearly empty). Such a column is usually an identifier.
DEFAULT_MAX_CATEGORIES: Final[int] = 1000
_MISSING_CATEGORY: Final[str] = "\x00<missing>"


def clean_float(value: Any) -> float | None:
    """Python float for JSON, or ``None`` for NaN / +-inf (which JSON cannot carry)."""
    if value is None:
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def _check_params(p_val: float, correction: str) -> None:
    if not (0.0 < float(p_val) < 1.0):
        raise ValueError(f"p_val must be strictly between 0 and 1, got {p_val!r}")
    if correction not in CORRECTIONS:
        raise ValueError(f"correction must be one of {CORRECTIONS}, got {correction!r}")


# --------------------------------------------------------------------------
# Arrays in, report out
# --------------------------------------------------------------------------


def _encode_categories(ref: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Map the values of one categorical column in both samples to shared codes 0..K-1.

    Both samples must use the same code for the same category, and every
    code must occur in at least one sample (a category absent from both
    would give alibi's chi-squared table an all-zero column). Values are
    compared as text so that ``1`` from Parquet and ``"1"`` from CSV are one
    category; missing values form their own category, because a change in
    how often a value is missing is drift too.
    """

    def as_text(values: np.ndarray) -> np.ndarray:
        series = pd.Series(values, dtype=object)
        return series.where(series.isna(), series.astype(str)).fillna(_MISSING_CATEGORY).to_numpy()

    ref_t, cur_t = as_text(ref), as_text(cur)
    uniques = pd.unique(np.concatenate([pd.unique(ref_t), pd.unique(cur_t)]))
    index = pd.Index(uniques)
    return index.get_indexer(ref_t), index.get_indexer(cur_t), len(index)


def _encode_into(
    out_ref: np.ndarray,
    out_cur: np.ndarray,
    j: int,
    ref_values: np.ndarray,
    cur_values: np.ndarray,
    name: str,
    max_categories: int,
) -> int:
    """Write shared category codes of column ``j`` into both matrices; return the category count."""
    ref_codes, cur_codes, k = _encode_categories(ref_values, cur_values)
    if k > max_categories:
        raise DataError(
            "too_many_categories",
            f"categorical feature '{name}' has {k} distinct values (limit {max_categories}); a "
            "chi-squared test on it is meaningless. Leave it out (it looks like an identifier), "
            "group rare values, or treat it as numeric.",
            column=name,
            categories=k,
        )
    out_ref[:, j] = ref_codes
    out_cur[:, j] = cur_codes
    return k


def _feature_verdicts(
    p_vals: np.ndarray, threshold_out: Any, p_val: float, correction: str
) -> tuple[float, np.ndarray]:
    """Per-feature drift flags consistent with alibi's batch-level verdict.

    alibi only reports one batch verdict and a threshold:

    * Bonferroni: threshold = p_val / n_features and the batch drifts if any
      p-value is below it. A feature is flagged when its own p-value is below
      that threshold, so the family-wise false-alarm rate over all features is
      at most p_val.
    * FDR: alibi runs Benjamini-Hochberg: with sorted p-values p(1)..p(n) it
      finds the largest k with p(k) < p_val * k / n and returns q = p_val*k/n
      as the threshold. The features BH rejects are exactly those with
      p < q, so a flag means "discovered while keeping the expected share of
      false discoveries among flagged features at most p_val". When nothing is
      rejected alibi returns the whole array of bounds; we report the smallest,
      p_val / n, and every p-value is then at or above it, so no feature is
      flagged, as BH requires.

    NaN p-values compare false and are never flagged (the caller adds a note).
    """
    if correction == "bonferroni":
        threshold = float(threshold_out)
    else:
        arr = np.asarray(threshold_out, dtype=np.float64)
        threshold = float(arr) if arr.ndim == 0 else float(p_val) / len(p_vals)
    with np.errstate(invalid="ignore"):
        flags = np.asarray(p_vals) < threshold
    return threshold, flags


def _run_detector(
    x_ref: np.ndarray,
    x_cur: np.ndarray,
    names: Sequence[str],
    categories: dict[int, int],
    *,
    p_val: float,
    correction: str,
) -> dict[str, Any]:
    """Pick the alibi detector for the column mix, run it and build the JSON report."""
    from alibi_detect.cd import ChiSquareDrift, KSDrift, TabularDrift  # slow import: keep lazy
    from alibi_detect import __version__ as alibi_version

    n_features = len(names)
    if not categories:
        detector_name = "KSDrift"
        detector = KSDrift(x_ref, p_val=p_val, correction=correction)
    elif len(categories) == n_features:
        detector_name = "ChiSquareDrift"
        detector = ChiSquareDrift(x_ref, p_val=p_val, correction=correction, categories_per_feature=categories)
    else:
        detector_name = "TabularDrift"
        detector = TabularDrift(x_ref, p_val=p_val, correction=correction, categories_per_feature=categories)
    out = detector.predict(x_cur, drift_type="batch", return_p_val=True, return_distance=True)["data"]
    p_vals = np.asarray(out["p_val"])
    stats = np.asarray(out["distance"])
    threshold, flags = _feature_verdicts(p_vals, out["threshold"], p_val, correction)

    features: list[dict[str, Any]] = []
    notes: list[str] = []
    for j, name in enumerate(names):
        test = "chi2" if j in categories else "ks"
        entry: dict[str, Any] = {
            "name": name,
            "test": test,
            "statistic": clean_float(stats[j]),
            "p_value": clean_float(p_vals[j]),
            "drifted": bool(flags[j]),
        }
        if entry["p_value"] is None or entry["statistic"] is None:
            entry["note"] = (
                "test result is not a finite number (NaN); for a KS test this means the column has "
                "missing values, which KS cannot rank. Impute or drop missing values to test this "
                "feature; it is counted as not drifted."
            )
            notes.append(f"feature '{name}': p-value undefined (NaN), reported as null and not drifted")
        features.append(entry)

    n_drifted = int(flags.sum())
    drift = bool(out["is_drift"])
    if drift != (n_drifted > 0):  # would mean we misread alibi's correction
        raise AssertionError("per-feature verdicts disagree with alibi's batch verdict")
    return {
        "detector": detector_name,
        "library": f"alibi-detect {alibi_version}",
        "drift": drift,
        "p_val": float(p_val),
        "correction": correction,
        "threshold": clean_float(threshold),
        "n_features": n_features,
        "n_drifted": n_drifted,
        "share_drifted": n_drifted / n_features,
        "n_reference": int(x_ref.shape[0]),
        "n_current": int(x_cur.shape[0]),
        "features": features,
        "notes": notes,
    }


def compute_drift_arrays(
    x_ref: np.ndarray,
    x_cur: np.ndarray,
    *,
    feature_names: Sequence[str] | None = None,
    p_val: float = 0.05,
    correction: Correction = "bonferroni",
    categorical: Sequence[str] | None = None,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
) -> dict[str, Any]:
    """Drift report for two in-memory 2-D arrays (rows x features).

    Same report as ``compute_drift``; used by it and by the benchmark, which
    compares our overhead against bare ``KSDrift`` on the same arrays.
    ``categorical`` names the columns to test with chi-squared; their values
    (any type) are re-encoded to shared codes. Numeric arrays are used as
    they are, without a copy, so the memory peak is the caller's arrays.
    """
    _check_params(p_val, correction)
    x_ref = np.asarray(x_ref)
    x_cur = np.asarray(x_cur)
    if x_ref.ndim == 1:
        x_ref = x_ref.reshape(-1, 1)
    if x_cur.ndim == 1:
        x_cur = x_cur.reshape(-1, 1)
    if x_ref.ndim != 2 or x_cur.ndim != 2:
        raise ValueError("x_ref and x_cur must be 2-D arrays (rows x features)")
    n_features = x_ref.shape[1]
    names = list(feature_names) if feature_names is not None else [f"f{i}" for i in range(n_features)]
    if len(names) != n_features:
        raise DataError(
            "length_mismatch",
            f"{len(names)} feature names given for {n_features} columns of data.",
        )
    if x_cur.shape[1] != n_features:
        raise DataError(
            "schema_mismatch",
            f"the reference has {n_features} features but the current data has {x_cur.shape[1]}. "
            "Pass the same columns in the same order.",
        )
    for label, arr in (("reference", x_ref), ("current", x_cur)):
        if arr.shape[0] == 0:
            raise DataError("header_only", f"the {label} data has no rows.")
    cat_names = list(categorical or [])
    unknown = [c for c in cat_names if c not in names]
    if unknown:
        require_columns(names, unknown, file="the feature list")
    cat_idx = [names.index(c) for c in cat_names]

    categories: dict[int, int] = {}
    if cat_idx:
        numeric_idx = [j for j in range(n_features) if j not in cat_idx]
        enc_ref = np.empty(x_ref.shape, dtype=np.float64 if numeric_idx else np.int64)
        enc_cur = np.empty(x_cur.shape, dtype=enc_ref.dtype)
        if numeric_idx:
            enc_ref[:, numeric_idx] = x_ref[:, numeric_idx].astype(np.float64)
            enc_cur[:, numeric_idx] = x_cur[:, numeric_idx].astype(np.float64)
        for j in cat_idx:
            categories[j] = _encode_into(
                enc_ref, enc_cur, j, x_ref[:, j], x_cur[:, j], names[j], max_categories
            )
        x_ref, x_cur = enc_ref, enc_cur
    elif not (np.issubdtype(x_ref.dtype, np.number) and np.issubdtype(x_cur.dtype, np.number)):
        x_ref, x_cur = x_ref.astype(np.float64), x_cur.astype(np.float64)
    return _run_detector(x_ref, x_cur, names, categories, p_val=p_val, correction=correction)


# --------------------------------------------------------------------------
# Files in, report out
# --------------------------------------------------------------------------


def _resolve_features(
    ref_schema: Schema, cur_schema: Schema, features: Sequence[str] | None, notes: list[str]
) -> list[str]:
    """Features to compare; by default every reference column that is not a datetime."""
    if features is not None:
        chosen = list(dict.fromkeys(features))
        if not chosen:
            raise ValueError("features must name at least one column (or be None for all)")
        return chosen
    ref_names = [c["name"] for c in ref_schema["columns"]]
    extra = [c["name"] for c in cur_schema["columns"] if c["name"] not in set(ref_names)]
    if extra:
        raise DataError(
            "extra_columns",
            f"the current dataset has columns the reference lacks: {', '.join(map(repr, extra))}. "
            "Export both with the same columns, or name the features to compare.",
            extra=extra,
        )
    chosen = []
    for col in ref_schema["columns"]:
        if col["type"] == "datetime":
            notes.append(f"column '{col['name']}' is a datetime and was left out of the drift test")
        else:
            chosen.append(col["name"])
    if not chosen:
        raise DataError("unsupported_type", "the reference dataset has no numeric or categorical column to test.")
    return chosen


def compute_drift(
    reference_path: PathLike,
    current_path: PathLike,
    *,
    features: list[str] | None = None,
    p_val: float = 0.05,
    correction: Correction = "bonferroni",
    categorical: list[str] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
) -> dict[str, Any]:
    """Test every feature of ``current_path`` for drift against ``reference_path``.

    ``features`` defaults to all reference columns except datetimes (then the
    two files must have the same columns). ``categorical`` defaults to the
    features whose reference type is categorical or boolean; all others must
    be numeric in both files. The data are checked before any statistics, in
    the order a person would fix them: missing/extra columns, all-missing
    columns, text in numeric columns, then type differences between the two
    files (``schema_mismatch``). Returns a JSON-ready dict (see
    ``docs/detectors.md``); NaN/inf never appear in it.
    """
    _check_params(p_val, correction)
    ref_file, cur_file = f"reference '{_name(reference_path)}'", f"current '{_name(current_path)}'"
    ref_schema = infer_schema(reference_path)
    cur_schema = infer_schema(current_path)
    notes: list[str] = []
    names = _resolve_features(ref_schema, cur_schema, features, notes)
    require_columns(ref_schema, names, file=ref_file)
    require_columns(cur_schema, names, file=cur_file)
    check_not_all_missing(ref_schema, names, file=ref_file)
    check_not_all_missing(cur_schema, names, file=cur_file)

    ref_types = {c["name"]: c["type"] for c in ref_schema["columns"]}
    if categorical is None:
        cat_names = [n for n in names if ref_types[n] in ("categorical", "boolean")]
    else:
        outside = [c for c in categorical if c not in names]
        if outside:
            raise ValueError(f"categorical columns {outside} are not among the features {names}")
        cat_names = list(dict.fromkeys(categorical))
    dated = [n for n in names if n not in cat_names and ref_types[n] == "datetime"]
    if dated:
        raise DataError(
            "unsupported_type",
            f"column {', '.join(map(repr, dated))} holds dates/times; a KS test on timestamps "
            "always reports drift as time moves on. Leave it out, or derive a feature from it "
            "(e.g. hour of day) and test that.",
            columns=dated,
        )
    numeric_names = [n for n in names if n not in cat_names]
    hint = ", or list the column in `categorical` if it is not a number"
    check_numeric(reference_path, numeric_names, schema=ref_schema, file=ref_file, hint=hint)
    check_numeric(current_path, numeric_names, schema=cur_schema, file=cur_file, hint=hint)
    check_same_schema(ref_schema, cur_schema, columns=names)

    categories: dict[int, int] = {}

    num_idx = [j for j, n in enumerate(names) if n not in cat_names]
    if not cat_names:
        x_ref = load_numeric_matrix(reference_path, names, schema=ref_schema, max_bytes=max_bytes)
        x_cur = load_numeric_matrix(current_path, names, schema=cur_schema, max_bytes=max_bytes)
    else:
        # Numeric part as float64 straight into the final matrix; categoricals as raw
        # values (rarely the bulk of a dataset) to build the shared encoding from.
        dtype = np.float64 if num_idx else np.int64
        x_ref = np.empty((ref_schema["rows"], len(names)), dtype=dtype)
        x_cur = np.empty((cur_schema["rows"], len(names)), dtype=dtype)
        if num_idx:
            x_ref[:, num_idx] = load_numeric_matrix(reference_path, numeric_names, schema=ref_schema, max_bytes=max_bytes)
            x_cur[:, num_idx] = load_numeric_matrix(current_path, numeric_names, schema=cur_schema, max_bytes=max_bytes)
        obj = dict.fromkeys(cat_names, "object")
        ref_cat = load_columns(reference_path, cat_names, dtypes=obj, schema=ref_schema, max_bytes=max_bytes)  # type: ignore[arg-type]
        cur_cat = load_columns(current_path, cat_names, dtypes=obj, schema=cur_schema, max_bytes=max_bytes)  # type: ignore[arg-type]
        for n in cat_names:
            j = names.index(n)
            categories[j] = _encode_into(x_ref, x_cur, j, ref_cat.pop(n), cur_cat.pop(n), n, max_categories)
    report = _run_detector(x_ref, x_cur, names, categories, p_val=p_val, correction=correction)
    report["notes"] = notes + report["notes"]
    return report

