"""(e) Competitors: the same no-op drain through Celery + Redis and procrastinate + PostgreSQL.

The issue asks for a drain "no slower than procrastinate or Celery with Redis measured the same
way on this machine"; this module is that measurement, shaped like ``drain`` so the numbers
compare: N no-op jobs (10,000; 1,000 with ``--quick``) queued before any worker starts, one
worker process with 10 slots and then two, and throughput = N over the queue's own window, first
task start → last task finish, so process start-up and the harness's polling do not count.
Workers log at INFO, as ``drain`` runs ours (both write per-job log lines).

- **Celery 5 + Redis broker** (``redis://127.0.0.1:6379/3``, flushed before and after; no
  result backend, ``ignore_result``): a sync task returning ``{}``. Worker flags
  ``--concurrency 10 --without-gossip --without-mingle --without-heartbeat``, default prefetch
  and early acks. The ``threads`` pool is the comparison: like our worker it runs 10 slots in one
  Python process (one GIL, one broker connection), so "x1" and "x2" mean the same process count
  on both sides. A ``prefork`` row (one parent + 10 child processes) is shown for reference
  only: it is Celery's default, but it uses 11 processes on our 2 cores. Timing: each task pushes
  its ``time.time()`` start and finish to a Redis list — one extra localhost round trip per task,
  the only work a task does beyond returning.
- **procrastinate 3 on PostgreSQL** (database ``bench_procrastinate``, its ``public`` schema
  dropped and procrastinate's schema applied before every case): an ``async`` task returning
  ``{}`` (our ``noop`` is async too), N jobs deferred in one ``batch_defer``, workers with
  ``--concurrency 10``, LISTEN/NOTIFY on (the default). Timing: procrastinate's own
  ``procrastinate_events`` rows, first ``started`` → last ``succeeded`` (``at`` is ``now()``, the
  start of the claiming / finishing transaction).

Every case checks that each job ran exactly once (Celery: N timestamp pairs, not more;
procrastinate: N succeeded jobs, each with one ``started`` and one ``succeeded`` event).

Our windows are comparable but not identical: ours run from the claim that sets ``started_at``
to the outcome write that sets ``finished_at``; Celery's from inside the first task to inside the
last (its message fetch and ack fall outside), which if anything flatters Celery slightly.

Isolation: Celery and procrastinate never enter the project's venv. They live in
``var/bench/competitors-venv``, built on first use from ``bench/competitors-requirements.txt``
(reinstalled when that file's hash changes); the task modules in ``bench/competitor_apps/`` run
only with that venv's python. Without network for the install, or without Redis / PostgreSQL,
the rows say SKIPPED and why.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from bench import procs, scratch
from bench.report import Row, failed, skipped

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "competitors-requirements.txt"
APPS = HERE / "competitor_apps"
VENV = scratch.VAR / "competitors-venv"
PYTHON = VENV / "bin" / "python"
STAMP = VENV / ".requirements-sha256"

REDIS_URL = "redis://127.0.0.1:6379/3"
TIMES_KEY = "bench:celery:times"  # same key as competitor_apps/celery_app.py
PG_NAME = "bench_procrastinate"
PG_URL = urlsplit(scratch.PG_URL)._replace(path=f"/{PG_NAME}").geturl()
PG_MAINTENANCE_URL = urlsplit(scratch.PG_URL)._replace(path="/postgres").geturl()
SLOTS = 10

CELERY_CASES = [("threads", 1), ("threads", 2), ("prefork", 1)]
PROCRASTINATE_CASES = [1, 2]


# --- the competitors' venv ---------------------------------------------------------------------


def ensure_venv() -> str | None:
    """Build or update the competitors' venv; None when ready, else why it could not be built.

    A stamp holding the requirements file's hash skips pip on every run after the first.
    """
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if PYTHON.exists() and STAMP.exists() and STAMP.read_text().strip() == digest:
        return None
    try:
        if not PYTHON.exists():
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, capture_output=True, timeout=120)
        subprocess.run(
            [str(PYTHON), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", str(REQUIREMENTS)],
            check=True, capture_output=True, text=True, timeout=600,
        )
    except subprocess.CalledProcessError as exc:
        tail = (exc.stderr or exc.stdout or "").strip().splitlines()[-1:] or ["no output"]
        return f"installing {REQUIREMENTS.name} failed: {tail[0][:150]}"
    except (subprocess.TimeoutExpired, OSError) as exc:
        return f"installing {REQUIREMENTS.name} failed: {exc}"
    STAMP.write_text(digest + "\n")
    return None


def _env() -> dict[str, str]:
    """Our environment minus the project's settings, plus where the competitors find their services."""
    drop = {"DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL", "VIRTUAL_ENV", "PYTHONPATH", "SECRET_KEY"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(
        PYTHONPATH=str(APPS),
        PYTHONUNBUFFERED="1",
        BENCH_CELERY_BROKER=REDIS_URL,
        BENCH_PROCRASTINATE_DSN=PG_URL,
    )
    return env


def _run(args: list[str], *, timeout: float = 300) -> None:
    """Run the competitors' python to completion (enqueue, schema), failing with its output."""
    out = subprocess.run(
        [str(PYTHON), *args], cwd=scratch.ROOT, env=_env(), capture_output=True, text=True, timeout=timeout
    )
    if out.returncode:
        raise RuntimeError(f"{' '.join(args)} exited {out.returncode}: {(out.stderr or out.stdout)[-500:]}")


def _wait(done: Callable[[], bool], workers: list, timeout: float) -> bool:
    """Poll ``done`` until true; False at the deadline. A worker that exits early fails at once."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return True
        for proc in workers:
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited {proc.returncode}: {procs.log_text(proc)[-500:]}")
        time.sleep(0.25)
    return False


def _row(case: str, n: int, window: float, *, ok: bool, check: str, **extra) -> Row:
    load = os.getloadavg()[0]
    row = Row(bench="competitors", case=case, value=n / window, unit="jobs/s",
              status="ok" if ok else "failed", extra={"window_s": window, "jobs": n, "loadavg": load, **extra})
    row.note = f"{n:,} jobs, {check}; load {load:.1f}" if ok else f"VERIFY FAILED: {check}"
    return row


# --- Celery + Redis ----------------------------------------------------------------------------


def _redis():
    import redis

    return redis.Redis.from_url(REDIS_URL, socket_timeout=10)


def _celery_worker(name: str, pool: str, index: int):
    args = ["-m", "celery", "-A", "celery_app", "worker", "--pool", pool, "--concurrency", str(SLOTS),
            "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "INFO",
            "-n", f"bench{index}@%h"]
    return procs.start(name, args, _env(), python=PYTHON)


def _celery_label(pool: str, k: int) -> str:
    if pool == "prefork":
        return f"Celery+Redis prefork x{k} ({k * SLOTS} child processes; reference)"
    return f"Celery+Redis {pool} x{k} ({k * SLOTS} slots)"


def _celery_case(pool: str, k: int, n: int, timeout: float) -> Row:
    case = _celery_label(pool, k)
    client = _redis()
    try:
        client.flushdb()
        _run([str(APPS / "celery_app.py"), "enqueue", str(n)])
        queued = client.llen("celery")
        if queued != n:
            return failed("competitors", case, f"{queued} of {n} tasks in the broker queue after enqueue")
        workers = [_celery_worker(f"competitors-celery-{pool}{k}-{i}", pool, i) for i in range(k)]
        try:
            drained = _wait(lambda: client.llen(TIMES_KEY) >= n, workers, timeout)
        finally:
            for proc in workers:
                procs.stop(proc)
        pairs = [tuple(map(float, item.split())) for item in client.lrange(TIMES_KEY, 0, -1)]
        if not drained:
            return failed("competitors", case, f"{len(pairs)} of {n} tasks ran within {timeout:.0f} s")
        window = max(f for _, f in pairs) - min(s for s, _ in pairs)
        return _row(case, n, window, ok=len(pairs) == n, check=f"{len(pairs):,} ran (each once)", pool=pool)
    finally:
        client.flushdb()
        client.close()


# --- procrastinate + PostgreSQL ----------------------------------------------------------------


def _pg_fresh_schema() -> None:
    """Create ``bench_procrastinate`` if missing, empty its public schema, apply procrastinate's."""
    import psycopg

    with psycopg.connect(PG_MAINTENANCE_URL, autocommit=True, connect_timeout=5) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (PG_NAME,)).fetchone():
            conn.execute(f'CREATE DATABASE "{PG_NAME}"')
    with psycopg.connect(PG_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    _run(["-m", "procrastinate", "--app", "procrastinate_app.app", "schema", "--apply"], timeout=120)


def _procrastinate_worker(name: str):
    args = ["-m", "procrastinate", "--app", "procrastinate_app.app", "worker",
            "--concurrency", str(SLOTS), "--name", name]
    return procs.start(name, args, _env(), python=PYTHON)


def _procrastinate_done(conn, n: int) -> bool:
    finished = conn.execute(
        "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('succeeded', 'failed')"
    ).fetchone()[0]
    return finished >= n


def _procrastinate_check(conn, n: int) -> tuple[float, bool, str]:
    """The events window in seconds, and whether every job succeeded with one start and one success."""
    window = conn.execute(
        "SELECT extract(epoch FROM max(at) FILTER (WHERE type = 'succeeded') "
        "- min(at) FILTER (WHERE type = 'started')) FROM procrastinate_events"
    ).fetchone()[0]
    succeeded = conn.execute("SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'").fetchone()[0]
    odd = conn.execute(
        "SELECT count(*) FROM (SELECT job_id FROM procrastinate_events GROUP BY job_id "
        "HAVING count(*) FILTER (WHERE type = 'started') <> 1 "
        "OR count(*) FILTER (WHERE type = 'succeeded') <> 1) j"
    ).fetchone()[0]
    ok = succeeded == n and odd == 0
    return float(window), ok, f"{succeeded:,} succeeded, {odd} without exactly one start and one success"


def _procrastinate_label(k: int) -> str:
    return f"procrastinate+PG x{k} ({k * SLOTS} slots)"


def _procrastinate_case(k: int, n: int, timeout: float) -> Row:
    import psycopg

    case = _procrastinate_label(k)
    _pg_fresh_schema()
    _run([str(APPS / "procrastinate_app.py"), "defer", str(n)])
    with psycopg.connect(PG_URL, autocommit=True, connect_timeout=5) as conn:
        workers = [_procrastinate_worker(f"competitors-procrastinate{k}-{i}") for i in range(k)]
        try:
            drained = _wait(lambda: _procrastinate_done(conn, n), workers, timeout)
        finally:
            for proc in workers:
                procs.stop(proc)
        if not drained:
            return failed("competitors", case, f"not drained within {timeout:.0f} s")
        window, ok, check = _procrastinate_check(conn, n)
    return _row(case, n, window, ok=ok, check=check)


# --- entry point -------------------------------------------------------------------------------


def _guarded(case: str, measure: Callable[[], Row]) -> Row:
    """One case's row; an error in it fails that row only, so the other competitor still runs."""
    try:
        return measure()
    except Exception as exc:  # noqa: BLE001 - reported in the row, with the worker log on disk
        return failed("competitors", case, f"{type(exc).__name__}: {exc}".splitlines()[0][:200])


def run(quick: bool) -> list[Row]:
    n = 1_000 if quick else 10_000
    timeout = 120 if quick else 300
    celery = {_celery_label(pool, k): (lambda pool=pool, k=k: _celery_case(pool, k, n, timeout))
              for pool, k in CELERY_CASES}
    procrastinate = {_procrastinate_label(k): (lambda k=k: _procrastinate_case(k, n, timeout))
                     for k in PROCRASTINATE_CASES}
    problem = ensure_venv()
    if problem:
        return [skipped("competitors", case, problem) for case in [*celery, *procrastinate]]
    rows: list[Row] = []
    for cases, problem in ((celery, scratch.redis_problem()), (procrastinate, scratch.postgres_problem())):
        if problem:
            rows += [skipped("competitors", case, problem) for case in cases]
        else:
            rows += [_guarded(case, measure) for case, measure in cases.items()]
    return rows
