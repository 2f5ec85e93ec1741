"""Processes the harness starts: each in its own session, stopped by its PID and nothing else."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from bench import scratch

_started: list[subprocess.Popen] = []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def child_env(db: str | Path, *, redis_url: str = "", **extra: str) -> dict[str, str]:
    """Environment for a server or worker process pointed at a scratch database.

    ``db`` is a PostgreSQL URL, or the path of a SQLite file named ``resilient.sqlite3``: then
    the child runs exactly like ``make run`` (no DATABASE_URL) with its var/ directory moved.
    """
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "RESILIENT_VAR_DIR"}}
    env.update(
        DJANGO_SETTINGS_MODULE="resilient.settings",
        SECRET_KEY=scratch.secret_key(),
        DEBUG="0",
        PYTHONUNBUFFERED="1",
    )
    if isinstance(db, Path):
        assert db.name == scratch.SQLITE_NAME, db
        env["RESILIENT_VAR_DIR"] = str(db.parent)
    else:
        env["DATABASE_URL"] = db
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.update(extra)
    return env


def start(name: str, args: list[str], env: dict[str, str], *, python: str | Path = sys.executable) -> subprocess.Popen:
    """Start ``python args...`` in the repository, its output in var/bench/logs/NAME.log.

    ``python`` is another interpreter for processes that must not share our venv (competitors).
    """
    scratch.LOGS.mkdir(parents=True, exist_ok=True)
    log = open(scratch.LOGS / f"{name}.log", "wb")  # noqa: SIM115 - closed in stop()
    proc = subprocess.Popen(
        [str(python), *args],
        cwd=scratch.ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    proc.log_path = Path(log.name)  # type: ignore[attr-defined]
    proc.log_file = log  # type: ignore[attr-defined]
    _started.append(proc)
    return proc


def log_text(proc: subprocess.Popen) -> str:
    return proc.log_path.read_text(errors="replace")  # type: ignore[attr-defined]


def wait_for_log(proc: subprocess.Popen, needle: str, *, timeout: float = 60, count: int = 1) -> None:
    """Wait until ``needle`` appears ``count`` times in the process's log, or fail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log_text(proc).count(needle) >= count:
            return
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}:\n{log_text(proc)[-3000:]}")
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {needle!r} from {proc.args}:\n{log_text(proc)[-3000:]}")


def wait_for_port(proc: subprocess.Popen, port: int, *, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}:\n{log_text(proc)[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} never opened for {proc.args}")


def stop(proc: subprocess.Popen, *, grace: float = 15) -> int | None:
    """SIGTERM the process (its own session, so only what it spawned), SIGKILL after ``grace``."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        except ProcessLookupError:
            pass
    proc.log_file.close()  # type: ignore[attr-defined]
    if proc in _started:
        _started.remove(proc)
    return proc.returncode


def stop_all() -> None:
    """Stop every process this harness started and that is still running."""
    for proc in list(_started):
        stop(proc, grace=5)
