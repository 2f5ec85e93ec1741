"""Submission at scale over real HTTP against one real Daphne: one job, batches, the CLI.

One ``daphne`` process serves ``bench.minimal_settings``: the real URLs plus a minimal DRF create
endpoint on the same model (``bench.minimal_api``), so both are served the same way in the same
run. Cases, each against a named same-run baseline:

- one-job ``POST /api/jobs/`` vs ``POST /bench/minimal/`` (1 client, alternating rounds);
- ``POST /api/jobs/bulk/`` with 100 and 1,000 jobs: jobs/s and p50/p99 per request, as a
  multiple of the one-job rate, and as a ratio of a raw INSERT of the same rows and their
  ``submitted`` events in one transaction on the same database (no HTTP, no checks);
- the ``resilient`` CLI loading a JSON Lines file of 100,000 jobs (4,000 with --quick) vs the
  bulk rate.

The server has no pending cap (``RESILIENT_MAX_PENDING_PER_USER=0``: the loads exceed 10,000);
every other check and the submission throttle stay on.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import requests

from bench import procs, scratch
from bench.report import Row, skipped
from bench.stats import percentile, ratio

ONE_JOB = {"kind": "noop"}
MINIMAL = {"kind": "noop", "dependency": "local"}
CLI = Path(sys.executable).parent / "resilient"


def _serve(name: str, database_url, redis_url: str = "", *, wsgi: bool = False):
    """Daphne (ASGI, as ``make run`` and the web nodes serve), or gunicorn's sync WSGI worker."""
    port = procs.free_port()
    env = procs.child_env(database_url, redis_url=redis_url, LOG_LEVEL="WARNING",
                          DJANGO_SETTINGS_MODULE="bench.minimal_settings", RESILIENT_MAX_PENDING_PER_USER="0")
    if wsgi:
        args = ["-m", "gunicorn", "-b", f"127.0.0.1:{port}", "-w", "1", "--log-level", "warning", "resilient.wsgi:application"]
    else:
        args = ["-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "resilient.asgi:application"]
    proc = procs.start(name, args, env)
    procs.wait_for_port(proc, port)
    return proc, f"http://127.0.0.1:{port}"


def _servers_compared(label: str, database_url, token: str, redis_url: str, *, count: int, rounds: int) -> list[Row]:
    """One-job POST and a batch of 100 under gunicorn (1 sync worker) vs Daphne, same database."""
    try:
        import gunicorn  # noqa: F401
    except ImportError:
        return [skipped("submit", f"gunicorn vs Daphne {label}", "gunicorn is not installed (pip install -e '.[wsgi]')")]
    rates: dict[str, dict[str, float]] = {}
    for server in ("daphne", "gunicorn"):
        proc, base = _serve(f"submit-{server}-{label}", database_url, redis_url, wsgi=server == "gunicorn")
        try:
            session = requests.Session()
            session.headers["Authorization"] = f"Token {token}"
            _posts(session, f"{base}/api/jobs/", ONE_JOB, 10)
            lat, s = _posts(session, f"{base}/api/jobs/", ONE_JOB, count)
            one = count / s
            lat, s = _posts(session, f"{base}/api/jobs/bulk/", _batch_body(100), max(3, count // 40))
            rates[server] = {"one": one, "batch": 100 * max(3, count // 40) / s}
            session.close()
        finally:
            procs.stop(proc)
    return [
        Row(bench="submit", case=f"gunicorn vs Daphne one-job POST {label}", value=rates["gunicorn"]["one"], unit="jobs/s",
            baseline=rates["daphne"]["one"], baseline_label="jobs/s same POST under Daphne",
            ratio=ratio(rates["gunicorn"]["one"], rates["daphne"]["one"]), target="WSGI nodes if >= 1.5",
            note="1 client, one sync gunicorn worker, keep-alive sessions"),
        Row(bench="submit", case=f"gunicorn vs Daphne batch of 100 {label}", value=rates["gunicorn"]["batch"], unit="jobs/s",
            baseline=rates["daphne"]["batch"], baseline_label="jobs/s same batches under Daphne",
            ratio=ratio(rates["gunicorn"]["batch"], rates["daphne"]["batch"]), note="1 client"),
    ]


def _posts(session: requests.Session, url: str, body, n: int, *, expect: int = 201) -> tuple[list[float], float]:
    """``n`` POSTs of ``body``; (latencies ms, seconds). Any other status than ``expect`` fails the case."""
    latencies = []
    started = time.perf_counter()
    for _ in range(n):
        t = time.perf_counter()
        response = session.post(url, json=body() if callable(body) else body, timeout=120)
        latencies.append((time.perf_counter() - t) * 1000)
        if response.status_code != expect:
            raise RuntimeError(f"POST {url}: {response.status_code} {response.text[:300]}")
    return latencies, time.perf_counter() - started


def _one_job(label: str, session, base: str, *, count: int, rounds: int) -> tuple[Row, float]:
    ours, minimal = ([], 0.0), ([], 0.0)
    _posts(session, f"{base}/api/jobs/", ONE_JOB, 10)  # warm both paths
    _posts(session, f"{base}/bench/minimal/", MINIMAL, 10)
    for _ in range(rounds):
        lat, s = _posts(session, f"{base}/bench/minimal/", MINIMAL, count // rounds)
        minimal = (minimal[0] + lat, minimal[1] + s)
        lat, s = _posts(session, f"{base}/api/jobs/", ONE_JOB, count // rounds)
        ours = (ours[0] + lat, ours[1] + s)
    rate, base_rate = len(ours[0]) / ours[1], len(minimal[0]) / minimal[1]
    row = Row(
        bench="submit", case=f"one job POST /api/jobs/ {label}", value=rate, unit="jobs/s",
        p50_ms=percentile(ours[0], 50), p99_ms=percentile(ours[0], 99),
        baseline=base_rate, baseline_label="req/s minimal DRF CreateAPIView, same server", ratio=ratio(rate, base_rate),
        target=">= 0.8", status="ok", note=f"{len(ours[0])} requests each, {rounds} alternating rounds, 1 client",
        extra={"baseline_p50_ms": percentile(minimal[0], 50), "baseline_p99_ms": percentile(minimal[0], 99)},
    )
    return row, rate


def _batch_body(size: int):
    return lambda: {"jobs": [{"kind": "noop", "payload": {"n": n}} for n in range(size)]}


def _batches(label: str, session, base: str, conn, *, size: int, requests_n: int, one_job_rate: float) -> list[Row]:
    lat, seconds = _posts(session, f"{base}/api/jobs/bulk/", _batch_body(size), requests_n)
    rate = size * requests_n / seconds
    raw = _raw_insert_rate(conn, size=size, batches=requests_n)
    common = {"p50_ms": percentile(lat, 50), "p99_ms": percentile(lat, 99), "value": rate, "unit": "jobs/s"}
    note = f"{requests_n} requests of {size} jobs, 1 client"
    return [
        Row(bench="submit", case=f"batch of {size} {label} vs one job", **common, baseline=one_job_rate,
            baseline_label="jobs/s one-job POST, same run", ratio=ratio(rate, one_job_rate), target=">= 20", note=note),
        Row(bench="submit", case=f"batch of {size} {label} vs raw INSERT", **common, baseline=raw,
            baseline_label="jobs/s raw INSERT of the same rows + events", ratio=ratio(rate, raw), note=note),
    ]


def _raw_insert_rate(conn, *, size: int, batches: int) -> float:
    """Rows/s of ``batches`` transactions each inserting ``size`` jobs and their events, raw SQL."""
    sqlite = type(conn).__module__.startswith("sqlite3")
    mark = "?" if sqlite else "%s"
    job_sql = (
        "INSERT INTO jobs_job (uuid, kind, payload, dependency, priority, status, attempts, max_attempts, run_after, "
        "lease_owner, last_error, created_at, updated_at, idempotency_fingerprint) "
        f"VALUES ({', '.join([mark] * 14)})"
    )
    event_sql = f"INSERT INTO jobs_jobevent (job_id, kind, actor, at, details) VALUES ({', '.join([mark] * 5)})"
    started = time.perf_counter()
    for _ in range(batches):
        now = scratch_now(sqlite)
        rows = [(uuid.uuid4().hex if sqlite else uuid.uuid4(), "noop", json.dumps({"n": n}), "local", 0, "pending",
                 0, 5, now, "", "", now, now, "") for n in range(size)]
        if sqlite:
            conn.execute("BEGIN IMMEDIATE")
            seqs = []
            for row in rows:  # one statement per row: what a client without RETURNING-many does
                seqs.append(conn.execute(job_sql + " RETURNING seq", row).fetchone()[0])
            conn.executemany(event_sql, [(seq, "submitted", "user:bench", now, '{"priority": 0}') for seq in seqs])
            conn.execute("COMMIT")
        else:
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(job_sql + " RETURNING seq", rows, returning=True)
                seqs = []
                while True:
                    seqs.append(cur.fetchone()[0])
                    if not cur.nextset():
                        break
                cur.executemany(event_sql, [(seq, "submitted", "user:bench", now, '{"priority": 0}') for seq in seqs])
    return size * batches / (time.perf_counter() - started)


def scratch_now(sqlite: bool):
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    return now.replace(tzinfo=None).isoformat(sep=" ") if sqlite else now


def _cli_load(label: str, base: str, token: str, *, count: int, batch_rate: float) -> Row:
    path = scratch.VAR / "submit-load.jsonl"
    path.write_text("".join(json.dumps({"kind": "noop", "payload": {"n": n}}) + "\n" for n in range(count)))
    env = {"PATH": "/usr/bin:/bin", "RESILIENT_URL": base, "RESILIENT_TOKEN": token}
    started = time.perf_counter()
    out = subprocess.run([str(CLI), "--json", "submit", "--file", str(path), "--batch-size", "1000", "--quiet",
                          "--key-prefix", f"bench-{uuid.uuid4().hex[:8]}"],
                         capture_output=True, text=True, env=env, timeout=1200)
    seconds = time.perf_counter() - started
    if out.returncode != 0:
        raise RuntimeError(f"resilient submit --file: {out.stderr[-500:]}")
    summary = json.loads(out.stdout)
    rate = summary["created"] / seconds
    return Row(bench="submit", case=f"CLI load of {count:,} jobs {label}", value=rate, unit="jobs/s",
               baseline=batch_rate, baseline_label="jobs/s batch of 1000, same run", ratio=ratio(rate, batch_rate),
               status="ok" if summary["created"] == count else "failed",
               note=f"{summary['created']} created in {seconds:.1f} s, batches of 1000, idempotency keys on every line")


def _measure(label: str, base: str, token: str, conn, *, quick: bool) -> list[Row]:
    session = requests.Session()
    session.headers["Authorization"] = f"Token {token}"
    count, rounds = (120, 4) if quick else (400, 8)
    row, one_rate = _one_job(label, session, base, count=count, rounds=rounds)
    rows = [row]
    rows += _batches(label, session, base, conn, size=100, requests_n=10 if quick else 30, one_job_rate=one_rate)
    big = _batches(label, session, base, conn, size=1000, requests_n=3 if quick else 8, one_job_rate=one_rate)
    rows += big
    rows.append(_cli_load(label, base, token, count=4_000 if quick else 100_000, batch_rate=big[0].value))
    session.close()
    return rows


def run(quick: bool) -> list[Row]:
    rows: list[Row] = []
    path, token = scratch.sqlite_copy("submit")
    proc, base = _serve("submit-sqlite", path)
    try:
        conn = scratch.sqlite_connect(path)
        conn.execute("PRAGMA busy_timeout=30000")
        rows += _measure("SQLite", base, token, conn, quick=quick)
        conn.close()
    finally:
        procs.stop(proc)
    rows += _servers_compared("SQLite", path, token, "", count=60 if quick else 200, rounds=1)

    problem = scratch.services_problem()
    if problem:
        return rows + [skipped("submit", "PG+Redis", problem)]
    url, token = scratch.pg_fresh()
    scratch.redis_flush()
    proc, base = _serve("submit-pg", url, scratch.REDIS_URL)
    try:
        with scratch.pg_connect(autocommit=True) as conn:
            rows += _measure("PG+Redis", base, token, conn, quick=quick)
    finally:
        procs.stop(proc)
        scratch.redis_flush()
    rows += _servers_compared("PG+Redis", url, token, scratch.REDIS_URL, count=60 if quick else 200, rounds=1)
    return rows
