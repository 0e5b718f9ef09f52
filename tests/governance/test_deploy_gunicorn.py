"""deploy/gunicorn.conf.py: the workers fork from a master that has already imported everything."""
from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests import workers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthz(port: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status
    finally:
        conn.close()


@pytest.mark.django_db
def test_the_deployed_config_preloads_the_app_and_its_imports_in_the_master() -> None:
    """The master maps pandas' compiled modules before any request: the workers inherit them warm.

    Without ``preload_app`` and the ``when_ready`` hook, the master never imports Django's URL
    conf, and each worker imports pandas on its first request (docs/benchmarks/promotions.md).
    """
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": workers.test_database_url(), "DJANGO_SETTINGS_MODULE": "governance.settings",
           "GOVAUDIT_BIND": f"127.0.0.1:{port}", "GOVAUDIT_WORKERS": "1", "CELERY_BROKER_URL": ""}
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "governance.wsgi", "-c", "deploy/gunicorn.conf.py"],
                            cwd=workers.ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            try:
                if _healthz(port) == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "gunicorn did not answer /healthz within 60 s"
            time.sleep(0.1)
        with open(f"/proc/{proc.pid}/maps") as maps:
            master_maps = maps.read()
        assert "/pandas/_libs/" in master_maps, "the master did not import the URL conf's modules"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
