"""A real Celery worker on Redis computes reports requested through the API, and survives being killed.

The worker is a subprocess (``celery -A governance worker``) on the test database and on this
test's storage folder; the test process sends tasks to the same Redis database instead of running
them eagerly. One worker serves the module (start-up costs seconds); the kill tests restart it.
"""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import pytest

from monitoring import services
from tests.conftest import IN_CI
from tests.monitoring.conftest import drift_frames, frame_bytes
from tests import workers
from tests.workers import ROOT

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
# Transactional: the worker is another process and must see committed rows. The roles survive the
# flush between such tests (governance re-creates them on post_migrate).

BROKER = os.environ.get("GOVAUDIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/5")
REPORTS = "/api/v1/models/alpha-model/versions/1/reports/"


def _redis_or_skip() -> Any:
    import redis

    client = redis.Redis.from_url(BROKER, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        reason = f"Redis is not reachable at {BROKER} ({exc}); start it to run the worker tests"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    return client


class Worker:
    """Start, find and kill one ``celery worker`` subprocess (in its own process group)."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def ensure(self, timeout: float = 40) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        self.starts += 1
        log = self.log_dir / f"worker-{self.starts}.log"
        self.log = log
        self.proc = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "celery"), "-A", "governance", "worker", "-l", "info", "--concurrency", "1",
             "-Q", "celery", "-n", f"mon-test-{os.getpid()}-{self.starts}@%h", "--without-gossip", "--without-mingle"],
            cwd=ROOT, env=self.env, stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited: {log.read_text()[-3000:]}")
            if b" ready." in log.read_bytes():
                return
            time.sleep(0.2)
        raise AssertionError(f"worker not ready after {timeout}s: {log.read_text()[-3000:]}")

    def pool_children(self) -> list[int]:
        assert self.proc is not None
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(pid) for pid in path.read_text().split()]

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and pool): no warm shutdown, no ack."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def worker(django_db_setup: Any, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    redis_client = _redis_or_skip()
    redis_client.flushdb()
    storage = tmp_path_factory.mktemp("worker-storage")
    with django_db_blocker.unblock():
        db_url = workers.test_database_url()
    from django.conf import settings

    env = {**os.environ, "DATABASE_URL": db_url, "CELERY_BROKER_URL": BROKER, "GOVAUDIT_STORAGE_DIR": str(storage),
           "GOVAUDIT_DATA_DIR": str(settings.DATA_DIR), "GOVAUDIT_KEY_DIR": str(tmp_path_factory.getbasetemp() / "keys"),
           "DJANGO_SETTINGS_MODULE": "governance.settings"}
    w = Worker(env, tmp_path_factory.mktemp("worker-logs"))
    w.storage = storage  # type: ignore[attr-defined]
    try:
        yield w
    finally:
        w.kill()
        redis_client.flushdb()


@pytest.fixture
def storage_dir(worker: Worker, settings: Any) -> Path:
    """The worker and this process must agree on where dataset files are."""
    settings.STORAGE_DIR = worker.storage  # type: ignore[attr-defined]
    return settings.STORAGE_DIR


@pytest.fixture(autouse=True)
def send_to_redis(worker: Worker) -> Iterator[None]:
    """Send tasks to the worker's broker instead of running them in this process."""
    from governance.celery import app

    saved = (app.conf.task_always_eager, app.conf.broker_url)
    app.conf.task_always_eager = False
    app.conf.broker_url = BROKER
    app._pool = None  # the connection pool was built for the old URL, if at all
    app.amqp._producer_pool = None
    try:
        yield
    finally:
        app.conf.task_always_eager, app.conf.broker_url = saved
        app._pool = None  # kombu's pools are shared per URL: dropped, not closed, so the next test reuses them
        app.amqp._producer_pool = None


def _wait(client: Any, link: str, statuses: set[str], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = client.get(link).json()
        if body["status"] in statuses:
            return body
        time.sleep(0.05)
    raise AssertionError(f"report still {body.get('status')} after {timeout}s: {body}")


def _big_drift_datasets(client: Any, storage: Path, rows: int = 300_000) -> dict[str, int]:
    """Two Parquet files large enough that a drift report runs for seconds, registered in place."""
    rng = np.random.default_rng(7)
    ids = {}
    for role, shift in (("reference", 0.0), ("current", 0.02)):
        path = storage / "imports" / f"big-{role}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            pd.DataFrame({f"f{j}": rng.normal(shift, 1, rows).round(3) for j in range(10)}).to_parquet(path, index=False)
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        response = client.post("/api/v1/datasets/register-file/",
                               {"name": f"big-{role}", "path": str(path), "sha256": sha}, format="json")
        assert response.status_code == 201, response.json()
        ids[role] = response.json()["id"]
    return ids


def test_worker_computes_reports_requested_through_the_api(worker: Worker, upload: Any, client_for: Any) -> None:
    worker.ensure()
    client = client_for("pipeline")
    ids = []
    for name, shift in (("ref", 0.0), ("cur", 1.0)):
        response = upload(frame_bytes(drift_frames(300, shift=shift, seed=3), "csv"), f"{name}.csv", name=name)
        assert response.status_code == 201, response.json()
        ids.append(response.json()["id"])
    response = client.post(REPORTS, {"kind": "drift", "datasets": {"reference": ids[0], "current": ids[1]}},
                           format="json")
    assert response.status_code == 202 and response.json()["status"] == "queued"
    body = _wait(client, response.json()["links"]["self"], {"succeeded", "failed"}, 40)
    assert body["status"] == "succeeded", body
    assert body["result"]["drift"] is True and body["attempts"] == 1


def test_killed_pool_process_is_redelivered_and_completes(worker: Worker, client_for: Any, storage_dir: Path) -> None:
    worker.ensure()
    client = client_for("pipeline")
    datasets = _big_drift_datasets(client, storage_dir)
    response = client.post(REPORTS, {"kind": "drift", "datasets": datasets}, format="json")
    link = response.json()["links"]["self"]
    _wait(client, link, {"running"}, 20)
    time.sleep(0.5)
    for pid in worker.pool_children():
        os.kill(pid, signal.SIGKILL)  # the computing process dies; acks_late + reject_on_worker_lost requeue it
    body = _wait(client, link, {"succeeded", "failed"}, 45)
    assert body["status"] == "succeeded", body
    assert body["attempts"] == 2


def test_killed_worker_never_leaves_a_report_running(worker: Worker, client_for: Any, storage_dir: Path) -> None:
    worker.ensure()
    client = client_for("pipeline")
    datasets = _big_drift_datasets(client, storage_dir)
    response = client.post(REPORTS, {"kind": "drift", "datasets": datasets}, format="json")
    link = response.json()["links"]["self"]
    _wait(client, link, {"running"}, 20)
    worker.kill()
    worker.ensure()
    # The unacked message returns only after Redis' visibility timeout (an hour by default), so the
    # report would sit in running until then; the reaper (short deadline here) closes it with a reason.
    reaped = services.report_reap(older_than=timedelta(seconds=0))
    body = client.get(link).json()
    if reaped:
        assert body["status"] == "failed" and body["error"]["code"] == "worker_lost", body
        assert "Request the report again" in body["error"]["message"]
    else:  # the message came back and the new worker already finished it
        assert body["status"] == "succeeded", body
