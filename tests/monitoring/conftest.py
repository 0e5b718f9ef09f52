"""Fixtures for the report tests: storage in a temporary folder, generated datasets, uploads."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import pytest
from rest_framework.test import APIClient


@pytest.fixture
def storage_dir(tmp_path: Path, settings: Any) -> Path:
    """Uploaded files go to this test's own folder, never the developer's var/storage."""
    settings.STORAGE_DIR = tmp_path / "storage"
    return settings.STORAGE_DIR


def stored_files(root: Path) -> list[Path]:
    """Every regular file under the storage folder (staging included)."""
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def frame_bytes(frame: pd.DataFrame, fmt: str) -> bytes:
    buf = io.BytesIO()
    if fmt == "parquet":
        frame.to_parquet(buf, index=False)
    else:
        frame.to_csv(buf, index=False)
    return buf.getvalue()


def drift_frames(rows: int = 400, *, shift: float = 0.0, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "age": rng.normal(40 + shift * 10, 10, rows).round(2),
        "income": rng.normal(50_000, 8_000, rows).round(0),
        "region": rng.choice(["north", "south", "east"], rows),
    })


def scored_frame(rows: int = 300, *, seed: int = 2) -> pd.DataFrame:
    """Binary labels and predictions with a sensitive attribute and a probability score."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, rows)
    flip = rng.random(rows) < 0.2
    pred = np.where(flip, 1 - label, label)
    return pd.DataFrame({
        "label": label,
        "pred": pred,
        "score": np.clip(pred * 0.6 + rng.random(rows) * 0.4, 0, 1).round(4),
        "gender": rng.choice(["f", "m"], rows),
    })


@pytest.fixture
def upload(client_for: Callable[[str], APIClient], storage_dir: Path) -> Callable[..., Any]:
    """POST a file to the upload endpoint as ``who`` (default: the alpha pipeline)."""

    def send(content: bytes, filename: str, *, name: str = "data", who: str = "pipeline", **fields: Any) -> Any:
        file = io.BytesIO(content)
        file.name = filename
        return client_for(who).post("/api/v1/datasets/upload/", {"file": file, "name": name, **fields},
                                    format="multipart")

    return send


@pytest.fixture
def uploaded(upload: Callable[..., Any]) -> Callable[..., int]:
    """Upload a DataFrame and return the new dataset's id (asserting it was accepted)."""

    def make(frame: pd.DataFrame, name: str, fmt: str = "csv") -> int:
        response = upload(frame_bytes(frame, fmt), f"{name}.{fmt}", name=name)
        assert response.status_code == 201, response.json()
        return response.json()["id"]

    return make
