"""Scratch databases: SQLite files under var/bench/ and the harness's own PostgreSQL database.

Each run migrates once — a template SQLite file and the PostgreSQL database — and every
benchmark then starts from a copy of the template or an emptied job table, so no benchmark pays
for migrations or sees another's jobs.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import sqlite3
import subprocess
import sys
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var" / "bench"
LOGS = VAR / "logs"
SQLITE_NAME = "resilient.sqlite3"  # the file settings.py uses under RESILIENT_VAR_DIR
TEMPLATE = VAR / "template" / SQLITE_NAME

PG_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/h_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/2")
OPERATOR = "bench"


@cache
def secret_key() -> str:
    key = os.environ.get("SECRET_KEY")
    if key:
        return key
    path = ROOT / "var" / "secret_key"
    if path.exists():
        return path.read_text().strip()
    return secrets.token_urlsafe(50)


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=2):
            return True
    except OSError:
        return False


@cache
def postgres_problem() -> str | None:
    """None when PostgreSQL answers at PG_URL, else why it does not."""
    if not _reachable(PG_URL, 5432):
        return f"PostgreSQL unreachable at {PG_URL}"
    try:
        import psycopg

        with psycopg.connect(_maintenance_url(), connect_timeout=5) as conn:
            conn.execute("select 1")
    except Exception as exc:  # noqa: BLE001 - any failure means "skip, and say why"
        return f"PostgreSQL unusable: {exc}"
    return None


@cache
def redis_problem() -> str | None:
    if not _reachable(REDIS_URL, 6379):
        return f"Redis unreachable at {REDIS_URL}"
    return None


def services_problem() -> str | None:
    return postgres_problem() or redis_problem()


def _maintenance_url() -> str:
    parts = urlsplit(PG_URL)
    return parts._replace(path="/postgres").geturl()


def _pg_dbname() -> str:
    name = urlsplit(PG_URL).path.lstrip("/")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"unsafe database name {name!r}")
    return name


def _manage(env: dict[str, str], *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    if out.returncode:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
    return out.stdout


def _prepare(database_url: str | Path) -> str:
    """Migrate the database and create the benchmark operator; return its API token."""
    from bench import procs

    env = procs.child_env(
        database_url,
        RESILIENT_OPERATOR_USERNAME=OPERATOR,
        RESILIENT_OPERATOR_PASSWORD=secrets.token_urlsafe(16),
        LOG_LEVEL="WARNING",
    )
    _manage(env, "migrate", "--noinput")
    out = _manage(env, "ensure_operator")
    match = re.search(r"API token: (\w+)", out)
    if not match:
        raise RuntimeError(f"no token in ensure_operator output:\n{out}")
    return match.group(1)


# --- SQLite ------------------------------------------------------------------------------------

_sqlite_token: str | None = None


def sqlite_copy(name: str) -> tuple[Path, str]:
    """A fresh, migrated SQLite file var/bench/NAME/resilient.sqlite3 and the operator's token."""
    global _sqlite_token
    if _sqlite_token is None:
        TEMPLATE.parent.mkdir(parents=True, exist_ok=True)
        _remove_sqlite(TEMPLATE)
        _sqlite_token = _prepare(TEMPLATE)
        with sqlite3.connect(TEMPLATE) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    path = VAR / name / SQLITE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_sqlite(path)
    shutil.copyfile(TEMPLATE, path)
    return path, _sqlite_token


def sqlite_remove(path: Path) -> None:
    _remove_sqlite(path)


def _remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def sqlite_connect(path: Path) -> sqlite3.Connection:
    """A raw connection with the same pragmas the app uses (WAL, synchronous=NORMAL, busy timeout)."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


# --- PostgreSQL --------------------------------------------------------------------------------

_pg_token: str | None = None


def pg_connect(**kwargs):
    import psycopg

    return psycopg.connect(PG_URL, connect_timeout=5, **kwargs)


def pg_fresh() -> tuple[str, str]:
    """The harness's PostgreSQL database, migrated once per run, with empty job tables."""
    global _pg_token
    if _pg_token is None:
        import psycopg

        name = _pg_dbname()
        with psycopg.connect(_maintenance_url(), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        _pg_token = _prepare(PG_URL)
    with pg_connect(autocommit=True) as conn:
        conn.execute("TRUNCATE jobs_jobevent, jobs_job RESTART IDENTITY")
        conn.execute("VACUUM ANALYZE jobs_job")
    return PG_URL, _pg_token


def redis_flush() -> None:
    """Empty the harness's own Redis database (stale wake-ups from an earlier benchmark)."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    try:
        client.flushdb()
    finally:
        client.close()
