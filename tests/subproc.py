"""Run Python snippets in real subprocesses that share the test database."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent


def database_url() -> str:
    """A DATABASE_URL for the database this test runs on (pytest-django's test database)."""
    db = settings.DATABASES["default"]
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


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
