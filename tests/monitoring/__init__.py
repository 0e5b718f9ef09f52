"""Tests of the detector core (monitoring.detectors): pure Python, no database, no Django.

Small helpers shared by the test modules live here so each test reads as
"write this file, run the detector, expect this result".

pyarrow is a locked dependency, so the Parquet tests are never skipped: if it
cannot be imported they fail, which is the point (a broken Parquet install must
not pass silently).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd


def write_bytes(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def write_csv(tmp_path: Path, name: str, frame: pd.DataFrame | dict[str, Any]) -> Path:
    path = tmp_path / name
    pd.DataFrame(frame).to_csv(path, index=False)
    return path


def write_parquet(tmp_path: Path, name: str, frame: pd.DataFrame | dict[str, Any], **kwargs: Any) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / name
    table = pa.Table.from_pandas(pd.DataFrame(frame), preserve_index=False)
    pq.write_table(table, path, **kwargs)
    return path
