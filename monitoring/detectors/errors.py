"""Errors raised by the detector core.

A detector run is usually started by a pipeline or a compliance officer who
uploaded a dataset; when that dataset is unusable, the person needs to know
*what* is wrong and *how to fix it*, and the API layer needs a stable machine
code to map to a 4xx response. ``DataError`` carries both.
"""

from __future__ import annotations

from typing import Any, Final

#: Every code the detector core can raise. The codes are part of the API
#: contract (clients branch on them), so they are never renamed.
DATA_ERROR_CODES: Final[frozenset[str]] = frozenset(
    {
        "empty_file",  # zero bytes, or nothing but whitespace
        "header_only",  # a header / schema but no data rows
        "bad_encoding",  # CSV bytes that are not UTF-8
        "corrupt_file",  # a Parquet file pyarrow cannot open
        "unsupported_format",  # neither CSV nor Parquet
        "missing_columns",  # a column the caller asked for is not in the file
        "extra_columns",  # current data has columns the reference lacks
        "schema_mismatch",  # same column, different type between reference and current
        "non_numeric",  # a numeric feature holds a value that is not a number
        "all_missing",  # a column with no value at all
        "missing_values",  # NaN / empty cells where a value is required (labels)
        "labels_not_binary",  # a binary metric got more than two label values
        "length_mismatch",  # two arrays that must align do not
        "unsupported_type",  # e.g. a datetime column used as a drift feature
        "too_many_categories",  # categorical feature too wide for a chi-squared test
        "too_large",  # the data would not fit the memory budget of the detector
        "invalid_latency",  # latency figures that are not non-negative numbers
    }
)


class DataError(Exception):
    """A dataset cannot be used for the requested check.

    ``code`` is a short stable snake_case identifier (see ``DATA_ERROR_CODES``)
    for programs; ``message`` is a sentence for a data scientist that names the
    column, the offending value and what to do about it. ``details`` holds the
    same facts as structured data (column, row, value...) so an API can return
    them without parsing the message.
    """

    def __init__(self, code: str, message: str, **details: Any) -> None:
        if code not in DATA_ERROR_CODES:
            # A typo here would silently break clients that branch on codes.
            raise ValueError(f"unknown DataError code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message
        self.details: dict[str, Any] = details

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for API error bodies and stored failed-run records."""
        return {"code": self.code, "message": self.message, "details": self.details}


class DependencyError(RuntimeError):
    """A library the detector needs cannot be imported in this environment.

    Kept apart from ``DataError`` on purpose: it is an operator problem (a
    broken install), not something the person who uploaded the data can fix,
    so it must surface as a server error, not a 4xx.
    """
