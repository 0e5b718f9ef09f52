"""Group fairness metrics from per-group confusion counts.

Every metric the bias gate uses (selection rate, accuracy, true/false
positive rate per group, and the demographic-parity and equalized-odds
differences and ratios built from them) is a function of four integers per
group: tn, fp, fn, tp. Counting them is one ``np.bincount`` over
(group code, y_true, y_pred), and counts add up: counts of chunks or of
partitions sum to the counts of the whole. That gives exact results on data
of any size in bounded memory, ~1000x faster than fairlearn's ``MetricFrame``
(which calls scikit-learn once per group and metric).

The definitions are fairlearn 0.15's, checked against its source and by the
tests to 1e-9, with one deliberate difference: a rate whose denominator is
zero (TPR of a group with no actual positives, FPR of a group with no actual
negatives) is *undefined*. fairlearn (through scikit-learn's normalised
confusion matrix) silently reports 0.0 there, which for a compliance report
turns "we could not measure this group" into "this group is never selected
correctly" and can inflate the equalized-odds difference. We report ``None``
with the reason and compute the aggregate over the groups where the metric
is defined, listing the excluded groups.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import pandas as pd

from .data import DEFAULT_CHUNK_ROWS, PathLike, _name, iter_chunks
from .errors import DataError

#: Order of the four counts in every count vector.
COUNT_FIELDS: Final[tuple[str, str, str, str]] = ("tn", "fp", "fn", "tp")
_NEGATIVES_FOR_DEFAULT_POSITIVE: Final[tuple[Any, ...]] = (0, -1)


def _py(value: Any) -> Any:
    """JSON-safe Python scalar for a group value (NumPy scalars, NaN, timestamps...)."""
    if value is None:
        return None
    if isinstance(value, (float, np.floating)) and math.isnan(value):
        return None
    if value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (pd.Timestamp, _dt.datetime, _dt.date)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    if isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _sort_key(key: tuple[Any, ...]) -> tuple[Any, ...]:
    """Deterministic order for group keys of mixed types, missing values last."""
    return tuple((v is None, type(v).__name__, 0 if v is None else v) for v in key)


@dataclass
class GroupCounts:
    """Confusion counts per group; groups are tuples of sensitive-feature values.

    ``counts[key]`` is an int64 vector ``[tn, fp, fn, tp]``. Only groups that
    occur in the data are present (fairlearn's MetricFrame also lists empty
    intersections, as NaN rows that every aggregate skips; leaving them out
    gives the same results).
    """

    sensitive_features: tuple[str, ...]
    counts: dict[tuple[Any, ...], np.ndarray] = field(default_factory=dict)

    def add(self, other: GroupCounts) -> GroupCounts:
        """Add ``other``'s counts into this object (chunks of one dataset sum up)."""
        if other.sensitive_features != self.sensitive_features:
            raise ValueError(
                f"cannot add counts over {other.sensitive_features} to counts over {self.sensitive_features}"
            )
        for key, vec in other.counts.items():
            mine = self.counts.get(key)
            if mine is None:
                self.counts[key] = vec.astype(np.int64, copy=True)
            else:
                mine += vec
        return self

    @classmethod
    def merge(cls, parts: Iterable[GroupCounts]) -> GroupCounts:
        """Sum of several partial counts (e.g. per-partition results from workers)."""
        total: GroupCounts | None = None
        for part in parts:
            if total is None:
                total = cls(part.sensitive_features)
            total.add(part)
        if total is None:
            raise ValueError("merge needs at least one GroupCounts")
        return total

    @property
    def total(self) -> np.ndarray:
        """Counts over all rows (for the overall metrics)."""
        out = np.zeros(4, dtype=np.int64)
        for vec in self.counts.values():
            out += vec
        return out

    @property
    def n_rows(self) -> int:
        return int(self.total.sum())


# --------------------------------------------------------------------------
# Label handling
# --------------------------------------------------------------------------


class _BinaryLabels:
    """Turns label and prediction columns into 0/1, checking they are binary across all chunks.

    Labels and predictions must share the same two values, so one instance
    checks both columns against one remembered set of values: a third value
    appearing in a later chunk (or only in the predictions) is caught with
    its column and row, and so are two values that do not include the
    positive label.
    """

    def __init__(self, positive_label: Any, file: str) -> None:
        self.positive_label = positive_label
        self.file = file
        self.seen: list[Any] = []

    def _fail(self, column: str, message: str, **details: Any) -> DataError:
        return DataError(
            "labels_not_binary",
            f"{self.file}: column '{column}' {message} Binary metrics need exactly two values, shared "
            f"by labels and predictions: the positive label ({self.positive_label!r}) and one negative "
            "value. Map the columns to 0/1, set positive_label, or threshold scores into class "
            "predictions first.",
            file=self.file,
            column=column,
            positive_label=_py(self.positive_label),
            **details,
        )

    def __call__(self, values: pd.Series, column: str) -> np.ndarray:
        missing = values.isna().to_numpy()
        if missing.any():
            first = int(values.index[int(np.flatnonzero(missing)[0])])
            raise DataError(
                "missing_values",
                f"{self.file}: column '{column}' has {int(missing.sum())} missing value(s); the first "
                f"is at data row {first}. Every row needs a label and a prediction: drop or fill "
                "those rows.",
                file=self.file,
                column=column,
                row=first,
            )
        for value in pd.unique(values):
            if value in self.seen:
                continue
            self.seen.append(value)
            if len(self.seen) > 2:
                pos = int(np.flatnonzero((values == value).to_numpy())[0])
                shown = ", ".join(repr(_py(v)) for v in self.seen[:10])
                raise self._fail(
                    column,
                    f"brings the number of distinct label values to more than two ({shown}); the "
                    f"value {_py(value)!r} first appears at data row {int(values.index[pos])}.",
                    values=[_py(v) for v in self.seen[:10]],
                )
            if len(self.seen) == 2 and self.positive_label not in self.seen:
                raise self._fail(
                    column,
                    f"and its companion column use the values {_py(self.seen[0])!r} and "
                    f"{_py(self.seen[1])!r}, neither of which is the positive label "
                    f"{self.positive_label!r}.",
                    values=[_py(v) for v in self.seen],
                )
        result = values.to_numpy() == self.positive_label
        if np.ndim(result) == 0:  # NumPy could not compare element-wise (e.g. ints vs a string)
            result = np.full(len(values), bool(result))
        return np.asarray(result, dtype=np.int64)

    @property
    def negative_label(self) -> Any:
        """The non-positive value seen, if any."""
        others = [v for v in self.seen if v != self.positive_label]
        return others[0] if others else None

    def finish(self, column: str) -> None:
        """A lone value that is not the positive label must plausibly be the negative one.

        All-negative data are legitimate (e.g. no approvals in a window) but
        with labels "no" and positive_label=1 they more likely mean a
        forgotten positive_label, which would silently count everything as
        negative.
        """
        if len(self.seen) == 1 and self.seen[0] != self.positive_label:
            only = self.seen[0]
            default_positive = self.positive_label in (1, True)
            if not (default_positive and any(only == neg for neg in _NEGATIVES_FOR_DEFAULT_POSITIVE)):
                raise self._fail(
                    column,
                    f"(with its companion column) has only the value {_py(only)!r}, which is not the "
                    "positive label; it is unclear which value is positive.",
                    values=[_py(only)],
                )


# --------------------------------------------------------------------------
# Counting
# --------------------------------------------------------------------------


def _counts_from_binary(
    y_true01: np.ndarray, y_pred01: np.ndarray, groups: Sequence[np.ndarray], names: Sequence[str]
) -> GroupCounts:
    """One bincount over (group, y_true, y_pred) for 0/1 label arrays and raw group arrays."""
    n = len(y_true01)
    codes_list: list[np.ndarray] = []
    uniques_list: list[np.ndarray] = []
    for values in groups:
        if len(values) != n:
            raise DataError(
                "length_mismatch",
                f"sensitive feature has {len(values)} values for {n} labels; all arrays must align.",
            )
        codes, uniques = pd.factorize(np.asarray(values) if not isinstance(values, pd.Series) else values,
                                      use_na_sentinel=False)
        codes_list.append(codes.astype(np.int64, copy=False))
        uniques_list.append(np.asarray(uniques, dtype=object))
    sizes = tuple(len(u) for u in uniques_list)
    combined = np.zeros(n, dtype=np.int64)
    for codes, size in zip(codes_list, sizes):
        combined *= size
        combined += codes
    n_combos = math.prod(sizes)
    if n_combos > 4 * max(n, 1):  # sparse intersections: compress to the combinations present
        present, combined = np.unique(combined, return_inverse=True)
    else:
        present = None
    n_slots = int(combined.max()) + 1 if n else 0
    idx = combined * 4 + y_true01 * 2 + y_pred01
    table = np.bincount(idx, minlength=n_slots * 4).reshape(-1, 4)
    result = GroupCounts(tuple(names))
    for slot in np.flatnonzero(table.sum(axis=1)):
        flat = int(present[slot]) if present is not None else int(slot)
        parts = np.unravel_index(flat, sizes)
        key = tuple(_py(uniques_list[i][int(parts[i])]) for i in range(len(sizes)))
        vec = table[slot].astype(np.int64)
        existing = result.counts.get(key)  # NaN and None both map to None
        result.counts[key] = vec if existing is None else existing + vec
    return result


def counts_from_arrays(
    y_true: Any,
    y_pred: Any,
    sensitive: Mapping[str, Any],
    *,
    positive_label: Any = 1,
) -> GroupCounts:
    """Per-group confusion counts of in-memory arrays.

    ``sensitive`` maps feature names to arrays; with several features the
    groups are their intersections (tuples of values), as in fairlearn.
    Labels must be binary (see ``compute_bias``).
    """
    if not sensitive:
        raise ValueError("at least one sensitive feature is required")
    yt = pd.Series(np.asarray(y_true))
    yp = pd.Series(np.asarray(y_pred))
    if len(yt) != len(yp):
        raise DataError(
            "length_mismatch",
            f"y_true has {len(yt)} values but y_pred has {len(yp)}; they must be the same rows.",
        )
    check = _BinaryLabels(positive_label, "input")
    t01, p01 = check(yt, "y_true"), check(yp, "y_pred")
    check.finish("y_true")
    names = list(sensitive)
    return _counts_from_binary(t01, p01, [np.asarray(sensitive[k]) for k in names], names)


# --------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------


def _rate(num: int, den: int) -> float | None:
    return num / den if den else None


def _group_label(names: Sequence[str], key: tuple[Any, ...]) -> str:
    return ", ".join(f"{n}={v!r}" if v is not None else f"{n}=<missing>" for n, v in zip(names, key))


def _metrics(vec: np.ndarray) -> tuple[dict[str, Any], dict[str, str]]:
    """Rates of one count vector, plus the reasons for any that are undefined."""
    tn, fp, fn, tp = (int(x) for x in vec)
    n = tn + fp + fn + tp
    out: dict[str, Any] = {
        "count": n, "tn": tn, "fp": fp, "fn": fn, "tp": tp,
        "selection_rate": _rate(tp + fp, n),
        "accuracy": _rate(tp + tn, n),
        "true_positive_rate": _rate(tp, tp + fn),
        "false_positive_rate": _rate(fp, fp + tn),
    }
    reasons: dict[str, str] = {}
    if out["true_positive_rate"] is None:
        reasons["true_positive_rate"] = (
            "no actual positives (y_true = positive label) in this group: TPR = TP / (TP + FN) is 0/0"
        )
    if out["false_positive_rate"] is None:
        reasons["false_positive_rate"] = (
            "no actual negatives in this group: FPR = FP / (FP + TN) is 0/0"
        )
    if n == 0:
        reasons["selection_rate"] = reasons["accuracy"] = "no rows"
    return out, reasons


def _spread(
    metric: str, per_group: list[tuple[str, float | None]]
) -> dict[str, Any]:
    """fairlearn's between-groups difference (max - min) and ratio (min / max) of one metric.

    Computed over the groups where the metric is defined; the others are
    listed. With one defined group the difference is 0 and the ratio 1 (as
    in fairlearn); with none, both are undefined.
    """
    defined = [v for _, v in per_group if v is not None]
    excluded = [label for label, v in per_group if v is None]
    result: dict[str, Any] = {"groups_used": len(defined), "excluded_groups": excluded}
    if not defined:
        result.update(difference=None, ratio=None,
                      reason=f"{metric} is undefined in every group")
        return result
    hi, lo = max(defined), min(defined)
    result["difference"] = hi - lo
    if hi == 0:
        result["ratio"] = None
        result["reason"] = f"{metric} is 0 in every group, so min/max is 0/0"
    else:
        result["ratio"] = lo / hi
    return result


def compute_bias_from_counts(counts: GroupCounts, *, positive_label: Any = 1) -> dict[str, Any]:
    """Fairness report from per-group confusion counts.

    Definitions (fairlearn 0.15, ``method="between_groups"``, ``agg="worst_case"``):

    * selection_rate = (TP+FP)/n, accuracy = (TP+TN)/n,
      true_positive_rate = TP/(TP+FN), false_positive_rate = FP/(FP+TN)
    * demographic_parity_difference = max - min of selection rates over groups;
      demographic_parity_ratio = min / max
    * equalized_odds_difference = max(TPR difference, FPR difference);
      equalized_odds_ratio = min(TPR ratio, FPR ratio)

    Undefined values are ``None`` and their reasons are listed in
    ``undefined``; see the module docstring for how aggregates treat them.
    An equalized-odds figure is ``None`` when either of its two components is.
    """
    names = counts.sensitive_features
    keys = sorted(counts.counts, key=_sort_key)
    groups: list[dict[str, Any]] = []
    undefined: list[dict[str, Any]] = []
    for key in keys:
        metrics, reasons = _metrics(counts.counts[key])
        label = _group_label(names, key)
        entry = {"group": dict(zip(names, key)), "label": label, **metrics}
        if reasons:
            entry["undefined"] = reasons
            undefined.extend({"group": label, "metric": m, "reason": r} for m, r in reasons.items())
        groups.append(entry)
    overall, overall_reasons = _metrics(counts.total)
    for m, r in overall_reasons.items():
        undefined.append({"group": "overall", "metric": m, "reason": r})

    def column(metric: str) -> list[tuple[str, float | None]]:
        return [(g["label"], g[metric]) for g in groups]

    sel = _spread("selection_rate", column("selection_rate"))
    tpr = _spread("true_positive_rate", column("true_positive_rate"))
    fpr = _spread("false_positive_rate", column("false_positive_rate"))
    eod = None if tpr["difference"] is None or fpr["difference"] is None else max(tpr["difference"], fpr["difference"])
    eor = None if tpr["ratio"] is None or fpr["ratio"] is None else min(tpr["ratio"], fpr["ratio"])
    notes = []
    for name, spread in (("true_positive_rate", tpr), ("false_positive_rate", fpr), ("selection_rate", sel)):
        if spread["excluded_groups"]:
            notes.append(
                f"{name}: {len(spread['excluded_groups'])} group(s) excluded from the difference/ratio "
                f"because the rate is undefined there: {'; '.join(spread['excluded_groups'])}"
            )
        if spread.get("reason"):
            notes.append(f"{name}: {spread['reason']}")
    return {
        "sensitive_features": list(names),
        "positive_label": _py(positive_label),
        "method": "between_groups",
        "agg": "worst_case",
        "n_rows": overall["count"],
        "n_groups": len(groups),
        "overall": overall,
        "groups": groups,
        "demographic_parity_difference": sel["difference"],
        "demographic_parity_ratio": sel["ratio"],
        "equalized_odds_difference": eod,
        "equalized_odds_ratio": eor,
        "components": {
            "selection_rate": sel,
            "true_positive_rate": tpr,
            "false_positive_rate": fpr,
        },
        "undefined": undefined,
        "notes": notes,
    }


def compute_bias(
    path: PathLike,
    *,
    label: str,
    prediction: str,
    sensitive_features: list[str],
    positive_label: Any = 1,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> dict[str, Any]:
    """Fairness report for a dataset file, streamed in chunks of ``chunk_rows`` rows.

    ``label`` and ``prediction`` columns must each hold two values, one of them
    ``positive_label`` (a column holding only negatives is accepted when the
    positive label is 1/True and the value is 0/False/-1); otherwise
    ``labels_not_binary``. Missing labels/predictions raise ``missing_values``;
    a sensitive feature with no value at all raises ``all_missing``. Missing
    values of a sensitive feature otherwise form their own group (``None``).
    Results are identical for any ``chunk_rows``: counts are integers and add.
    """
    if not sensitive_features:
        raise ValueError("at least one sensitive feature is required")
    sensitive = list(dict.fromkeys(sensitive_features))
    overlap = [c for c in sensitive if c in (label, prediction)]
    if overlap:
        raise ValueError(f"{overlap} cannot be both a sensitive feature and the label/prediction")
    file = f"'{_name(path)}'"
    columns = list(dict.fromkeys([label, prediction, *sensitive]))
    check = _BinaryLabels(positive_label, file)
    total = GroupCounts(tuple(sensitive))
    dtypes = dict.fromkeys(sensitive, "object")
    for chunk in iter_chunks(path, columns, chunk_rows, dtypes=dtypes):  # type: ignore[arg-type]
        if chunk.empty:
            continue
        t01 = check(chunk[label], label)
        p01 = check(chunk[prediction], prediction)
        total.add(_counts_from_binary(t01, p01, [chunk[c].to_numpy() for c in sensitive], sensitive))
    check.finish(label)
    for i, col in enumerate(sensitive):
        if all(key[i] is None for key in total.counts):
            raise DataError(
                "all_missing",
                f"{file}: sensitive feature '{col}' has no value in any row, so no group can be "
                "formed. Fix the export or leave the feature out.",
                file=file,
                column=col,
            )
    report = compute_bias_from_counts(total, positive_label=positive_label)
    missing_groups = [g["label"] for g in report["groups"] if None in g["group"].values()]
    if missing_groups:
        report["notes"].append(
            "rows with a missing sensitive-feature value form their own group(s): " + "; ".join(missing_groups)
        )
    return report
