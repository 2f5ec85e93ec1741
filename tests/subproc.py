"""Run Python snippets in real subprocesses that share the test database."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.processes import database_url

ROOT = Path(__file__).resolve().parent.parent


def env(**extra: str) -> dict[str, str]:
    """The environment for a subprocess: production settings module, test database, ``extra``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "DJANGO_"))}
    base.update(
        DJANGO_SETTINGS_MODULE="resilient.settings",
        SECRET_KEY="subprocess-test-secret-key",
        DATABASE_URL=database_url(),
        PYTHONPATH=str(ROOT),
    )
    base.update(extra)
    return {k: v for k, v in base.items() if v is not None}


def run_python(code: str, *, environ: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``code`` (Django set up first) in a fresh interpreter; returns the finished process."""
    script = "import django\ndjango.setup()\n" + textwrap.dedent(code)
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=environ if environ is not None else env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_python(code: str, *, environ: dict[str, str] | None = None) -> subprocess.Popen:
    script = "import django\ndjango.setup()\n" + textwrap.dedent(code)
    return subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=environ if environ is not None else env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
