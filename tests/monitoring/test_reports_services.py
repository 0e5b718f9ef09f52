"""Report services: one audit event each, immutability once final, failure handling, the reaper."""
from __future__ import annotations

import hashlib
from datetime import timedelta
from io import StringIO
from typing import Any, Callable

import pytest
from django.core.management import call_command
from django.db import OperationalError
from django.utils import timezone

from audits.core.canonical import canonical_bytes
from governance.access import Principal
from governance.errors import Conflict
from monitoring import services
from monitoring.models import Report
from monitoring.tasks import reap_stuck_reports, run_report_task
from tests.monitoring.conftest import drift_frames, scored_frame

pytestmark = pytest.mark.django_db
BIAS = {"label": "label", "prediction": "pred", "sensitive_features": ["gender"]}


@pytest.fixture
def actions(sequenced: Callable[[], list[Any]]) -> Callable[[], list[str]]:
    """Report event names appended since the previous call."""
    seen = {"n": len(sequenced())}

    def new() -> list[str]:
        events = sequenced()
        fresh = events[seen["n"]:]
        seen["n"] = len(events)
        return [e.action for e in fresh]

    return new


@pytest.fixture
def queued(cast: Any, uploaded: Any) -> Callable[..., Report]:
    """A queued bias report on alpha v1, requested without enqueueing."""
    ds = uploaded(scored_frame(80), "eval")

    def make(options: dict[str, Any] | None = None) -> Report:
        return services.report_request(actor=Principal(user=cast.users["pipeline"]), version=cast.versions["alpha1"],
                                       kind="bias", datasets={"evaluation": ds}, options=options or BIAS,
                                       enqueue=False)

    return make


def test_each_service_appends_exactly_one_event(queued: Any, actions: Any) -> None:
    report = queued()
    assert actions() == ["monitoring.report.queued"]
    report = services.report_start(actor=services.WORKER, report=report)
    assert actions() == ["monitoring.report.started"]
    report = services.report_finish(actor=services.WORKER, report=report, result={"x": 0.5})
    assert actions() == ["monitoring.report.finished"]
    assert report.result_digest == hashlib.sha256(canonical_bytes({"x": 0.5})).hexdigest()
    other = queued()
    actions()
    services.report_fail(actor=services.WORKER, report=other, code="x", message="why")
    assert actions() == ["monitoring.report.failed"]


def test_inputs_digest_covers_artifact_datasets_options_and_kind(queued: Any, cast: Any) -> None:
    a, b = queued(), queued()
    assert a.inputs_digest == b.inputs_digest and len(a.inputs_digest) == 64
    assert queued({**BIAS, "positive_label": 0}).inputs_digest != a.inputs_digest
    assert a.options["positive_label"] == 1  # defaults are filled in and digested
    assert a.requested_by["username"] == "pipeline"


def test_final_report_never_changes(queued: Any, actions: Any) -> None:
    report = services.report_compute(report_id=queued().pk)
    assert report is not None and report.status == "succeeded"
    before = (report.result_digest, report.finished_at, report.attempts)
    actions()
    assert run_report_task.delay(report.pk).get() == "succeeded"  # a second delivery does nothing
    again = Report.objects.get(pk=report.pk)
    assert (again.result_digest, again.finished_at, again.attempts) == before
    assert actions() == []
    with pytest.raises(Conflict):
        services.report_fail(actor=services.WORKER, report=again, code="x", message="y")
    with pytest.raises(Conflict):
        services.report_start(actor=services.WORKER, report=again)
    with pytest.raises(Conflict):
        services.report_finish(actor=services.WORKER, report=again, result={})


def test_running_report_is_restarted_by_a_redelivered_task(queued: Any, actions: Any) -> None:
    report = services.report_start(actor=services.WORKER, report=queued())
    actions()
    assert run_report_task.delay(report.pk).get() == "succeeded"
    report.refresh_from_db()
    assert report.attempts == 2
    assert actions() == ["monitoring.report.started", "monitoring.report.finished"]


def test_unexpected_error_fails_with_a_generic_message(queued: Any, monkeypatch: Any, caplog: Any) -> None:
    def boom(report: Report) -> dict[str, Any]:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(services, "_run_detector", boom)
    report = services.report_compute(report_id=queued().pk)
    assert report is not None and report.status == "failed" and report.error_code == "internal_error"
    assert "secret" not in report.error_message and str(report.pk) in report.error_message
    assert "failed unexpectedly" in caplog.text


def test_nan_result_is_refused_not_stored(queued: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(services, "_run_detector", lambda report: {"p": float("nan")})
    report = services.report_compute(report_id=queued().pk)
    assert report is not None and report.status == "failed" and report.result is None


def test_operational_error_is_reraised_for_retry_and_report_stays_running(queued: Any, monkeypatch: Any) -> None:
    def flaky(report: Report) -> dict[str, Any]:
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(services, "_run_detector", flaky)
    report = queued()
    with pytest.raises(OperationalError):
        services.report_compute(report_id=report.pk)
    report.refresh_from_db()
    assert report.status == "running"


def test_missing_file_fails_the_report(queued: Any, storage_dir: Any) -> None:
    report = queued()
    for path in (storage_dir / "datasets").glob("*.csv"):
        path.unlink()
    report = services.report_compute(report_id=report.pk)
    assert report is not None and report.status == "failed" and report.error_code == "dataset_unavailable"


def test_reaper_fails_only_reports_running_past_the_deadline(queued: Any, actions: Any, settings: Any) -> None:
    old = services.report_start(actor=services.WORKER, report=queued())
    Report.objects.filter(pk=old.pk).update(started_at=timezone.now() - timedelta(hours=2))
    fresh = services.report_start(actor=services.WORKER, report=queued())
    waiting = queued()
    actions()
    settings.GOVAUDIT_REPORT_DEADLINE_SECONDS = 3600
    assert reap_stuck_reports.delay().get() == 1
    assert actions() == ["monitoring.report.failed"]
    old.refresh_from_db()
    assert old.status == "failed" and old.error_code == "worker_lost" and "60 minutes" in old.error_message
    assert Report.objects.get(pk=fresh.pk).status == "running"
    assert Report.objects.get(pk=waiting.pk).status == "queued"
    assert services.report_reap(older_than=timedelta(hours=1)) == []


def test_run_report_command(cast: Any, uploaded: Any) -> None:
    ref = uploaded(drift_frames(200, seed=1), "ref")
    cur = uploaded(drift_frames(200, shift=1.0, seed=2), "cur")
    out = StringIO()
    call_command("run_report", "--model", "alpha-model", "--version", "2", "--kind", "drift", "--reference",
                 str(ref), "--current", str(cur), "--options", '{"features": ["age", "income"]}', "--quiet",
                 stdout=out)
    text = out.getvalue()
    assert "succeeded" in text and "drift: True" in text and "age" in text
    report = Report.objects.get()
    assert report.status == "succeeded" and report.options["features"] == ["age", "income"]
    assert "run_report" in str(report.requested_by)
