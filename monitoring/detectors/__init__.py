"""Detector core: drift, bias and validation maths on dataset files, with no Django in sight.

Workers call these functions with file paths and store the JSON-ready dicts
they return as report evidence; the API maps ``DataError`` to a 4xx body
(``code`` + actionable ``message``) and ``DependencyError`` to a 5xx. Nothing
here imports alibi-detect or pyarrow at import time (both are slow to import,
and a broken pyarrow must not take CSV support down with it).

Result formats and definitions: docs/detectors.md.
"""

from .bias import GroupCounts, compute_bias, compute_bias_from_counts, counts_from_arrays
from .data import infer_schema, iter_chunks, load_columns, load_numeric_matrix
from .drift import compute_drift, compute_drift_arrays
from .errors import DATA_ERROR_CODES, DataError, DependencyError
from .validation import compute_validation, compute_validation_arrays, validate_latency

__all__ = [
    "DATA_ERROR_CODES",
    "DataError",
    "DependencyError",
    "GroupCounts",
    "compute_bias",
    "compute_bias_from_counts",
    "compute_drift",
    "compute_drift_arrays",
    "compute_validation",
    "compute_validation_arrays",
    "counts_from_arrays",
    "infer_schema",
    "iter_chunks",
    "load_columns",
    "load_numeric_matrix",
    "validate_latency",
]
