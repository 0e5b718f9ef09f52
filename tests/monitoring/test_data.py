"""Reading datasets: formats, schema inference, streaming, and every bad-file case."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitoring.detectors import data
from monitoring.detectors.errors import DataError, DependencyError
from tests.monitoring import write_bytes, write_csv, write_parquet


def _code(exc_info: pytest.ExceptionInfo[DataError]) -> str:
    return exc_info.value.code


# --------------------------------------------------------------------- formats


def test_detect_format_by_extension_and_magic(tmp_path: Path) -> None:
    assert data.detect_format(write_bytes(tmp_path, "a.csv", b"x\n1\n")) == "csv"
    assert data.detect_format(write_bytes(tmp_path, "a.PARQUET", b"PAR1....PAR1")) == "parquet"
    assert data.detect_format(write_bytes(tmp_path, "upload", b"PAR1....PAR1")) == "parquet"


def test_unknown_format_is_refused_with_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(DataError) as exc:
        data.infer_schema(write_bytes(tmp_path, "data.xlsx", b"PK\x03\x04 not a csv"))
    assert _code(exc) == "unsupported_format"
    assert ".csv" in exc.value.message and ".parquet" in exc.value.message


def test_empty_file(tmp_path: Path) -> None:
    for name, content in (("a.csv", b""), ("b.parquet", b""), ("c.csv", b"\n\n  \n")):
        with pytest.raises(DataError) as exc:
            data.infer_schema(write_bytes(tmp_path, name, content))
        assert _code(exc) == "empty_file", name


def test_header_only_csv(tmp_path: Path) -> None:
    path = write_bytes(tmp_path, "h.csv", b"age,income,label\n")
    with pytest.raises(DataError) as exc:
        data.infer_schema(path)
    assert _code(exc) == "header_only"
    assert "age" in exc.value.message
    with pytest.raises(DataError) as exc:
        list(data.iter_chunks(path, ["age"]))
    assert _code(exc) == "header_only"


def test_latin1_csv_names_the_line_and_byte(tmp_path: Path) -> None:
    content = "name,city\nAnn,Paris\nJos\u00e9,Montr\u00e9al\n".encode("latin-1")
    with pytest.raises(DataError) as exc:
        data.infer_schema(write_bytes(tmp_path, "l1.csv", content))
    err = exc.value
    assert err.code == "bad_encoding"
    assert err.details["line"] == 3
    assert err.details["byte"] == "0xE9"
    assert "UTF-8" in err.message and "iconv" in err.message


def test_latin1_byte_deep_in_a_large_file_is_found(tmp_path: Path) -> None:
    """The bad byte sits past pandas' first buffer and past the 1 MiB scan block."""
    rows = [f"{i},{i * 2}\n" for i in range(200_000)]
    body = "".join(rows).encode() + "199999,caf\u00e9\n".encode("latin-1")
    path = write_bytes(tmp_path, "big.csv", b"a,b\n" + body)
    with pytest.raises(DataError) as exc:
        data.infer_schema(path, chunk_rows=50_000)
    assert exc.value.code == "bad_encoding"
    assert exc.value.details["line"] == 200_002
    assert exc.value.details["byte_offset"] == path.read_bytes().index(b"\xe9")


def test_utf8_bom_does_not_corrupt_the_first_column_name(tmp_path: Path) -> None:
    path = write_bytes(tmp_path, "bom.csv", "\ufeffage,city\n1,Z\u00fcrich\n".encode("utf-8"))
    schema = data.infer_schema(path)
    assert [c["name"] for c in schema["columns"]] == ["age", "city"]


def test_malformed_csv_is_reported(tmp_path: Path) -> None:
    path = write_bytes(tmp_path, "bad.csv", b'a,b\n1,2\n3,"4\n')
    with pytest.raises(DataError) as exc:
        data.infer_schema(path)
    assert exc.value.code == "corrupt_file"


# ---------------------------------------------------------------------- schema


def test_infer_schema_csv_types_rows_and_missing(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        "s.csv",
        {
            "age": [31, 45, None, 22],
            "score": [0.1, 0.5, 0.7, 0.9],
            "sex": ["F", "M", "F", None],
            "member": [True, False, True, True],
            "seen": ["2024-01-02", "2024-02-03T10:00:00", None, "2024-03-01"],
            "empty": [None, None, None, None],
        },
    )
    schema = data.infer_schema(path)
    assert schema["format"] == "csv"
    assert schema["rows"] == 4
    assert schema["columns"] == [
        {"name": "age", "type": "numeric", "missing": 1},
        {"name": "score", "type": "numeric", "missing": 0},
        {"name": "sex", "type": "categorical", "missing": 1},
        {"name": "member", "type": "boolean", "missing": 0},
        {"name": "seen", "type": "datetime", "missing": 1},
        {"name": "empty", "type": "numeric", "missing": 4},
    ]


def test_infer_schema_csv_kind_is_consistent_across_chunks(tmp_path: Path) -> None:
    """Numbers for 50 rows then one text value: the column holds text, whatever the chunking."""
    values = [str(i) for i in range(50)] + ["n/a?"] + [None] * 10
    path = write_csv(tmp_path, "c.csv", {"x": values, "y": range(61)})
    for chunk_rows in (7, 50, 1000):
        types = {c["name"]: c["type"] for c in data.infer_schema(path, chunk_rows=chunk_rows)["columns"]}
        assert types == {"x": "categorical", "y": "numeric"}


def test_require_columns_suggests_the_close_name(tmp_path: Path) -> None:
    schema = data.infer_schema(write_csv(tmp_path, "r.csv", {"Gender": ["F"], "age": [3]}))
    with pytest.raises(DataError) as exc:
        data.require_columns(schema, ["gender", "age", "zip"], file="'r.csv'")
    err = exc.value
    assert err.code == "missing_columns"
    assert err.details["missing"] == ["gender", "zip"]
    assert "did you mean 'Gender'" in err.message


def test_check_same_schema(tmp_path: Path) -> None:
    ref = data.infer_schema(write_csv(tmp_path, "ref.csv", {"a": [1, 2], "b": ["x", "y"]}))
    extra = data.infer_schema(write_csv(tmp_path, "cur1.csv", {"a": [1, 2], "b": ["x", "y"], "c": [0, 1]}))
    fewer = data.infer_schema(write_csv(tmp_path, "cur2.csv", {"a": [1, 2]}))
    retyped = data.infer_schema(write_csv(tmp_path, "cur3.csv", {"a": [1, 2], "b": [3.5, 4.5]}))
    data.check_same_schema(ref, ref)
    with pytest.raises(DataError) as exc:
        data.check_same_schema(ref, extra)
    assert exc.value.code == "extra_columns" and exc.value.details["extra"] == ["c"]
    data.check_same_schema(ref, extra, columns=["a", "b"])  # extras allowed when columns are named
    with pytest.raises(DataError) as exc:
        data.check_same_schema(ref, fewer)
    assert exc.value.code == "missing_columns"
    with pytest.raises(DataError) as exc:
        data.check_same_schema(ref, retyped)
    assert exc.value.code == "schema_mismatch"
    assert exc.value.details["mismatched"] == [{"column": "b", "reference": "categorical", "current": "numeric"}]


def test_non_numeric_value_named_with_row(tmp_path: Path) -> None:
    values: list[object] = list(np.arange(30, dtype=float))
    values[23] = "12,5"  # a decimal comma: the classic locale export bug
    values[27] = "abc"
    path = write_csv(tmp_path, "n.csv", {"income": values})
    found = data.find_non_numeric(path, "income", chunk_rows=10)
    assert found == {"row": 23, "value": "12,5", "count": 2}
    with pytest.raises(DataError) as exc:
        data.check_numeric(path, ["income"])
    err = exc.value
    assert err.code == "non_numeric"
    assert err.details["column"] == "income" and err.details["row"] == 23 and err.details["value"] == "12,5"
    assert "line 25" in err.message  # header is line 1, data row 0 is line 2


def test_all_missing_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "m.csv", {"a": [1, 2, 3], "b": [None, None, None]})
    schema = data.infer_schema(path)
    data.check_not_all_missing(schema, ["a"])
    with pytest.raises(DataError) as exc:
        data.check_not_all_missing(schema, ["a", "b"], file="'m.csv'")
    assert exc.value.code == "all_missing" and exc.value.details["columns"] == ["b"]


# ------------------------------------------------------------------- streaming


def test_iter_chunks_bounded_and_indexed_by_row(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "i.csv", {"a": range(25), "b": range(25, 50), "c": ["x"] * 25})
    chunks = list(data.iter_chunks(path, ["c", "a"], chunk_rows=10))
    assert [len(c) for c in chunks] == [10, 10, 5]
    assert all(list(c.columns) == ["c", "a"] for c in chunks)
    assert list(pd.concat(chunks).index) == list(range(25))


def test_iter_chunks_checks_columns_before_reading(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "i.csv", {"a": [1]})
    with pytest.raises(DataError) as exc:
        next(data.iter_chunks(path, ["a", "nope"]))
    assert exc.value.code == "missing_columns"


def test_iter_chunks_object_columns_keep_their_text(tmp_path: Path) -> None:
    """'1' in one chunk and 'x' in another must not become int 1 and str 'x' groups."""
    path = write_csv(tmp_path, "o.csv", {"g": ["1", "2", "x", "1"]})
    values = [v for c in data.iter_chunks(path, ["g"], chunk_rows=2, dtypes={"g": "object"}) for v in c["g"]]
    assert values == ["1", "2", "x", "1"]


def test_load_columns_and_matrix(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "l.csv", {"a": [1.5, None, 3.0], "b": [1, 2, 3], "c": ["x", "y", None]})
    cols = data.load_columns(path, ["a", "c"], dtypes={"a": "float", "c": "object"})
    np.testing.assert_array_equal(cols["a"], [1.5, np.nan, 3.0])
    assert cols["c"][0] == "x" and pd.isna(cols["c"][2])
    matrix = data.load_numeric_matrix(path, ["b", "a"])
    assert matrix.shape == (3, 2) and matrix.dtype == np.float64
    np.testing.assert_array_equal(matrix[:, 0], [1, 2, 3])


def test_load_refuses_text_in_numeric_columns(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "t.csv", {"a": ["1", "2", "three"]})
    with pytest.raises(DataError) as exc:
        data.load_numeric_matrix(path, ["a"])
    assert exc.value.code == "non_numeric" and exc.value.details["value"] == "three"


def test_too_large_is_refused_before_loading(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "big.csv", {"a": range(100), "b": range(100)})
    with pytest.raises(DataError) as exc:
        data.load_numeric_matrix(path, ["a", "b"], max_bytes=1000)
    assert exc.value.code == "too_large"
    assert exc.value.details["needed_bytes"] == 1600


def test_data_error_is_json_ready() -> None:
    err = DataError("non_numeric", "column 'x' ...", column="x", row=3)
    assert err.to_dict() == {"code": "non_numeric", "message": "column 'x' ...", "details": {"column": "x", "row": 3}}
    assert str(err).startswith("[non_numeric]")
    with pytest.raises(ValueError):
        DataError("no_such_code", "typo in a code must not reach clients")


def test_broken_pyarrow_is_an_operator_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Parquet upload on a server with a broken pyarrow is a 5xx, not the uploader's fault."""
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # makes `import pyarrow` raise ImportError
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    path = write_bytes(tmp_path, "x.parquet", b"PAR1....PAR1")
    with pytest.raises(DependencyError):
        data.infer_schema(path)


# --------------------------------------------------------------------- parquet


def test_parquet_schema_from_metadata(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "age": pd.array([31, None, 22, 40], dtype="Int64"),
            "score": [0.1, 0.5, np.nan, 0.9],
            "sex": ["F", "M", None, "F"],
            "member": [True, False, True, True],
            "seen": pd.to_datetime(["2024-01-02", "2024-02-03", None, "2024-03-01"]),
            "grade": pd.Categorical(["a", "b", "a", "a"]),
        }
    )
    path = write_parquet(tmp_path, "s.parquet", frame, row_group_size=2)
    schema = data.infer_schema(path)
    assert schema["format"] == "parquet" and schema["rows"] == 4
    assert schema["columns"] == [
        {"name": "age", "type": "numeric", "missing": 1},
        {"name": "score", "type": "numeric", "missing": 1},
        {"name": "sex", "type": "categorical", "missing": 1},
        {"name": "member", "type": "boolean", "missing": 0},
        {"name": "seen", "type": "datetime", "missing": 1},
        {"name": "grade", "type": "categorical", "missing": 0},
    ]


def test_parquet_missing_counts_without_statistics(tmp_path: Path) -> None:
    path = write_parquet(tmp_path, "ns.parquet", {"a": [1.0, None, None]}, write_statistics=False)
    assert data.infer_schema(path)["columns"] == [{"name": "a", "type": "numeric", "missing": 2}]


def test_parquet_header_only_and_corrupt(tmp_path: Path) -> None:
    path = write_parquet(tmp_path, "h.parquet", pd.DataFrame({"a": pd.Series([], dtype=float)}))
    with pytest.raises(DataError) as exc:
        data.infer_schema(path)
    assert exc.value.code == "header_only"
    with pytest.raises(DataError) as exc:
        data.infer_schema(write_bytes(tmp_path, "c.parquet", b"this is not parquet at all"))
    assert exc.value.code == "corrupt_file"


def test_parquet_iter_chunks_and_loading(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": np.arange(25.0), "b": pd.array([1, None] * 12 + [3], dtype="Int64"), "t": ["1"] * 24 + ["x"]})
    path = write_parquet(tmp_path, "i.parquet", frame, row_group_size=8)
    chunks = list(data.iter_chunks(path, ["b", "a"], chunk_rows=10))
    assert [len(c) for c in chunks] == [10, 10, 5]
    assert list(pd.concat(chunks).index) == list(range(25))
    matrix = data.load_numeric_matrix(path, ["a", "b"])
    np.testing.assert_array_equal(matrix[:, 0], np.arange(25.0))
    assert np.isnan(matrix[1, 1]) and matrix[24, 1] == 3
    with pytest.raises(DataError) as exc:
        data.load_numeric_matrix(path, ["t"])
    assert exc.value.code == "non_numeric" and exc.value.details["row"] == 24


def test_parquet_matrix_converts_every_number_like_type(tmp_path: Path) -> None:
    """Each Arrow type lands in the float64 matrix as pandas would convert it, across row groups."""
    import decimal

    import pyarrow as pa
    import pyarrow.parquet as pq

    n = 10
    table = pa.table({
        "f64": pa.array(np.linspace(-1, 1, n)),
        "f32": pa.array([0.5, None] * (n // 2), type=pa.float32()),
        "i32": pa.array(list(range(n)), type=pa.int32()),
        "flag": pa.array([True, False, None, True, False] * 2),
        "dec": pa.array([decimal.Decimal("1.25")] * n, type=pa.decimal128(5, 2)),
        "none": pa.nulls(n),
    })
    path = tmp_path / "types.parquet"
    pq.write_table(table, path, row_group_size=3)  # 4 row groups: several Arrow chunks per column
    names = list(table.column_names)
    matrix = data.load_numeric_matrix(path, names)
    expected = pd.read_parquet(path).astype("float64").to_numpy()
    assert matrix.shape == (n, len(names)) and matrix.dtype == np.float64
    np.testing.assert_array_equal(matrix, expected)  # NaN == NaN for this comparison
    assert np.isnan(matrix[:, names.index("none")]).all()
    # load_columns' float conversion goes through the same per-chunk conversion
    cols = data.load_columns(path, names, dtypes=dict.fromkeys(names, "float"))
    for j, name in enumerate(names):
        np.testing.assert_array_equal(cols[name], expected[:, j])
