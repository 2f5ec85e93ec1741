"""(a) API submission throughput over real HTTP against a real Daphne.

``daphne resilient.asgi:application`` runs as a subprocess on a free port with its own database.
1 and 8 client threads (one ``requests.Session`` each) POST ``{"kind": "noop"}`` to /api/jobs/.
Baseline, same server, same clients, same token: ``GET /queue`` (authentication plus one COUNT),
so the ratio is what a submission costs over the cheapest authenticated endpoint. The two run in
alternating rounds, so a burst of load from a neighbour hits both.
"""

from __future__ import annotations

import threading
import time

import requests

from bench import procs, scratch, sql
from bench.report import Row, skipped
from bench.stats import percentile, ratio

CLIENTS = (1, 8)


def _load(session_factory, method: str, url: str, *, warm: str, clients: int, count: int, cap: float, json_body=None):
    """``count`` requests from ``clients`` threads (or until ``cap`` seconds); latencies in ms."""
    lock = threading.Lock()
    remaining = [count]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    sessions = [session_factory() for _ in range(clients)]
    for s in sessions:  # open the connections outside the timed part
        s.get(warm, timeout=30)
    deadline = time.monotonic() + cap

    def client(session):
        mine, codes = [], {}
        while time.monotonic() < deadline:
            with lock:
                if remaining[0] <= 0:
                    break
                remaining[0] -= 1
            t = time.perf_counter()
            resp = session.request(method, url, json=json_body, timeout=30)
            mine.append((time.perf_counter() - t) * 1000)
            codes[resp.status_code] = codes.get(resp.status_code, 0) + 1
        with lock:
            latencies.extend(mine)
            for k, v in codes.items():
                statuses[k] = statuses.get(k, 0) + v

    threads = [threading.Thread(target=client, args=(s,)) for s in sessions]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - started
    for s in sessions:
        s.close()
    return latencies, seconds, statuses


def _measure(label: str, base: str, token: str, *, count: int, cap: float, rounds: int, job_count) -> list[Row]:
    def session():
        s = requests.Session()
        s.headers["Authorization"] = f"Token {token}"
        return s

    rows = []
    for clients in CLIENTS:
        sub_lat, sub_s, sub_ok, base_lat, base_s, bad = [], 0.0, 0, [], 0.0, {}
        before = job_count()
        for _ in range(rounds):
            lat, s, codes = _load(session, "GET", f"{base}/queue", warm=f"{base}/queue", clients=clients, count=count // rounds, cap=cap / rounds)
            base_lat += lat
            base_s += s
            bad.update({k: v for k, v in codes.items() if k != 200})
            lat, s, codes = _load(
                session, "POST", f"{base}/api/jobs/", warm=f"{base}/queue", clients=clients, count=count // rounds,
                cap=cap / rounds, json_body={"kind": "noop"},
            )
            sub_lat += lat
            sub_s += s
            sub_ok += codes.get(201, 0)
            bad.update({k: v for k, v in codes.items() if k != 201})
        stored = job_count() - before
        sub_rate = sub_ok / sub_s
        base_rate = len(base_lat) / base_s
        note = f"{sub_ok} submitted, {stored} stored"
        if bad or stored != sub_ok:
            note += f"; UNEXPECTED statuses {bad}" if bad else "; STORED COUNT MISMATCH"
        rows.append(Row(
            bench="api", case=f"submit {label}, {clients} client{'s' if clients > 1 else ''}",
            value=sub_rate, unit="jobs/s",
            p50_ms=percentile(sub_lat, 50), p99_ms=percentile(sub_lat, 99),
            baseline=base_rate, baseline_label="req/s GET /queue", ratio=ratio(sub_rate, base_rate),
            status="ok" if not bad and stored == sub_ok else "failed", note=note,
            extra={"baseline_p50_ms": percentile(base_lat, 50), "baseline_p99_ms": percentile(base_lat, 99),
                   "requests": len(sub_lat), "seconds": sub_s},
        ))
    return rows


def _serve(name: str, database_url: str, redis_url: str = ""):
    port = procs.free_port()
    env = procs.child_env(database_url, redis_url=redis_url, LOG_LEVEL="WARNING")
    proc = procs.start(name, ["-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "resilient.asgi:application"], env)
    procs.wait_for_port(proc, port)
    return proc, f"http://127.0.0.1:{port}"


def run(quick: bool) -> list[Row]:
    count, cap, rounds = (120, 6, 2) if quick else (600, 12, 3)
    rows: list[Row] = []

    path, token = scratch.sqlite_copy("api")
    proc, base = _serve("api-sqlite", path)
    try:
        conn = scratch.sqlite_connect(path)
        rows += _measure("SQLite", base, token, count=count, cap=cap, rounds=rounds,
                         job_count=lambda: sum(sql.counts(conn).values()))
        conn.close()
    finally:
        procs.stop(proc)

    problem = scratch.services_problem()
    if problem:
        return rows + [skipped("api", f"submit PG+Redis, {c} client(s)", problem) for c in CLIENTS]
    url, token = scratch.pg_fresh()
    scratch.redis_flush()
    proc, base = _serve("api-pg", url, scratch.REDIS_URL)
    try:
        with scratch.pg_connect(autocommit=True) as conn:
            pg_rows = _measure("PG+Redis", base, token, count=count, cap=cap, rounds=rounds,
                               job_count=lambda: sum(sql.counts(conn).values()))
            # Persistent connections under Daphne: each request runs in its own thread, so check
            # that the server does not pile up one idle connection per request.
            held = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchone()[0]
            for row in pg_rows:
                row.note += f"; server holds {held} PG connection(s) after the run"
                row.extra["server_pg_connections"] = held
            rows += pg_rows
    finally:
        procs.stop(proc)
        scratch.redis_flush()
    return rows
