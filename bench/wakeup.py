"""(d) Wake-up latency: submission → ``started_at`` on an idle worker.

Jobs are submitted one at a time over HTTP (``POST /api/jobs/``), spaced out so the worker is
idle each time, with ``RESILIENT_POLL_INTERVAL=5``: a job that starts quickly was started by the
wake-up message, not by a poll. Latency per job is ``started_at - created_at`` as the two
processes wrote them (same clock). Shapes: embedded (``manage.py serve``: Daphne + worker in one
process, SQLite, in-memory channel layer) and scale-out (``daphne`` + ``runworker jobs``,
PostgreSQL + Redis). Baseline: the client's own POST round trip in the same run.
"""

from __future__ import annotations

import time

import requests

from bench import procs, scratch, sql
from bench.report import Row, skipped
from bench.stats import percentile, ratio

POLL = "5"
TARGET_MS = 50


def _submit_spaced(base: str, token: str, n: int, spacing: float) -> list[float]:
    session = requests.Session()
    session.headers["Authorization"] = f"Token {token}"
    for _ in range(3):  # warm up the connection and the server's code paths
        session.post(f"{base}/api/jobs/", json={"kind": "noop"}, timeout=30).raise_for_status()
    time.sleep(0.5)
    rtt = []
    next_at = time.monotonic()
    for _ in range(n):
        next_at += spacing
        t = time.perf_counter()
        session.post(f"{base}/api/jobs/", json={"kind": "noop"}, timeout=30).raise_for_status()
        rtt.append((time.perf_counter() - t) * 1000)
        time.sleep(max(0.0, next_at - time.monotonic()))
    session.close()
    return rtt


def _measure(label: str, conn, base: str, token: str, n: int, spacing: float) -> Row:
    rtt = _submit_spaced(base, token, n, spacing)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        c = sql.counts(conn)
        if not c.get("pending") and not c.get("running"):
            break
        time.sleep(0.1)
    lat = sql.start_latencies_ms(conn)[3:]  # the warm-up jobs are not measured
    p50, p99 = percentile(lat, 50), percentile(lat, 99)
    slow = sum(1 for x in lat if x > 1000)
    return Row(
        bench="wakeup", case=label, value=p50, unit="ms p50", p50_ms=p50, p99_ms=p99,
        baseline=percentile(rtt, 50), baseline_label="ms POST p50", ratio=ratio(p50, percentile(rtt, 50)),
        target=f"p50 <{TARGET_MS} ms", status="ok" if len(lat) == n else "failed",
        note=f"{len(lat)}/{n} started; {slow} took >1 s (poll interval {POLL} s); spaced {spacing * 1000:.0f} ms",
        extra={"max_ms": max(lat) if lat else None, "post_p99_ms": percentile(rtt, 99)},
    )


def run(quick: bool) -> list[Row]:
    n, spacing = (60, 0.02) if quick else (200, 0.02)
    rows: list[Row] = []

    path, token = scratch.sqlite_copy("wakeup")
    port = procs.free_port()
    env = procs.child_env(path, RESILIENT_POLL_INTERVAL=POLL, LOG_LEVEL="INFO")
    proc = procs.start("wakeup-serve", ["manage.py", "serve", "--port", str(port)], env)
    try:
        procs.wait_for_log(proc, " started (")
        procs.wait_for_port(proc, port)
        conn = scratch.sqlite_connect(path)
        rows.append(_measure("SQLite embedded (serve)", conn, f"http://127.0.0.1:{port}", token, n, spacing))
        conn.close()
    finally:
        procs.stop(proc)

    problem = scratch.services_problem()
    if problem:
        return rows + [skipped("wakeup", "PG+Redis (daphne + runworker)", problem)]
    url, token = scratch.pg_fresh()
    scratch.redis_flush()
    port = procs.free_port()
    env = procs.child_env(url, redis_url=scratch.REDIS_URL, RESILIENT_POLL_INTERVAL=POLL, LOG_LEVEL="INFO")
    web = procs.start("wakeup-daphne", ["-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "resilient.asgi:application"], env)
    worker = procs.start("wakeup-runworker", ["manage.py", "runworker", "jobs"], env)
    try:
        procs.wait_for_port(web, port)
        procs.wait_for_log(worker, " started (")
        with scratch.pg_connect(autocommit=True) as conn:
            rows.append(_measure("PG+Redis (daphne + runworker)", conn, f"http://127.0.0.1:{port}", token, n, spacing))
    finally:
        procs.stop(worker)
        procs.stop(web)
        scratch.redis_flush()
    return rows
