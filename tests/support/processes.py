"""Start the real thing as subprocesses on the test's database: workers, the embedded server,
``manage.py`` commands and Python snippets, all with one environment (``subprocess_env``)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


def database_url() -> str:
    """A DATABASE_URL for the database this test is using (pytest-django's test database)."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{Path(s['NAME']).resolve()}"
    auth = quote(s["USER"] or "postgres") + (
        f":{quote(s['PASSWORD'])}" if s.get("PASSWORD") else ""
    )
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def subprocess_env(**extra: str | None) -> dict[str, str]:
    """The environment of every child process: ours without pytest's and Django's own variables,
    the real settings module, the test's SECRET_KEY and database, then ``extra`` (None removes)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "DJANGO_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="resilient.settings",
        # The test process's own key, so what a test signs (sessions, tokens) verifies in the child.
        SECRET_KEY=settings.SECRET_KEY,
        DATABASE_URL=database_url(),
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return {k: v for k, v in env.items() if v is not None}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(
    condition: Callable[[], object],
    *,
    timeout: float,
    interval: float = 0.05,
    message: Callable[[], str] | str = "",
) -> object:
    """Poll ``condition`` until truthy or fail after ``timeout`` seconds (bounded waits only)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            text = message() if callable(message) else message
            raise AssertionError(f"condition not met within {timeout}s. {text}")
        time.sleep(interval)


# --- manage.py commands -----------------------------------------------------------------------


class Process:
    """A started ``manage.py`` command with its output captured to a log file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log_path = log
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            [PYTHON, "manage.py", *args],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            os.kill(self.popen.pid, sig)

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout=timeout)

    def stop(self, timeout: float = 15) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit in time. Returns the exit code."""
        if self.popen.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)
        self._log.close()
        return self.popen.returncode


def start_worker(tmp_path: Path, name: str = "worker", **env: str) -> Process:
    return Process(["runworker", "jobs"], subprocess_env(**env), tmp_path / f"{name}.log")


def start_serve(tmp_path: Path, port: int, *args: str, **env: str) -> Process:
    proc = Process(
        ["serve", "--port", str(port), *args], subprocess_env(**env), tmp_path / f"serve-{port}.log"
    )
    wait_until(lambda: _port_open(port), timeout=20, message=lambda: proc.output())
    return proc


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def run_manage(
    *args: str, environ: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    """Run ``manage.py args`` to the end; returns the finished process with its text output."""
    return subprocess.run(
        [PYTHON, "manage.py", *args],
        cwd=ROOT,
        env=environ if environ is not None else subprocess_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# --- Python snippets --------------------------------------------------------------------------


def _script(code: str) -> list[str]:
    return [PYTHON, "-c", "import django\ndjango.setup()\n" + textwrap.dedent(code)]


def run_python(
    code: str, *, environ: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    """Run ``code`` (Django set up first) in a fresh interpreter; returns the finished process."""
    return subprocess.run(
        _script(code),
        cwd=ROOT,
        env=environ if environ is not None else subprocess_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_python(code: str, *, environ: dict[str, str] | None = None) -> subprocess.Popen:
    """Start ``code`` (Django set up first) in a fresh interpreter, its output piped."""
    return subprocess.Popen(
        _script(code),
        cwd=ROOT,
        env=environ if environ is not None else subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
