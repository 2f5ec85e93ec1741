"""Helpers for tests that start real processes against the test database."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import quote

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def database_url() -> str:
    """The URL of the database this test runs on (the pytest-django test database)."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{Path(s['NAME']).resolve()}"
    auth = quote(s["USER"] or "postgres") + (f":{quote(s['PASSWORD'])}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def child_env(**extra: str) -> dict[str, str]:
    """Environment for a child process: real settings, the test database, our extras."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESILIENT_")}
    env.update(
        SECRET_KEY="insecure-test-only-key",
        DJANGO_SETTINGS_MODULE="resilient.settings",
        DATABASE_URL=database_url(),
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


PYTHON = sys.executable
