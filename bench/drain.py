"""(c) Worker drain: N ``noop`` jobs through real worker processes, against the raw SQL limit.

Workers start first and idle; then one bulk INSERT … SELECT adds N pending jobs (no wake-up is
sent, so workers find them by polling, at a 0.1 s interval here). Throughput is N over the
database's own window, first ``started_at`` → last ``finished_at``, so process start-up and the
harness's polling do not count. Every job must end ``succeeded`` with exactly one ``claimed``
and one ``succeeded`` event.

Workers run with the default 10 slots, so each trip to the database records up to 10 outcomes
and claims up to 10 jobs in one transaction; the 1-slot cases show the per-job-transaction path
(one outcome and one claim per commit) for comparison.

Baseline, same database, same run: a raw SQL loop (``sqlite3`` / ``psycopg``) that claims and
finishes one job per transaction through the same pop-order index — the physical limit. It runs
before and after the worker cases and the faster run counts. A second raw loop that also writes
the two audit rows per job shows what the audit trail alone costs.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bench import procs, scratch, sql
from bench.report import Row, failed, skipped
from bench.stats import ratio

POLL = "0.1"
TARGET = 0.5
SLOTS = 10  # the default RESILIENT_WORKER_CONCURRENCY


def _wait_drained(conn, n: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        c = sql.counts(conn)
        if c.get("succeeded", 0) + c.get("failed", 0) >= n and not c.get("pending") and not c.get("running"):
            return True
        time.sleep(0.25)
    return False


def _raw(conn, n: int, *, events: bool) -> float:
    sql.reset(conn)
    sql.fill(conn, n)
    done, seconds = sql.raw_loop(conn, events=events, deadline=120)
    if done != n:
        raise RuntimeError(f"raw loop finished {done} of {n} jobs")
    return done / seconds


def _case(bench_label: str, conn, n: int, start: Callable[[], list], timeout: float) -> Row:
    sql.reset(conn)
    workers = start()
    try:
        sql.fill(conn, n)
        drained = _wait_drained(conn, n, timeout)
    finally:
        for proc in workers:
            procs.stop(proc)
    if not drained:
        c = sql.counts(conn)
        return failed("drain", bench_label, f"not drained within {timeout:.0f} s: {c}")
    window = sql.drain_window(conn)
    check = sql.verify_exactly_once(conn, n)
    row = Row(bench="drain", case=bench_label, value=n / window, unit="jobs/s", target=f"≥{TARGET} of raw",
              status="ok" if check["ok"] else "failed", extra={"window_s": window, "jobs": n, **check})
    row.note = f"{n:,} jobs, all succeeded exactly once" if check["ok"] else f"VERIFY FAILED {check}"
    return row


def _worker(name: str, database_url: str, *, redis_url: str = "", serve: bool = False, slots: int = SLOTS,
            **extra: str):
    env = procs.child_env(database_url, redis_url=redis_url, RESILIENT_POLL_INTERVAL=POLL, LOG_LEVEL="INFO",
                          RESILIENT_WORKER_CONCURRENCY=str(slots), **extra)
    if serve:
        args = ["manage.py", "serve", "--port", str(procs.free_port())]
    else:
        args = ["manage.py", "runworker", "jobs"]
    proc = procs.start(name, args, env)
    procs.wait_for_log(proc, " started (")
    return proc


def _finish(rows: list[Row], raw_runs: list[float], raw_events: float) -> list[Row]:
    limit = max(raw_runs)
    for row in rows:
        if row.status == "ok":
            row.baseline, row.baseline_label = limit, "jobs/s raw SQL"
            row.ratio = ratio(row.value, limit)
            row.extra.update(raw_runs=raw_runs, raw_with_events=raw_events)
            row.note += f"; raw+events {raw_events:,.0f} jobs/s"
    return rows


def run(quick: bool) -> list[Row]:
    n = 1_000 if quick else 10_000
    timeout = 120 if quick else 240
    rows: list[Row] = []

    path, _ = scratch.sqlite_copy("drain")
    url = path
    conn = scratch.sqlite_connect(path)
    raw_runs = [_raw(conn, n, events=False)]
    raw_events = _raw(conn, n, events=True)
    sqlite_rows = [
        _case(f"SQLite serve, {SLOTS} slots", conn, n, lambda: [_worker("drain-serve", url, serve=True)], timeout),
        _case("SQLite serve, 1 slot", conn, n, lambda: [_worker("drain-serve-1slot", url, serve=True, slots=1)], timeout),
    ]
    raw_runs.append(_raw(conn, n, events=False))
    rows += _finish(sqlite_rows, raw_runs, raw_events)
    conn.close()

    problem = scratch.services_problem()
    if problem:
        return rows + [skipped("drain", f"PG+Redis runworker x{k}, {SLOTS} slots", problem) for k in (1, 2)]
    url, _ = scratch.pg_fresh()
    scratch.redis_flush()
    with scratch.pg_connect(autocommit=True) as conn:
        raw_runs = [_raw(conn, n, events=False)]
        raw_events = _raw(conn, n, events=True)
        pg_rows = [
            _case(f"PG+Redis runworker x{k}, {SLOTS} slots", conn, n,
                  lambda k=k: [_worker(f"drain-pg{k}-{i}", url, redis_url=scratch.REDIS_URL) for i in range(k)], timeout)
            for k in (1, 2)
        ]
        pg_rows.append(_case("PG+Redis runworker x1, 1 slot", conn, n,
                             lambda: [_worker("drain-pg-1slot", url, redis_url=scratch.REDIS_URL, slots=1)], timeout))
        raw_runs.append(_raw(conn, n, events=False))
        rows += _finish(pg_rows, raw_runs, raw_events)
        sql.reset(conn)
    scratch.redis_flush()
    return rows
