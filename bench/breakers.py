"""Breaker overhead: one protected call vs a bare call vs pybreaker in memory (µs/call), and what
the breaker states cost the claim path (µs and queries per claim, with a held backlog on top).

``python -m bench.breakers [--quick]`` prints a table; ``run(quick) -> dict`` returns the numbers.
Measuring runs in a child process configured for a scratch database: SQLite under
``var/bench/breakers.sqlite3`` and, when ``BENCH_POSTGRES_URL`` (a server URL, e.g.
``postgres://postgres@127.0.0.1:5432/``) is set, a fresh PostgreSQL database ``bench_breakers``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRATCH = ROOT / "var" / "bench"
PG_DB = "bench_breakers"


# --- parent side -------------------------------------------------------------------------------


def _child(database_url: str, quick: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESILIENT_")}
    env.update(
        DATABASE_URL=database_url, SECRET_KEY=env.get("SECRET_KEY") or "bench-only-key",
        DJANGO_SETTINGS_MODULE="resilient.settings", LOG_LEVEL="ERROR", PYTHONPATH=str(ROOT),
    )
    env.pop("REDIS_URL", None)
    args = [sys.executable, "-m", "bench.breakers", "--child"] + (["--quick"] if quick else [])
    out = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    if out.returncode:
        raise RuntimeError(f"bench.breakers child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _sqlite_url() -> str:
    SCRATCH.mkdir(parents=True, exist_ok=True)
    path = SCRATCH / "breakers.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{path}"


def _postgres_url(server: str) -> str:
    import psycopg

    with psycopg.connect(server.rstrip("/") + "/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {PG_DB}")
        conn.execute(f"CREATE DATABASE {PG_DB}")
    return server.rstrip("/") + f"/{PG_DB}"


def run(quick: bool) -> dict:
    """Measure on SQLite (always) and PostgreSQL (when BENCH_POSTGRES_URL is set)."""
    results = {"sqlite": _child(_sqlite_url(), quick)}
    server = os.environ.get("BENCH_POSTGRES_URL")
    if server:
        results["postgresql"] = _child(_postgres_url(server), quick)
    else:
        results["postgresql"] = {"skipped": "set BENCH_POSTGRES_URL=postgres://user@host:port/ to measure"}
    return results


def _table(results: dict) -> str:
    lines = []
    for vendor, r in results.items():
        if "skipped" in r:
            lines.append(f"{vendor}: skipped ({r['skipped']})")
            continue
        lines.append(f"{vendor}:")
        for key, value in r.items():
            lines.append(f"  {key:<48} {value}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.breakers", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_measure(args.quick)))
        return 0
    results = run(args.quick)
    print(_table(results))
    print(json.dumps(results))
    return 0


# --- child side: Django configured for the scratch database -----------------------------------------


def _per_call_us(func, n: int, rounds: int = 5) -> float:
    """Median over ``rounds`` of the mean µs per call of ``func`` over ``n`` calls."""
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(n):
            func()
        samples.append((time.perf_counter() - started) / n * 1e6)
    return round(statistics.median(samples), 2)


def _queries(func) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        func()
    return len(ctx.captured_queries)


def _fill(dependency: str, count: int, priority: int) -> None:
    from django.utils import timezone

    from jobs.models import Job

    now = timezone.now()
    batch = 5000
    for start in range(0, count, batch):
        Job.objects.bulk_create(
            [Job(kind="noop", dependency=dependency, priority=priority, run_after=now)
             for _ in range(min(batch, count - start))]
        )


def _measure(quick: bool) -> dict:
    import django

    django.setup()
    import pybreaker
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from jobs import breakers, queue
    from jobs.breakers.storage import pybreaker_for
    from jobs.models import Job, JobStatus

    call_command("migrate", verbosity=0)
    calls = 2_000 if quick else 10_000
    db_calls = 300 if quick else 2_000
    held = 10_000 if quick else 50_000
    claims = 100 if quick else 500

    def bare():
        return None

    memory = pybreaker.CircuitBreaker(fail_max=3, reset_timeout=30)
    row_breaker = pybreaker_for("local", owner="bench")

    def memory_calling():
        with memory.calling():
            bare()

    def protected():
        breakers.call_protected("local", bare, owner="bench")

    def row_calling():
        with row_breaker.calling():
            bare()

    result: dict = {"vendor": connection.vendor}
    result["bare_call_us"] = _per_call_us(bare, calls * 10)
    result["pybreaker_memory_call_us"] = _per_call_us(lambda: memory.call(bare), calls)
    result["pybreaker_memory_calling_us"] = _per_call_us(memory_calling, calls)
    result["protected_call_us (ours, shared row)"] = _per_call_us(protected, db_calls)
    result["protected_call_queries"] = _queries(protected)
    result["pybreaker_row_storage_calling_us"] = _per_call_us(row_calling, db_calls)
    result["pybreaker_row_storage_calling_queries"] = _queries(row_calling)

    # The claim path reads every breaker in one query; ten breakers here.
    breakers.breakers_ensure([f"extra{i}" for i in range(7)])
    now = timezone.now()
    result["claim_gates_us (10 breakers)"] = _per_call_us(lambda: breakers.claim_gates(now=now), db_calls)
    result["claim_gates_queries"] = _queries(lambda: breakers.claim_gates(now=now))

    # Claims: a held backlog of `held` top-priority jobs ("down") above admitted "local" jobs.
    _fill("down", held, 100)
    _fill("local", claims * 3, 0)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE jobs_job")

    def claim():
        job = queue.job_claim_next(worker_id="bench")
        assert job is not None

    started = time.perf_counter()
    for _ in range(claims):
        claim()  # all breakers closed: the one pop-order walk (takes "down" jobs)
    result["claim_us all closed"] = round((time.perf_counter() - started) / claims * 1e6, 1)
    result["claim_queries all closed"] = _queries(claim)
    breakers.breakers_ensure(["down"])  # a dependency not in settings: its row makes it known
    breakers.breaker_force_open(name="down", actor="bench", reason="benchmark")
    Job.objects.filter(status=JobStatus.RUNNING).update(status=JobStatus.SUCCEEDED)
    started = time.perf_counter()
    for _ in range(claims):
        claim()  # "down" forced open: per-dependency probes, the held backlog is never walked
    result[f"claim_us one breaker open, {held:,} held on top"] = round((time.perf_counter() - started) / claims * 1e6, 1)
    result["claim_queries one breaker open"] = _queries(claim)

    # What a naive exclude() would cost instead: walk the held backlog on every claim.
    pending = queue.pop_order().filter(run_after__lte=now)
    result[f"naive exclude() top lookup us ({held:,} held)"] = _per_call_us(
        lambda: pending.exclude(dependency="down").values_list("seq", flat=True).first(), 20, rounds=3
    )
    result["per-dependency top lookup us"] = _per_call_us(
        lambda: pending.filter(dependency="local").values_list("seq", flat=True).first(), 200, rounds=3
    )
    return result


if __name__ == "__main__":
    sys.exit(main())
