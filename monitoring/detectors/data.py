"""Reading datasets for the detectors, with errors a data scientist can act on.

Datasets arrive as CSV or Parquet files uploaded by pipelines. They can be
large (millions of rows), so nothing here loads a whole file unless a
detector needs whole columns in memory (a two-sample KS test does); schema
inference, missing-value counts and the bias counts stream through the file
in bounded chunks. Every way a file can be unusable is turned into a
``DataError`` whose message names the column, the value and the row.

pyarrow is imported lazily: Parquet support must not slow down (or, with a
broken install, break) CSV-only callers and module import.
"""

from __future__ import annotations

import codecs
import difflib
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Literal, TypeAlias

import numpy as np
import pandas as pd

from .errors import DataError, DependencyError

PathLike: TypeAlias = str | os.PathLike[str]
FileFormat: TypeAlias = Literal["csv", "parquet"]
ColumnType: TypeAlias = Literal["numeric", "categorical", "boolean", "datetime"]
#: How ``load_columns`` / ``iter_chunks`` should convert a column:
#: "float" -> float64 with NaN for missing (non-numbers raise ``non_numeric``);
#: "object" -> Python values / strings, ``None`` or NaN for missing.
ColumnDtype: TypeAlias = Literal["float", "object"]
Schema: TypeAlias = dict[str, Any]

#: Rows per chunk when streaming. 2**18 rows of a few columns is a few MB:
#: large enough that per-chunk overhead is negligible, small enough that
#: memory stays flat whatever the file size.
DEFAULT_CHUNK_ROWS: Final[int] = 262_144
#: Upper bound on what a detector may hold in memory for whole columns.
#: The machines have 24 GiB; 4 GiB leaves room for the copies the statistical
#: tests make and for other work on the same worker.
DEFAULT_MAX_BYTES: Final[int] = 4 * 1024**3

CSV_SUFFIXES: Final[frozenset[str]] = frozenset({".csv"})
PARQUET_SUFFIXES: Final[frozenset[str]] = frozenset({".parquet", ".pq"})
_PARQUET_MAGIC: Final[bytes] = b"PAR1"
# pandas writes these for non-default indexes; they are not dataset columns.
_PANDAS_INDEX_PREFIX: Final[str] = "__index_level_"


# --------------------------------------------------------------------------
# Format detection and opening
# --------------------------------------------------------------------------


def _name(path: PathLike) -> str:
    """File name for messages: the full server path means nothing to the uploader."""
    return Path(path).name


def detect_format(path: PathLike) -> FileFormat:
    """Tell CSV from Parquet by extension, falling back to Parquet's magic bytes.

    Uploads sometimes lose their extension; a Parquet file is still
    recognisable by the ``PAR1`` marker, while anything else without a known
    extension is refused rather than guessed at.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"dataset file not found: {p}")
    if p.stat().st_size == 0:
        raise DataError(
            "empty_file",
            f"'{p.name}' is empty (0 bytes). Upload the exported dataset again; "
            "the export or the upload probably failed.",
            file=p.name,
        )
    suffix = p.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    if suffix in CSV_SUFFIXES:
        return "csv"
    with open(p, "rb") as fh:
        head = fh.read(4)
    if head == _PARQUET_MAGIC:
        return "parquet"
    raise DataError(
        "unsupported_format",
        f"'{p.name}' is neither CSV nor Parquet (extension {suffix or 'none'!r}). "
        "Save the dataset as .csv (UTF-8, comma-separated, one header row) or .parquet.",
        file=p.name,
        extension=suffix,
    )


def _pyarrow() -> tuple[Any, Any]:
    """Import pyarrow on first Parquet use; a broken install is an operator error."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:  # includes pyarrow's own NumPy-version guard
        raise DependencyError(
            f"Parquet support needs pyarrow, which cannot be imported here: {exc}"
        ) from exc
    return pa, pq


def _open_parquet(path: PathLike) -> Any:
    """Open a Parquet file, turning pyarrow's failures into ``corrupt_file``."""
    pa, pq = _pyarrow()
    try:
        return pq.ParquetFile(os.fspath(path))
    except (pa.ArrowException, OSError) as exc:
        raise DataError(
            "corrupt_file",
            f"'{_name(path)}' cannot be read as Parquet ({exc}). The file is truncated or "
            "is not Parquet; export it again (e.g. pandas DataFrame.to_parquet).",
            file=_name(path),
        ) from exc


def _parquet_column_names(pf: Any) -> list[str]:
    """Data columns of a Parquet file, without pandas' stored index columns."""
    return [n for n in pf.schema_arrow.names if not n.startswith(_PANDAS_INDEX_PREFIX)]


def _csv_error(path: PathLike, exc: Exception) -> DataError:
    """Map pandas' CSV reading exceptions to ``DataError``s."""
    if isinstance(exc, UnicodeDecodeError):
        return _encoding_error(path)
    if isinstance(exc, pd.errors.EmptyDataError):
        return DataError(
            "empty_file",
            f"'{_name(path)}' has no header and no data (only blank lines). "
            "Export the dataset again with a header row.",
            file=_name(path),
        )
    return DataError(
        "corrupt_file",
        f"'{_name(path)}' is not a well-formed CSV file: {exc}. Check the quoting and "
        "that every row has as many fields as the header.",
        file=_name(path),
    )


def _encoding_error(path: PathLike) -> DataError:
    """Build a ``bad_encoding`` error that points at the first non-UTF-8 byte.

    pandas only says "can't decode byte 0xe9 in position 1234" relative to an
    internal buffer; the person fixing the file needs the line number. We
    re-scan the file incrementally (only on this error path) to find it.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    newlines = 0
    block_start = 0
    detail: dict[str, Any] = {"file": _name(path)}
    where = ""
    with open(path, "rb") as fh:
        while True:
            block = fh.read(1 << 20)
            final = not block
            try:
                decoder.decode(block, final=final)
            except UnicodeDecodeError as exc:
                data = exc.object
                pending = len(data) - len(block)  # bytes carried over from the previous block
                offset = block_start - pending + exc.start
                line = 1 + newlines + data[: exc.start].count(b"\n")
                bad = data[exc.start : exc.start + 1]
                line_start = data.rfind(b"\n", 0, exc.start) + 1
                context = data[line_start : exc.start + 12].split(b"\n")[0]
                shown = context.decode("utf-8", errors="backslashreplace")
                detail.update(line=line, byte_offset=offset, byte=f"0x{bad.hex().upper()}")
                where = f" at line {line} (byte offset {offset}): byte 0x{bad.hex().upper()} in {shown!r}"
                break
            if final:
                break
            newlines += block.count(b"\n")
            block_start += len(block)
    return DataError(
        "bad_encoding",
        f"'{_name(path)}' is not UTF-8 text{where}. It was probably saved as Latin-1 / "
        "Windows-1252 (typical of Excel exports). Re-save it as UTF-8, e.g. "
        "`iconv -f latin1 -t utf-8 in.csv > out.csv` or "
        "`df.to_csv('out.csv', index=False, encoding='utf-8')`.",
        **detail,
    )


def _header_only(path: PathLike, columns: Sequence[str]) -> DataError:
    return DataError(
        "header_only",
        f"'{_name(path)}' has column names ({', '.join(map(str, list(columns)[:10]))}"
        f"{', ...' if len(columns) > 10 else ''}) but no data rows. Export the data "
        "itself, not just the header / schema.",
        file=_name(path),
    )


def _csv_header(path: PathLike) -> list[str]:
    """Column names of a CSV file, reading only its first line."""
    try:
        header = pd.read_csv(path, nrows=0, encoding="utf-8-sig")
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise _csv_error(path, exc) from exc
    return [str(c) for c in header.columns]


def column_names(path: PathLike) -> list[str]:
    """Column names of a dataset without reading its rows."""
    if detect_format(path) == "parquet":
        return _parquet_column_names(_open_parquet(path))
    return _csv_header(path)


# --------------------------------------------------------------------------
# Column checks
# --------------------------------------------------------------------------


def _closest_name(wanted: str, names: Sequence[str]) -> str | None:
    """The real column a mistyped name most likely meant: same name in another case,
    a near spelling, or a name that contains / is contained in it ("pred" for "prediction")."""
    lowered = {n.lower(): n for n in names}
    if wanted.lower() in lowered:
        return lowered[wanted.lower()]
    close = difflib.get_close_matches(wanted.lower(), list(lowered), n=1, cutoff=0.6)
    if close:
        return lowered[close[0]]
    contained = [n for n in names if len(n) >= 3 and (n.lower() in wanted.lower() or wanted.lower() in n.lower())]
    return contained[0] if contained else None


def require_columns(
    available: Sequence[str] | Schema, required: Iterable[str], *, file: str = "the dataset"
) -> None:
    """Raise ``missing_columns`` naming every absent column and the nearest real name.

    A typo in a column name ("gender" vs "Gender") is the most common cause,
    so each missing name comes with close matches when there are any.
    """
    names = [c["name"] for c in available["columns"]] if isinstance(available, dict) else list(available)
    present = set(names)
    missing = [c for c in dict.fromkeys(required) if c not in present]
    if not missing:
        return
    hints = []
    for col in missing:
        close = _closest_name(col, names)
        hints.append(f"'{col}'" + (f" (did you mean '{close}'?)" if close else ""))
    shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
    raise DataError(
        "missing_columns",
        f"{file} has no column {', '.join(hints)}. Its columns are: {shown}. "
        "Fix the column name in the request or add the column to the data.",
        file=file,
        missing=missing,
        available=names,
    )


def check_same_schema(
    reference: Schema, current: Schema, *, columns: Sequence[str] | None = None
) -> None:
    """Require the current dataset to have the reference's columns and types.

    Comparing distributions of columns whose meaning changed (a numeric score
    now exported as text, a new column) would produce a confident but wrong
    drift report, so mismatches are refused. With ``columns`` only those
    columns are compared and extra columns elsewhere are allowed.
    """
    ref_types = {c["name"]: c["type"] for c in reference["columns"]}
    cur_types = {c["name"]: c["type"] for c in current["columns"]}
    wanted = list(columns) if columns is not None else list(ref_types)
    missing_ref = [c for c in wanted if c not in ref_types]
    if missing_ref:
        require_columns(list(ref_types), missing_ref, file="the reference dataset")
    missing = [c for c in wanted if c not in cur_types]
    if missing:
        require_columns(list(cur_types), missing, file="the current dataset")
    if columns is None:
        extra = [c for c in cur_types if c not in ref_types]
        if extra:
            raise DataError(
                "extra_columns",
                f"the current dataset has columns the reference lacks: {', '.join(map(repr, extra))}. "
                "Drop them, or name the features to compare explicitly.",
                extra=extra,
            )
    mismatched = [
        {"column": c, "reference": ref_types[c], "current": cur_types[c]}
        for c in wanted
        if ref_types[c] != cur_types[c]
    ]
    if mismatched:
        desc = "; ".join(f"'{m['column']}' is {m['reference']} in the reference but {m['current']} in the current data" for m in mismatched)
        raise DataError(
            "schema_mismatch",
            f"reference and current data disagree on column types: {desc}. "
            "Export both with the same schema (same types for the same columns).",
            mismatched=mismatched,
        )


def check_not_all_missing(schema: Schema, columns: Iterable[str], *, file: str = "the dataset") -> None:
    """Refuse columns that have no value at all: no statistic can be computed on them."""
    by_name = {c["name"]: c for c in schema["columns"]}
    empty = [c for c in columns if c in by_name and by_name[c]["missing"] >= schema["rows"]]
    if empty:
        raise DataError(
            "all_missing",
            f"{file}: column {', '.join(map(repr, empty))} has no values in any of its "
            f"{schema['rows']} rows. Fix the export, or leave the column out of the check.",
            file=file,
            columns=empty,
        )


def find_non_numeric(
    path: PathLike, column: str, *, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> dict[str, Any] | None:
    """Find the first value of ``column`` that is present but not a number.

    Returns ``{"row": r, "value": v, "count": n}`` (``row`` 0-based among data
    rows, ``count`` = all such values) or ``None``. Streams the column, so it
    works on files of any size.
    """
    first: dict[str, Any] | None = None
    count = 0
    for chunk in iter_chunks(path, [column], chunk_rows=chunk_rows):
        series = chunk[column]
        if pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
            continue
        converted = pd.to_numeric(series, errors="coerce")
        bad = converted.isna().to_numpy() & series.notna().to_numpy()
        n_bad = int(bad.sum())
        if n_bad:
            count += n_bad
            if first is None:
                pos = int(np.flatnonzero(bad)[0])
                first = {"row": int(chunk.index[pos]), "value": series.iloc[pos]}
    if first is None:
        return None
    first["count"] = count
    return first


def check_numeric(
    path: PathLike, columns: Iterable[str], *, schema: Schema | None = None,
    file: str | None = None, hint: str = "",
) -> None:
    """Raise ``non_numeric`` for the first listed column holding a non-number.

    Only columns that the schema does not already type as numeric/boolean
    are scanned: a numeric Parquet column cannot hold text, and a CSV column
    that pandas parsed as numbers in every chunk cannot either.
    """
    schema = schema or infer_schema(path)
    types = {c["name"]: c["type"] for c in schema["columns"]}
    file = file or _name(path)
    for col in columns:
        if types.get(col) in ("numeric", "boolean"):
            continue
        found = find_non_numeric(path, col)
        if found is None:
            continue
        row = found["row"]
        line = f" (line {row + 2} of the CSV, counting the header)" if schema.get("format") == "csv" else ""
        raise DataError(
            "non_numeric",
            f"{file}: numeric column '{col}' holds non-numeric value {found['value']!r} at data row "
            f"{row}{line}; {found['count']} value(s) in that column are not numbers. Fix or blank "
            f"those cells{hint}.",
            file=file,
            column=col,
            row=row,
            value=str(found["value"]),
            count=found["count"],
        )


# --------------------------------------------------------------------------
# Schema inference
# --------------------------------------------------------------------------


def _arrow_kind(pa: Any, t: Any) -> ColumnType:
    """Map an Arrow type to the detector's four column kinds."""
    types = pa.types
    if types.is_dictionary(t):
        return "categorical"  # explicitly encoded as categories by the writer
    if types.is_boolean(t):
        return "boolean"
    if types.is_integer(t) or types.is_floating(t) or types.is_decimal(t) or types.is_null(t):
        # An all-null column is typed like an all-empty CSV column (float NaN);
        # check_not_all_missing reports it before its type matters.
        return "numeric"
    if types.is_timestamp(t) or types.is_date(t) or types.is_time(t):
        return "datetime"
    return "categorical"


def _series_kind(series: pd.Series) -> ColumnType | None:
    """Kind of one CSV chunk's column; ``None`` when the chunk has no value to judge by."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_numeric_dtype(dtype):
        return None if series.isna().all() else "numeric"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    values = series.dropna()
    if values.empty:
        return None
    inferred = pd.api.types.infer_dtype(values, skipna=True)
    if inferred == "boolean":
        return "boolean"
    if inferred in ("integer", "floating", "mixed-integer-float", "decimal"):
        return "numeric"
    if inferred == "string":
        uniques = pd.unique(values)
        try:
            pd.to_datetime(uniques, format="ISO8601")
        except (ValueError, TypeError, OverflowError):
            return "categorical"
        return "datetime"
    return "categorical"


def _merge_kind(old: ColumnType | None, new: ColumnType | None) -> ColumnType | None:
    """Combine chunk kinds: a column whose chunks disagree holds mixed values, i.e. text."""
    if old is None:
        return new
    if new is None or new == old:
        return old
    return "categorical"


def infer_schema(path: PathLike, *, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Schema:
    """Column names, kinds and missing counts, plus the row count, without loading the file.

    Parquet: types come from the file's Arrow schema and row/null counts from
    its footer metadata (row-group statistics); a row group without null
    statistics has just that column chunk read. CSV: pandas reads the file in
    ``chunk_rows`` chunks; a column whose chunks parse to different kinds is
    reported as categorical (it holds text). Result::

        {"format": "csv"|"parquet", "rows": int,
         "columns": [{"name": str, "type": "numeric"|"categorical"|"boolean"|"datetime",
                      "missing": int}, ...]}

    Raises ``DataError`` for empty, header-only, badly encoded or corrupt files.
    """
    fmt = detect_format(path)
    if fmt == "parquet":
        return _infer_parquet_schema(path)
    return _infer_csv_schema(path, chunk_rows)


def _infer_parquet_schema(path: PathLike) -> Schema:
    pa, _ = _pyarrow()
    pf = _open_parquet(path)
    meta = pf.metadata
    names = _parquet_column_names(pf)
    rows = int(meta.num_rows)
    if rows == 0:
        raise _header_only(path, names)
    arrow_schema = pf.schema_arrow
    missing = dict.fromkeys(names, 0)
    for rg_index in range(meta.num_row_groups):
        rg = meta.row_group(rg_index)
        by_path = {rg.column(j).path_in_schema: rg.column(j) for j in range(rg.num_columns)}
        for name in names:
            chunk_meta = by_path.get(name)
            stats = chunk_meta.statistics if chunk_meta is not None else None
            if stats is not None and stats.has_null_count:
                missing[name] += int(stats.null_count)
            else:  # no statistics written (or a nested column): count this chunk directly
                table = pf.read_row_group(rg_index, columns=[name])
                missing[name] += int(table.column(0).null_count)
    columns = [
        {"name": n, "type": _arrow_kind(pa, arrow_schema.field(n).type), "missing": missing[n]}
        for n in names
    ]
    return {"format": "parquet", "rows": rows, "columns": columns}


def _infer_csv_schema(path: PathLike, chunk_rows: int) -> Schema:
    names = _csv_header(path)
    kinds: dict[str, ColumnType | None] = dict.fromkeys(names)
    missing = dict.fromkeys(names, 0)
    rows = 0
    for chunk in _csv_chunks(path, None, chunk_rows, None):
        rows += len(chunk)
        for name in names:
            series = chunk[name]
            missing[name] += int(series.isna().sum())
            if kinds[name] != "categorical":  # categorical is final; skip the work
                kinds[name] = _merge_kind(kinds[name], _series_kind(series))
    if rows == 0:
        raise _header_only(path, names)
    columns = [{"name": n, "type": kinds[n] or "numeric", "missing": missing[n]} for n in names]
    return {"format": "csv", "rows": rows, "columns": columns}


# --------------------------------------------------------------------------
# Streaming and loading
# --------------------------------------------------------------------------


def _csv_chunks(
    path: PathLike,
    columns: Sequence[str] | None,
    chunk_rows: int,
    dtypes: Mapping[str, ColumnDtype] | None,
) -> Iterator[pd.DataFrame]:
    """Raw pandas chunks of a CSV file with encoding/parse errors mapped to ``DataError``.

    "object" columns are read as text so that a value like ``1`` means the
    same group in every chunk (pandas infers types per chunk otherwise).
    """
    read_dtype = {c: str for c, d in (dtypes or {}).items() if d == "object"}
    try:
        reader = pd.read_csv(
            path,
            usecols=list(columns) if columns is not None else None,
            chunksize=chunk_rows,
            encoding="utf-8-sig",  # tolerate the BOM Excel puts in front of the header
            dtype=read_dtype or None,
        )
        with reader:
            for chunk in reader:
                yield chunk if columns is None else chunk[list(columns)]
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise _csv_error(path, exc) from exc


def _to_float(path: PathLike, column: str, series: pd.Series) -> np.ndarray:
    """Convert one column to float64 (NaN = missing), refusing values that are not numbers."""
    if pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    converted = pd.to_numeric(series, errors="coerce")
    bad = converted.isna().to_numpy() & series.notna().to_numpy()
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        row = int(series.index[pos])
        value = series.iloc[pos]
        raise DataError(
            "non_numeric",
            f"'{_name(path)}': numeric column '{column}' holds non-numeric value {value!r} at data "
            f"row {row}; {int(bad.sum())} value(s) nearby are not numbers. Fix or blank those cells.",
            file=_name(path),
            column=column,
            row=row,
            value=str(value),
        )
    return converted.to_numpy(dtype=np.float64, na_value=np.nan)


def _convert_frame(
    path: PathLike, frame: pd.DataFrame, dtypes: Mapping[str, ColumnDtype] | None
) -> pd.DataFrame:
    """Apply the requested per-column conversions to one chunk."""
    for col, kind in (dtypes or {}).items():
        if col not in frame.columns:
            continue
        if kind == "float":
            frame[col] = _to_float(path, col, frame[col])
        elif kind == "object":
            frame[col] = frame[col].astype(object)
    return frame


def iter_chunks(
    path: PathLike,
    columns: Sequence[str],
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    *,
    dtypes: Mapping[str, ColumnDtype] | None = None,
) -> Iterator[pd.DataFrame]:
    """Yield ``columns`` of the dataset as DataFrames of at most ``chunk_rows`` rows.

    Memory stays bounded by one chunk whatever the file size, which is what
    lets bias metrics run on data larger than memory. The index of each chunk
    is the 0-based data-row number in the file, so errors can point at rows.
    Parquet is read with pyarrow's ``iter_batches``; CSV with pandas'
    ``chunksize``. Raises ``missing_columns`` before reading any row, and
    ``header_only`` if the file has no rows.
    """
    if chunk_rows <= 0:
        raise ValueError("chunk_rows must be positive")
    columns = list(columns)
    fmt = detect_format(path)
    names = column_names(path)
    require_columns(names, columns, file=f"'{_name(path)}'")
    seen_rows = 0
    if fmt == "parquet":
        pf = _open_parquet(path)
        for batch in pf.iter_batches(batch_size=chunk_rows, columns=columns):
            # ignore_metadata: a pandas-written file's stored RangeIndex describes the whole
            # file, not this batch; we set the row-number index ourselves.
            frame = batch.to_pandas(ignore_metadata=True)
            frame.index = pd.RangeIndex(seen_rows, seen_rows + len(frame))
            seen_rows += len(frame)
            yield _convert_frame(path, frame[columns], dtypes)
    else:
        for frame in _csv_chunks(path, columns, chunk_rows, dtypes):
            seen_rows += len(frame)
            yield _convert_frame(path, frame, dtypes)
    if seen_rows == 0:
        raise _header_only(path, names)


def _check_budget(path: PathLike, rows: int, n_columns: int, max_bytes: int) -> None:
    """Refuse loads that would not fit the detector's memory budget, before reading."""
    needed = rows * n_columns * 8
    if needed > max_bytes:
        raise DataError(
            "too_large",
            f"'{_name(path)}' has {rows} rows x {n_columns} columns (~{needed / 2**30:.1f} GiB in "
            f"memory), over the {max_bytes / 2**30:.1f} GiB limit for this check. Sample the rows "
            "(e.g. a random 10%) or check fewer columns.",
            file=_name(path),
            rows=rows,
            columns=n_columns,
            needed_bytes=needed,
            max_bytes=max_bytes,
        )


def _is_numberlike(pa: Any, t: Any) -> bool:
    """Arrow types that convert to float64 exactly as pandas would (NaN for null)."""
    return bool(
        pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
        or pa.types.is_decimal(t) or pa.types.is_null(t)
    )


def _arrow_chunk_to_float(pa: Any, chunk: Any) -> np.ndarray:
    """One Arrow array of a number-like type as float64, NaN for null.

    A float64 chunk without nulls is returned as a zero-copy view of the
    Arrow buffer; the cast and the null fill only run when they change
    something (each would otherwise allocate a copy of the column).
    """
    if not pa.types.is_float64(chunk.type):
        chunk = chunk.cast(pa.float64())
    if chunk.null_count:
        chunk = chunk.fill_null(float("nan"))
    return chunk.to_numpy(zero_copy_only=False)


def _parquet_column(path: PathLike, pf: Any, name: str, kind: ColumnDtype | None) -> np.ndarray:
    """Read one whole Parquet column into NumPy with the requested conversion."""
    pa, _ = _pyarrow()
    column = pf.read(columns=[name]).column(0)
    if kind == "float" and _is_numberlike(pa, column.type):
        parts = [_arrow_chunk_to_float(pa, chunk) for chunk in column.chunks]
        if not parts:
            return np.empty(0, dtype=np.float64)
        return np.concatenate(parts) if len(parts) > 1 else np.array(parts[0], dtype=np.float64)
    series = column.to_pandas()
    if kind == "float":
        return _to_float(path, name, series)
    if kind == "object":
        return series.to_numpy(dtype=object)
    return series.to_numpy()


def _fill_parquet_column(path: PathLike, pf: Any, name: str, out: np.ndarray) -> None:
    """Decode one Parquet column straight into ``out`` (a column of the result matrix).

    Each Arrow chunk is viewed zero-copy where possible and copied once, into
    its rows of ``out``: no concatenated intermediate column.
    """
    pa, _ = _pyarrow()
    column = pf.read(columns=[name]).column(0)
    if not _is_numberlike(pa, column.type):  # text: convert (and report non-numbers) via pandas
        values = _to_float(path, name, column.to_pandas())
        if len(values) != len(out):
            raise _changed_while_reading(path, len(out), len(values))
        out[:] = values
        return
    start = 0
    for chunk in column.chunks:
        stop = start + len(chunk)
        if stop > len(out):
            raise _changed_while_reading(path, len(out), len(column))
        out[start:stop] = _arrow_chunk_to_float(pa, chunk)
        start = stop
    if start != len(out):
        raise _changed_while_reading(path, len(out), start)


def _changed_while_reading(path: PathLike, expected: int, got: int) -> DataError:
    return DataError(
        "corrupt_file",
        f"'{_name(path)}' changed while it was being read ({expected} rows, then {got}). Retry.",
        file=_name(path),
    )


def load_columns(
    path: PathLike,
    columns: Sequence[str],
    *,
    dtypes: Mapping[str, ColumnDtype] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    schema: Schema | None = None,
) -> dict[str, np.ndarray]:
    """Load whole columns as NumPy arrays, for detectors that need all values at once.

    ``dtypes`` picks a conversion per column ("float": float64 with NaN for
    missing, refusing non-numbers with ``non_numeric``; "object": Python
    values); other columns keep the dtype pandas gives them. Parquet columns
    are read one at a time so the peak is one column over the result; CSV is
    read in chunks and concatenated. ``too_large`` is raised up front when
    the result would exceed ``max_bytes``.
    """
    columns = list(columns)
    schema = schema or infer_schema(path)
    require_columns(schema, columns, file=f"'{_name(path)}'")
    _check_budget(path, schema["rows"], len(columns), max_bytes)
    if schema["format"] == "parquet":
        pf = _open_parquet(path)
        return {c: _parquet_column(path, pf, c, (dtypes or {}).get(c)) for c in columns}
    parts: dict[str, list[np.ndarray]] = {c: [] for c in columns}
    for chunk in iter_chunks(path, columns, dtypes=dtypes):
        for c in columns:
            parts[c].append(chunk[c].to_numpy())
    return {c: np.concatenate(parts[c]) if len(parts[c]) > 1 else parts[c][0] for c in columns}


def load_numeric_matrix(
    path: PathLike,
    columns: Sequence[str],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    schema: Schema | None = None,
) -> np.ndarray:
    """Load numeric columns into one float64 matrix of shape (rows, len(columns)).

    The matrix is allocated once, column-major (Fortran order), and filled
    column by column (Parquet: each column decoded and copied once, into its
    contiguous slot) or chunk by chunk (CSV), so the peak is the matrix plus
    one column or chunk, not two copies of the data: the drift benchmark holds
    us to 3x the input. Column-major also suits the consumers, which work one
    feature (column) at a time. Missing values become NaN; text raises
    ``non_numeric``.
    """
    columns = list(columns)
    schema = schema or infer_schema(path)
    require_columns(schema, columns, file=f"'{_name(path)}'")
    rows = int(schema["rows"])
    _check_budget(path, rows, len(columns), max_bytes)
    out = np.empty((rows, len(columns)), dtype=np.float64, order="F")
    if schema["format"] == "parquet":
        pf = _open_parquet(path)
        for j, c in enumerate(columns):
            _fill_parquet_column(path, pf, c, out[:, j])
        return out
    start = 0
    for chunk in iter_chunks(path, columns, dtypes=dict.fromkeys(columns, "float")):
        stop = start + len(chunk)
        if stop > rows:
            raise _changed_while_reading(path, rows, stop)
        out[start:stop] = chunk.to_numpy(dtype=np.float64)
        start = stop
    if start != rows:  # the file changed between schema inference and loading
        raise _changed_while_reading(path, rows, start)
    return out
