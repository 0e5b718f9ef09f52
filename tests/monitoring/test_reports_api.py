"""Reports through the API: uploads, requests, eager computation, bad data, isolation."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import pytest

from monitoring.models import Report
from registry.models import Dataset
from tests.monitoring.conftest import drift_frames, frame_bytes, scored_frame, stored_files

pytestmark = pytest.mark.django_db

REPORTS = "/api/v1/models/alpha-model/versions/1/reports/"


@pytest.fixture
def request_report(client_for: Callable[[str], Any], django_capture_on_commit_callbacks: Any) -> Callable[..., Any]:
    """POST a report request and run the on-commit enqueue (eager: the task runs in-process).

    Only the request's own callbacks run: on PostgreSQL ``audit_sequence`` re-registers itself
    while inside the test's transaction, so ``execute=True`` would loop forever.
    """
    from audits.services import audit_sequence

    def send(kind: str, datasets: dict[str, int], options: dict[str, Any] | None = None, *,
             who: str = "pipeline", url: str = REPORTS) -> Any:
        with django_capture_on_commit_callbacks() as callbacks:
            response = client_for(who).post(url, {"kind": kind, "datasets": datasets, "options": options or {}},
                                            format="json")
        for callback in callbacks:
            if callback is not audit_sequence:
                callback()
        return response

    return send


def _final(client: Any, response: Any) -> dict[str, Any]:
    assert response.status_code == 202, response.json()
    body = client.get(response.json()["links"]["self"]).json()
    assert body["status"] in ("succeeded", "failed"), body
    return body


# --- Uploads -------------------------------------------------------------------------------------

def test_upload_streams_to_storage_by_digest_and_records_schema(upload: Any, storage_dir: Path) -> None:
    content = frame_bytes(drift_frames(50), "csv")
    response = upload(content, "train.csv", name="train", data_categories="personal, phi", description="x")
    assert response.status_code == 201, response.json()
    body = response.json()
    sha = hashlib.sha256(content).hexdigest()
    assert body["sha256"] == sha and body["rows"] == 50 and body["size_bytes"] == len(content)
    assert body["storage_uri"] == (storage_dir / "datasets" / f"{sha}.csv").resolve().as_uri()
    assert body["data_categories"] == ["personal", "phi"]
    assert [c["name"] for c in body["schema"]["columns"]] == ["age", "income", "region"]
    assert stored_files(storage_dir) == [storage_dir / "datasets" / f"{sha}.csv"]


def test_upload_parquet(upload: Any, storage_dir: Path) -> None:
    content = frame_bytes(drift_frames(20), "parquet")
    response = upload(content, "train.parquet", name="train-pq")
    assert response.status_code == 201, response.json()
    assert response.json()["schema"]["format"] == "parquet"


@pytest.mark.parametrize(("content", "filename", "code"), [
    (b"", "empty.csv", "empty_file"),
    (b"a,b,c\n", "header.csv", "header_only"),
    ("name,city\nJos\xe9,K\xf6ln\n".encode("latin-1"), "latin.csv", "bad_encoding"),
    (b"hello world", "notes.txt", "unsupported_format"),
])
def test_unusable_uploads_are_refused_and_leave_nothing(upload: Any, storage_dir: Path, content: bytes,
                                                        filename: str, code: str) -> None:
    response = upload(content, filename, name="bad")
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["code"] == code and filename in error["message"]
    assert stored_files(storage_dir) == []
    assert not Dataset.objects.filter(name="bad").exists()


def test_upload_over_the_limit_is_413_and_deletes_the_partial_file(upload: Any, storage_dir: Path,
                                                                   settings: Any) -> None:
    settings.GOVAUDIT_MAX_UPLOAD_BYTES = 300 * 1024  # the handler writes 256 KiB chunks: one lands first
    response = upload(b"x,y\n" + b"1,2\n" * (350 * 256), "big.csv", name="big")
    assert response.status_code == 413, response.content
    assert response.json()["error"]["code"] == "too_large"
    assert "Parquet" in response.json()["error"]["message"]
    assert stored_files(storage_dir) == []
    settings.GOVAUDIT_MAX_UPLOAD_BYTES = 1000  # declared length far past the limit: refused up front
    assert upload(b"x\n" + b"1\n" * 50_000, "big.csv", name="big").status_code == 413
    assert stored_files(storage_dir) == [] and not Dataset.objects.filter(name="big").exists()


def test_upload_needs_register_dataset_and_a_file(upload: Any, client_for: Any, storage_dir: Path) -> None:
    assert upload(b"a\n1\n", "a.csv", who="viewer").status_code == 403
    response = client_for("pipeline").post("/api/v1/datasets/upload/", {"name": "x"}, format="multipart")
    assert response.status_code == 400 and response.json()["error"]["code"] == "file_required"
    assert stored_files(storage_dir) == []


def test_same_data_twice_is_a_conflict_and_keeps_the_stored_file(upload: Any, storage_dir: Path) -> None:
    content = frame_bytes(drift_frames(10), "csv")
    assert upload(content, "a.csv", name="a").status_code == 201
    response = upload(content, "a.csv", name="a")
    assert response.status_code == 409 and response.json()["error"]["code"] == "duplicate_dataset"
    assert len(stored_files(storage_dir)) == 1


def test_register_file_checks_root_and_digest(client_for: Any, storage_dir: Path) -> None:
    client = client_for("pipeline")
    path = storage_dir / "imports" / "eval.csv"
    path.parent.mkdir(parents=True)
    path.write_bytes(frame_bytes(scored_frame(30), "csv"))
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    url = "/api/v1/datasets/register-file/"
    wrong = client.post(url, {"name": "eval", "path": str(path), "sha256": "0" * 64}, format="json")
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "digest_mismatch"
    assert sha in wrong.json()["error"]["message"]
    outside = client.post(url, {"name": "eval", "path": "../../etc/passwd", "sha256": sha}, format="json")
    assert outside.status_code == 400 and outside.json()["error"]["code"] == "path_not_allowed"
    ok = client.post(url, {"name": "eval", "path": "imports/eval.csv", "sha256": sha}, format="json")
    assert ok.status_code == 201, ok.json()
    assert ok.json()["rows"] == 30 and ok.json()["storage_uri"] == path.resolve().as_uri()


# --- Each kind end to end ------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_drift_end_to_end(fmt: str, uploaded: Any, request_report: Any, client_for: Any, sequenced: Any) -> None:
    ref = uploaded(drift_frames(400, seed=1), f"ref-{fmt}", fmt)
    cur = uploaded(drift_frames(400, shift=1.0, seed=2), f"cur-{fmt}", fmt)
    response = request_report("drift", {"reference": ref, "current": cur}, {"p_val": 0.01})
    assert response.json()["links"]["self"].startswith("/api/v1/reports/")
    body = _final(client_for("viewer"), response)
    assert body["status"] == "succeeded", body
    result = body["result"]
    assert result["drift"] is True and {f["name"]: f["drifted"] for f in result["features"]}["age"] is True
    assert body["options"] == {"features": None, "categorical": None, "p_val": 0.01, "correction": "bonferroni"}
    assert body["datasets"]["reference"]["id"] == ref and len(body["result_digest"]) == 64
    assert body["library_versions"]["alibi-detect"] and body["attempts"] == 1
    actions = [e.action for e in sequenced() if e.target_type == "monitoring.report"]
    assert actions == ["monitoring.report.queued", "monitoring.report.started", "monitoring.report.finished"]


def test_bias_end_to_end_with_a_group_without_positives(uploaded: Any, request_report: Any, client_for: Any) -> None:
    frame = scored_frame(300)
    frame.loc[frame["gender"] == "m", "label"] = 0  # group m has no actual positives
    ds = uploaded(frame, "eval-bias")
    response = request_report("bias", {"evaluation": ds},
                              {"label": "label", "prediction": "pred", "sensitive_features": ["gender"]})
    body = _final(client_for("pipeline"), response)
    assert body["status"] == "succeeded", body
    groups = {g["label"]: g for g in body["result"]["groups"]}
    assert groups["gender='m'"]["true_positive_rate"] is None
    assert "true_positive_rate" in groups["gender='m'"]["undefined"]
    assert groups["gender='f'"]["true_positive_rate"] is not None


@pytest.mark.parametrize(("options", "metric"), [
    ({"task": "classification", "label": "label", "prediction": "pred", "score": "score",
      "latency": {"p50_ms": 3.0, "p95_ms": 9.5, "p99_ms": 20.0}}, "roc_auc"),
    ({"task": "regression", "label": "label", "prediction": "score"}, "rmse"),
])
def test_validation_end_to_end(options: dict[str, Any], metric: str, uploaded: Any, request_report: Any,
                               client_for: Any) -> None:
    ds = uploaded(scored_frame(200), "eval-val")
    body = _final(client_for("pipeline"), request_report("validation", {"evaluation": ds}, options))
    assert body["status"] == "succeeded", body
    assert body["result"]["metrics"][metric] is not None


# --- Bad data ------------------------------------------------------------------------------------

def _frames_case(case: str) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    ref, cur = drift_frames(100, seed=1), drift_frames(100, seed=2)
    if case == "extra_columns":
        cur["new"] = 1.0
    elif case == "missing_columns":
        return ref, cur, {"features": ["age", "incme"]}
    elif case == "schema_mismatch":
        cur["income"] = cur["income"] > 50_000  # numeric in reference, boolean now
    elif case == "non_numeric":
        cur["age"] = cur["age"].astype(object)
        cur.loc[7, "age"] = "unknown"
    elif case == "all_missing":
        cur["income"] = np.nan
    return ref, cur, {}


@pytest.mark.parametrize("case", ["extra_columns", "missing_columns", "schema_mismatch", "non_numeric",
                                  "all_missing"])
def test_drift_data_problems_are_400_at_submission(case: str, uploaded: Any, request_report: Any) -> None:
    ref, cur, options = _frames_case(case)
    response = request_report("drift", {"reference": uploaded(ref, "ref"), "current": uploaded(cur, "cur")}, options)
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["code"] == case, error
    if case == "missing_columns":
        assert "did you mean 'income'" in error["message"]
    assert not Report.objects.exists()


def test_bias_missing_columns_lists_them(uploaded: Any, request_report: Any) -> None:
    ds = uploaded(scored_frame(50), "eval")
    response = request_report("bias", {"evaluation": ds},
                              {"label": "Label", "prediction": "pred", "sensitive_features": ["sex", "gender"]})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "missing_columns" and error["details"]["missing"] == ["Label", "sex"]


def test_labels_not_binary_fails_the_report_with_the_reason(uploaded: Any, request_report: Any,
                                                            client_for: Any) -> None:
    frame = scored_frame(60)
    frame.loc[5, "label"] = 2
    ds = uploaded(frame, "eval")
    response = request_report("bias", {"evaluation": ds},
                              {"label": "label", "prediction": "pred", "sensitive_features": ["gender"]})
    body = _final(client_for("pipeline"), response)
    assert body["status"] == "failed" and body["result"] is None
    assert body["error"]["code"] == "labels_not_binary" and "label" in body["error"]["message"]


@pytest.mark.parametrize(("payload", "code"), [
    ({"kind": "drift", "datasets": {"evaluation": 1}}, "invalid_datasets"),
    ({"kind": "drift", "datasets": {"reference": 1, "current": 1}, "options": {"p_val": 1.5}}, "invalid_options"),
    ({"kind": "drift", "datasets": {"reference": 1, "current": 1}, "options": {"correction": "holm"}},
     "invalid_options"),
    ({"kind": "bias", "datasets": {"evaluation": 1}, "options": {"label": "label"}}, "invalid_options"),
    ({"kind": "validation", "datasets": {"evaluation": 1}, "options": {"task": "ranking", "label": "a",
                                                                        "prediction": "b"}}, "invalid_options"),
    ({"kind": "fairness", "datasets": {}}, "invalid"),
])
def test_request_validation(payload: dict[str, Any], code: str, client_for: Any) -> None:
    response = client_for("pipeline").post(REPORTS, payload, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == code, response.json()


def test_datasets_must_be_visible_and_readable(cast: Any, request_report: Any) -> None:
    beta = cast.datasets["beta"].pk
    response = request_report("bias", {"evaluation": beta},
                              {"label": "a", "prediction": "b", "sensitive_features": ["c"]})
    assert response.status_code == 400 and response.json()["error"]["code"] == "unknown_dataset"
    s3 = cast.datasets["alpha"].pk  # registered by URI only: no inferred schema, not on our storage
    response = request_report("bias", {"evaluation": s3},
                              {"label": "a", "prediction": "b", "sensitive_features": ["c"]})
    assert response.status_code == 400 and response.json()["error"]["code"] == "dataset_not_readable"


# --- Access --------------------------------------------------------------------------------------

def test_team_isolation_and_capabilities(uploaded: Any, request_report: Any, client_for: Any) -> None:
    ds = uploaded(scored_frame(50), "eval")
    options = {"label": "label", "prediction": "pred", "sensitive_features": ["gender"]}
    response = request_report("bias", {"evaluation": ds}, options)
    link = response.json()["links"]["self"]
    assert client_for("beta_viewer").get(link).status_code == 404
    assert client_for("beta_viewer").get(REPORTS).status_code == 404
    assert client_for("auditor").get(link).status_code == 200
    assert client_for("viewer").get(link).status_code == 200
    assert request_report("bias", {"evaluation": ds}, options, who="viewer").status_code == 403
    assert request_report("bias", {"evaluation": ds}, options, who="beta_engineer").status_code == 404
    assert client_for("anonymous").get(link).status_code == 401


def test_list_is_paginated_and_filters(uploaded: Any, request_report: Any, client_for: Any) -> None:
    ds = uploaded(scored_frame(50), "eval")
    request_report("bias", {"evaluation": ds}, {"label": "label", "prediction": "pred",
                                                 "sensitive_features": ["gender"]})
    request_report("validation", {"evaluation": ds}, {"label": "label", "prediction": "pred"})
    client = client_for("viewer")
    listed = client.get(REPORTS).json()
    assert listed["count"] == 2 and {r["kind"] for r in listed["results"]} == {"bias", "validation"}
    assert [r["kind"] for r in client.get(REPORTS + "?kind=bias").json()["results"]] == ["bias"]
    assert client.get(REPORTS + "?status=queued").json()["count"] == 0
    assert client.get(REPORTS + "?status=bogus").status_code == 400
