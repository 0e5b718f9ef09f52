"""Shared plumbing of the HTTP benchmarks: throw-away PostgreSQL databases, servers, figures.

Used by ``registry_reads.py`` and ``promotions.py``. Nothing here measures anything by itself;
it exists so that both scripts create, settle and drop their databases, start and stop their
servers and compute their percentiles the same way, and so that a fix to one (say, a server
left behind on Ctrl-C) reaches both.

Safety rules every caller inherits: only 127.0.0.1 is ever contacted over HTTP, only databases
whose name matches ``DB_NAME_RE`` are ever dropped, and every server is started in its own
session so that stopping it can never touch a process this benchmark did not start.
"""
from __future__ import annotations

import http.client
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"  # the only host these scripts ever send HTTP requests to
# Refuse to drop anything that does not look like a benchmark database: a typo in --database
# must never cost someone their data.
DB_NAME_RE = re.compile(r"^govaudit_bench[a-z0-9_]{0,40}$")


def log(message: str) -> None:
    """Progress goes to stderr so that stdout stays the results table plus one JSON line."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def django_setup() -> None:
    """Internal modes run as ``python tests/benchmarks/<script>.py``: put the project first."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "governance.settings")
    import django

    django.setup()


def venv_bin(name: str) -> str:
    """Tools next to the interpreter that runs us (the project's venv), else the project's .venv."""
    here = Path(sys.executable).parent / name
    return str(here if here.exists() else ROOT / ".venv" / "bin" / name)


def bench_env(database_url: str, data_dir: str) -> dict[str, str]:
    """Development settings on the benchmark database, a throw-away data dir, tasks in-process."""
    env = dict(os.environ)
    for name in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "GOVAUDIT_STORAGE_DIR", "GOVAUDIT_KEY_DIR",
                 "SECRET_KEY", "AUDIT_SIGNING_KEY"):
        env.pop(name, None)
    env.update({
        "DATABASE_URL": database_url,
        "GOVAUDIT_DATA_DIR": data_dir,
        "GOVAUDIT_ENV": "development",
        "DJANGO_SETTINGS_MODULE": "governance.settings",
        "DEBUG": "0",  # DEBUG keeps every query in memory: it would distort both speed and memory
        "PYTHONUNBUFFERED": "1",
    })
    return env


def run_step(cmd: list[str], env: dict[str, str], what: str, extra_env: dict[str, str] | None = None,
             timeout: float = 600) -> str:
    """Run a step; on failure show its output, because a benchmark that half-ran is worthless."""
    proc = subprocess.run(cmd, cwd=ROOT, env={**env, **(extra_env or {})}, capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


def manage(env: dict[str, str], *args: str) -> str:
    """The project's own commands (migrate, load_demo, create_token): the benchmark sets up nothing by hand."""
    return run_step([sys.executable, str(ROOT / "manage.py"), *args], env, f"manage.py {' '.join(args)}")


def admin_connect(admin_url: str) -> Any:
    """Autocommit: CREATE/DROP DATABASE and VACUUM refuse to run inside a transaction."""
    import psycopg

    return psycopg.connect(admin_url, autocommit=True, connect_timeout=10)


def drop_database(admin_url: str, name: str) -> None:
    """Drop a benchmark database (refuses any name that does not match DB_NAME_RE)."""
    from psycopg import sql

    if not DB_NAME_RE.match(name):
        raise ValueError(f"refusing to drop {name!r}: not a benchmark database name")
    with admin_connect(admin_url) as conn:
        # FORCE: a server worker killed mid-request may leave a session behind.
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def create_database(admin_url: str, name: str) -> str:
    """A fresh database each run, so no earlier run's rows, bloat or statistics leak into the figures.

    Returns the server version for the report: figures from different PostgreSQL versions differ.
    """
    from psycopg import sql

    drop_database(admin_url, name)
    with admin_connect(admin_url) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


def settle_database(base_url: str, name: str) -> None:
    """Give the measurement a steady state: fresh planner statistics, no autovacuum, no checkpoint.

    Right after seeding, autovacuum would analyse the new tables and the checkpointer would flush
    the seed's dirty pages *during* the first phases, stealing CPU and I/O from whichever phase is
    unlucky; and until that ANALYZE the planner works from empty statistics. A database in
    service has both long behind it, so do both now, before anything is timed.
    """
    with admin_connect(f"{base_url}/{name}") as conn:
        conn.execute("VACUUM (ANALYZE)")
        try:
            conn.execute("CHECKPOINT")  # superuser or pg_checkpoint; without it, just less steady
        except Exception as exc:  # noqa: BLE001 - a missing privilege must not stop the benchmark
            log(f"CHECKPOINT skipped: {exc}")


def free_port() -> int:
    """A port the kernel says is free, so two benchmarks (or a dev server) never collide on 8000."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def http_get(port: int, path: str, timeout: float = 5.0) -> int:
    """One request on a fresh connection: the readiness poll must not depend on the load clients."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


@dataclass
class Server:
    """A server process group we started, with its log file (shown if it dies)."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def log_tail(self: Server, chars: int = 3000) -> str:
        """The end of the server's log, for error messages: why it died matters more than that it did."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def start_server(cmd: list[str], env: dict[str, str], port: int, log_path: Path, ready_path: str,
                 timeout: float = 120) -> Server:
    """Start a server in its own session (so it can be stopped as a group) and wait for ``ready_path``.

    Its output goes to ``log_path`` and is shown only if it dies: per-request output on a
    terminal would otherwise compete with the clients for the same two cores.
    """
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                                start_new_session=True)
    server = Server(proc, port, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{Path(cmd[0]).name} exited with {proc.returncode}:\n{server.log_tail()}")
        try:
            if http_get(port, ready_path, timeout=2) == 200:
                return server
        except OSError:
            pass
        time.sleep(0.2)
    stop_server(server)
    raise RuntimeError(f"{Path(cmd[0]).name} did not answer {ready_path} within {timeout:g} s:\n{server.log_tail()}")


def start_gunicorn(env: dict[str, str], workers: int, data_dir: str, *, config: Path | None = None,
                   timeout: float = 60) -> Server:
    """Start the project under gunicorn (sync workers, as deployed) on a free loopback port.

    With ``config`` (``deploy/gunicorn.conf.py``) the deployed settings apply, and the bind
    address and worker count go in through the variables that file reads.
    """
    port = free_port()
    cmd = [venv_bin("gunicorn"), "governance.wsgi"]
    if config is not None:
        cmd += ["-c", str(config)]
        env = {**env, "GOVAUDIT_BIND": f"{HOST}:{port}", "GOVAUDIT_WORKERS": str(workers)}
    else:
        cmd += ["--log-level", "warning"]
    # On the command line too (it overrides the file), so the bind address marks our processes.
    cmd += ["-b", f"{HOST}:{port}", "-w", str(workers)]
    # Gunicorn's sync workers close the connection after every response, so each request
    # includes a loopback TCP connect; the clients reconnect transparently.
    cmd += ["--graceful-timeout", "10"]
    return start_server(cmd, env, port, Path(data_dir) / "gunicorn.log", "/healthz", timeout=timeout)


def stop_server(server: Server) -> None:
    """SIGTERM the process group we created (master and workers); SIGKILL it if it hangs."""
    if server.proc.poll() is not None:
        return
    try:
        os.killpg(server.proc.pid, signal.SIGTERM)  # the group we created with start_new_session
    except ProcessLookupError:
        return
    try:
        server.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(server.proc.pid, signal.SIGKILL)
        server.proc.wait(timeout=10)


_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class CpuSnapshot(NamedTuple):
    """Machine busy CPU seconds, and each of the benchmark's own processes' CPU seconds, at one instant."""

    busy: float
    own: dict[int, float]


def cpu_snapshot(own_markers: tuple[str, ...], own_sessions: frozenset[int] = frozenset(),
                 own_pids: frozenset[int] = frozenset()) -> CpuSnapshot | None:
    """The machine's busy CPU seconds and, per pid, this benchmark's processes' CPU seconds.

    The machine is shared: other people's test runs and profilers eat the same two cores, and
    that is the main reason figures drift between rounds. Their share ("foreign CPU", busy time
    minus this process and the processes whose command line contains one of ``own_markers``,
    whose session is one of ``own_sessions`` (a server started by ``start_server`` and every
    process it forks) or whose pid is in ``own_pids``)
    is reported next to each phase so a reader can tell a slow server from a busy neighbour.
    Per pid, so that ``own_cpu_between`` can take differences process by process. Linux /proc
    only; None elsewhere.
    """
    try:
        values = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq = values
    busy = (user + nice + system + irq + softirq) / _CLK_TCK
    own: dict[int, float] = {}
    me = os.getpid()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cmd = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited while we looked
        pid = int(entry.name)
        if pid == me or pid in own_pids or int(stat[3]) in own_sessions or any(m in cmd for m in own_markers):
            own[pid] = (int(stat[11]) + int(stat[12])) / _CLK_TCK
    return CpuSnapshot(busy, own)


def own_cpu_between(before: CpuSnapshot, after: CpuSnapshot) -> float:
    """CPU seconds our processes used between two snapshots, process by process.

    A process that started in between counts from zero. One that ended in between counts for
    nothing: its last seconds are unknown, but its whole lifetime must not come off the total.
    Subtracting two grand totals did exactly that whenever a database backend was replaced
    mid-phase (Django reconnects after ``CONN_MAX_AGE``), and the lost seconds showed up as
    "foreign" CPU (22-40 % of a core in the promotion benchmark's rounds until 2026-11-27).
    """
    return sum(max(0.0, cpu - before.own.get(pid, 0.0)) for pid, cpu in after.own.items())


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile: always an observed latency, no interpolation artefacts."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def json_safe(value: Any) -> Any:
    """NaN (a phase without a single answer) becomes null, so the last line is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


def raise_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """Turn SIGTERM into an exception so the caller's finally block still stops servers and drops databases."""
    raise SystemExit(128 + signum)
