"""Run Python snippets in separate processes against the test database (real concurrency)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parents[1]


def test_database_url() -> str:
    s = connection.settings_dict
    if connection.vendor == "postgresql":
        return f"postgres://{s['USER'] or 'postgres'}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"
    return f"sqlite:///{s['NAME']}"


def run_processes(count: int, body: str, *, timeout: float = 240) -> list[str]:
    """Start ``count`` processes at once, each running ``body`` with WORKER set; return their stdout.

    They wait on a shared start file so they really overlap, and each must exit 0.
    """
    start = ROOT / "var" / f"start-{os.getpid()}"
    start.parent.mkdir(exist_ok=True)
    start.unlink(missing_ok=True)
    script = textwrap.dedent("""
        import os, time, django
        django.setup()
        while not os.path.exists(os.environ["START_FILE"]):
            time.sleep(0.005)
        WORKER = int(os.environ["WORKER"])
    """) + textwrap.dedent(body)
    env = {**os.environ, "DATABASE_URL": test_database_url(), "DJANGO_SETTINGS_MODULE": "governance.settings",
           "START_FILE": str(start), "CELERY_BROKER_URL": ""}
    procs = [subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env={**env, "WORKER": str(i)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(count)]
    import time

    time.sleep(1.5)  # let every process finish django.setup() before the start signal
    start.touch()
    outputs = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=timeout)
            assert proc.returncode == 0, f"worker failed: {err[-2000:]}"
            outputs.append(out)
    finally:
        start.unlink(missing_ok=True)
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    return outputs
