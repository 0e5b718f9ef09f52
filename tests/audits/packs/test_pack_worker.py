"""A real Celery worker on Redis (database 7) builds a pack requested through the API.

Shows the pack task is registered in a worker process (it lives in a subpackage Celery's
autodiscovery does not search; ``audits.apps`` imports it) and that the API's 202 / progress /
download cycle works when generation happens elsewhere.
"""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests import workers
from tests.conftest import IN_CI
from tests.monitoring.test_worker import Worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
BROKER = os.environ.get("GOVAUDIT_TEST_PACK_REDIS_URL", "redis://127.0.0.1:6379/7")


@pytest.fixture(scope="module")
def pack_worker(django_db_setup: Any, django_db_blocker: Any,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Worker, Path]]:
    import redis

    client = redis.Redis.from_url(BROKER, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        reason = f"Redis is not reachable at {BROKER} ({exc}); start it to run the worker tests"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    client.flushdb()
    packs = tmp_path_factory.mktemp("worker-packs")
    with django_db_blocker.unblock():
        db_url = workers.test_database_url()
    from django.conf import settings

    env = {**os.environ, "DATABASE_URL": db_url, "CELERY_BROKER_URL": BROKER, "GOVAUDIT_PACK_DIR": str(packs),
           "GOVAUDIT_DATA_DIR": str(settings.DATA_DIR), "GOVAUDIT_KEY_DIR": str(tmp_path_factory.getbasetemp() / "keys"),
           "DJANGO_SETTINGS_MODULE": "governance.settings"}
    worker = Worker(env, tmp_path_factory.mktemp("pack-worker-logs"))
    try:
        yield worker, packs
    finally:
        worker.kill()
        client.flushdb()


def test_worker_builds_a_pack_requested_through_the_api(pack_worker: tuple[Worker, Path], cast: Any,
                                                        client_for: Any, settings: Any) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from audits.keys import trusted_keys
    from audits.pack_verifier import verify_pack
    from audits.packs.signing import organisation_signer
    from governance.celery import app

    worker, packs = pack_worker
    settings.GOVAUDIT_PACK_DIR = packs
    organisation_signer()  # the worker and this process share the key folder: make the certificate once
    worker.ensure()
    saved = (app.conf.task_always_eager, app.conf.broker_url)
    app.conf.task_always_eager, app.conf.broker_url = False, BROKER
    app._pool = None
    app.amqp._producer_pool = None
    try:
        officer = client_for("compliance_officer")
        r = officer.post("/api/v1/audit-packs/", {"framework": "gdpr",
                                                  "period_start": (timezone.now() - timedelta(hours=1)).isoformat()},
                         format="json")
        assert r.status_code == 202 and r.json()["status"] == "queued", r.content
        link = r.json()["links"]["self"]
        seen = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            body = officer.get(link).json()
            seen.append((body["status"], body["progress"]))
            if body["status"] in ("succeeded", "failed"):
                break
            time.sleep(0.1)
        assert body["status"] == "succeeded", (body, worker.log.read_text()[-3000:])
        assert body["progress"] == 100 and body["scope"] == ["alpha-model"]
        assert "audits.packs.generate" in worker.log.read_text()
        download = client_for("auditor").get(body["links"]["download"])
        data = b"".join(download.streaming_content)
        assert hashlib.sha256(data).hexdigest() == body["sha256"]
        report = verify_pack(data, log_keys=[k.verifier.encode() for k in trusted_keys()],
                             pdf_certs=[organisation_signer().cert_pem])
        assert report.ok, report.problems
    finally:
        app.conf.task_always_eager, app.conf.broker_url = saved
        app._pool = None
        app.amqp._producer_pool = None
