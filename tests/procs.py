"""Helpers for tests that start real processes against the test database."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tests.processes import database_url

ROOT = Path(__file__).resolve().parent.parent


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
