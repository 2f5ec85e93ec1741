"""Dashboard benchmark: ``python -m bench.dashboard [--quick]`` (or ``run(quick) -> dict``).

1. Snapshot build time with 1,000,000 pending jobs (quick: 100,000) on SQLite and on PostgreSQL:
   what one broadcaster tick costs (throughput window refresh + counts + the first 100 in pop
   order + running + finished + events + breakers + JSON), median / p95 / max of repeated
   builds; then again with the ``local`` breaker forced open (two thirds of the jobs held,
   among them the whole first 100).
2. Latency from a job's submission over the API to its appearance in a connected websocket
   client, p50 / p99, against a real ``manage.py serve`` (Daphne + worker, SQLite).
3. While that server's worker drains noop jobs submitted over the API: messages per second one
   client receives (bounded by coalescing) and whether its state (the snapshot with every change
   applied) is exact at the end.
4. A bulk drain: N pending noop jobs inserted straight into that server's database (the API
   alone cannot submit fast enough to load the worker), drained by its worker at full speed
   with one dashboard connected and with none: jobs/s over the database's own window, the
   client's messages per second, and whether its state is exact at the end.

Each database part runs in a child process (Django is configured once per process) with its own
scratch SQLite file or its own PostgreSQL database (``h_dash_bench`` unless
``BENCH_DASHBOARD_PG_URL`` says otherwise). Only 127.0.0.1 is contacted; only processes started
here are stopped, by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("BENCH_DASHBOARD_PG_URL", "postgres://postgres@127.0.0.1:5432/h_dash_bench")
SECRET = "bench-dashboard-secret-key"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(SECRET_KEY=SECRET, DJANGO_SETTINGS_MODULE="resilient.settings", DEBUG="0", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def _pg_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=2):
            return True
    except OSError:
        return False


# --- 1. snapshot build time (child process) ---------------------------------------------------


def _fill(pending: int) -> None:
    """Bulk-insert ``pending`` pending jobs plus some history, in SQL (seconds, not minutes)."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("DELETE FROM jobs_jobevent")
        cur.execute("DELETE FROM jobs_job")
        if connection.vendor == "postgresql":
            series = "FROM generate_series(1, %s) AS g(i)"
            uuid = "gen_random_uuid()"
            ago = "now() - (g.i %% 600) * interval '1 second'"
            now = "now()"
        else:
            series = "FROM (WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < %s) SELECT i FROM g) AS g"
            uuid = "lower(hex(randomblob(16)))"
            ago = "strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now', '-' || (g.i %% 600) || ' seconds')"
            now = "strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now')"
        columns = ("uuid, kind, payload, dependency, priority, status, attempts, max_attempts, run_after, "
                   "lease_owner, last_error, created_at, updated_at, started_at, finished_at, idempotency_fingerprint")

        def insert(count: int, status: str, finished: str, error: str = "") -> None:
            cur.execute(
                f"INSERT INTO jobs_job ({columns}) SELECT {uuid}, 'noop', '{{}}', "
                f"CASE WHEN g.i %% 3 = 0 THEN 'default' ELSE 'local' END, (g.i %% 201) - 100, '{status}', "
                f"0, 5, {now}, '', '{error}', {now}, {now}, {finished}, {finished}, '' {series}",
                [count],
            )

        insert(pending, "pending", "NULL")
        insert(max(1000, pending // 20), "succeeded", ago)
        insert(max(100, pending // 200), "failed", ago, "DependencyFailure: simulated")
        insert(20, "running", now)
        cur.execute(
            "INSERT INTO jobs_jobevent (job_id, kind, at, actor, details) "
            "SELECT seq, 'submitted', created_at, 'bench', '{}' FROM jobs_job ORDER BY seq DESC LIMIT 5000"
        )
        cur.execute("ANALYZE")


def snapshot_child(pending: int, repeats: int) -> dict:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from dashboard import snapshot
    from dashboard.counts import StatusCounter
    from dashboard.throughput import ThroughputWindow

    call_command("migrate", verbosity=0)
    t0 = time.perf_counter()
    _fill(pending)
    fill_seconds = time.perf_counter() - t0

    window = ThroughputWindow()
    counter = StatusCounter()

    def tick() -> tuple[float, dict]:
        start = time.perf_counter()
        window.refresh()
        state = snapshot.build(throughput=window.series(), counter=counter)
        json.dumps(state)
        return time.perf_counter() - start, state

    first, state = tick()  # counts the whole 10-minute window once
    times = [tick()[0] for _ in range(repeats)]
    counter.large.clear()  # SQLite: the tick that recounts large statuses (every 5 s at most)
    recount = tick()[0]
    # An incident: the breaker of "local" (two thirds of the pending jobs, and all of the first
    # 100 in pop order) forced open: its held jobs are counted and every queue row is held.
    from jobs import breakers

    breakers.breaker_force_open(name="local", actor="bench", reason="bench")
    held_times = []
    for _ in range(repeats):
        elapsed, held_state = tick()
        held_times.append(elapsed)
    forced = next(b for b in held_state["breakers"] if b["name"] == "local")
    return {
        "backend": connection.vendor,
        "pending": pending,
        "fill_seconds": round(fill_seconds, 1),
        "first_build_ms": _ms(first),
        "build_ms_median": _ms(statistics.median(times)),
        "build_ms_p95": _ms(_percentile(times, 0.95)),
        "build_ms_max": _ms(max(times)),
        "recount_tick_ms": _ms(recount),
        "breaker_open_build_ms_median": _ms(statistics.median(held_times)),
        "breaker_open_build_ms_p95": _ms(_percentile(held_times, 0.95)),
        "breaker_open_held": [forced["held"], forced["held_bound"]],
        "breaker_open_held_rows": sum(row["held"] for row in held_state["queue"]),
        "load_average": os.getloadavg()[0],
        "counts": state["counts"],
        "estimated": state["estimated"],
        "queue_rows": len(state["queue"]),
        "target_ms": 150,
    }


def _run_child(args: list[str], env: dict[str, str], timeout: float) -> dict:
    out = subprocess.run([sys.executable, "-m", "bench.dashboard", *args], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        return {"error": (out.stderr or out.stdout).strip().splitlines()[-1:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_snapshot(pending: int, repeats: int) -> dict:
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as var:
        results["sqlite"] = _run_child(["--child", "snapshot", str(pending), str(repeats)],
                                       _env(RESILIENT_VAR_DIR=var), timeout=1800)
    if _pg_reachable():
        name = PG_URL.rsplit("/", 1)[-1]
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"CREATE DATABASE {name}"],
                       capture_output=True, timeout=30)
        with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as var:
            results["postgresql"] = _run_child(["--child", "snapshot", str(pending), str(repeats)],
                                               _env(RESILIENT_VAR_DIR=var, DATABASE_URL=PG_URL), timeout=1800)
    else:
        results["postgresql"] = {"skipped": "PostgreSQL not reachable on 127.0.0.1:5432"}
    return results


# --- 2 and 3. latency and flood behaviour against a real server -------------------------------


class Server:
    """``manage.py serve`` on a free port with its own SQLite file; stopped by PID."""

    def __init__(self, var: str, *, root: Path = ROOT) -> None:
        self.env = _env(RESILIENT_VAR_DIR=var, RESILIENT_POLL_INTERVAL="0.5", RESILIENT_SHUTDOWN_GRACE="1",
                        LOG_LEVEL="WARNING")
        self.var = var
        self.root = root  # another source tree (a baseline commit) runs with the same interpreter

    def __enter__(self) -> Server:
        manage = [sys.executable, str(self.root / "manage.py")]
        cwd = self.root
        subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], env=self.env, cwd=cwd, check=True, timeout=300)
        script = ("from django.contrib.auth import get_user_model; from rest_framework.authtoken.models import Token; "
                  "u = get_user_model().objects.create_superuser('bench', password='bench-pass-123'); "
                  "print(Token.objects.create(user=u).key)")
        self.token = subprocess.run([*manage, "shell", "-c", script], env=self.env, cwd=cwd, check=True,
                                    capture_output=True, text=True, timeout=120).stdout.strip().splitlines()[-1]
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.log = open(Path(self.var) / "serve.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen([*manage, "serve", "--port", str(self.port)], env=self.env,
                                     cwd=cwd, stdout=self.log, stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{self.port}"
        import requests

        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(self.base + "/accounts/login/", timeout=1)
                break
            except requests.ConnectionError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("serve did not start") from None
                time.sleep(0.2)
        return self

    def __exit__(self, *exc) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def session_cookie(self) -> str:
        import requests

        s = requests.Session()
        page = s.get(self.base + "/accounts/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        s.post(self.base + "/accounts/login/", data={"username": "bench", "password": "bench-pass-123",
                                                     "csrfmiddlewaretoken": token}, headers={"Referer": self.base + "/"})
        return "; ".join(f"{c.name}={c.value}" for c in s.cookies)


class Watcher:
    """What a plain websocket client sees: the dashboard's state kept as the page keeps it (the
    snapshot, every change applied in ``seq`` order, a resync on a gap), with messages and bytes
    counted while ``counting``."""

    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0
        self.state: dict | None = None
        self.seq: int | None = None
        self.gaps = 0
        self.counting = False

    def receive(self, text: str) -> dict | None:
        """Take one message; returns a request to send back (a resync), if any."""
        message = json.loads(text)
        if self.counting:
            self.messages += 1
            self.bytes += len(text.encode())
        kind = message.get("type")
        if kind == "snapshot":
            self.state, self.seq = message["state"], message.get("seq")
        elif kind == "changes":
            from dashboard import changes

            if self.state is None or message["seq"] != self.seq + 1:
                self.gaps += 1
                self.state = None
                return {"action": "resync"}
            changes.apply(self.state, message["changes"])
            self.seq = message["seq"]
        return None


def _ids(state: dict) -> set[str]:
    return {row["id"] for key in ("queue", "running", "finished") for row in state[key]}


async def _latency_and_flood(server: Server, samples: int, flood: int) -> dict:
    import requests
    import websockets

    api = requests.Session()
    api.headers["Authorization"] = f"Token {server.token}"
    url = f"ws://127.0.0.1:{server.port}/ws/dashboard/"
    headers = {"Cookie": server.session_cookie()}
    loop = asyncio.get_running_loop()
    watcher = Watcher()

    async def follow(timeout: float) -> dict | None:
        """The state after the next snapshot or change (None for any other message)."""
        text = await asyncio.wait_for(ws.recv(), timeout=timeout)
        reply = watcher.receive(text)
        if reply is not None:
            await ws.send(json.dumps(reply))
        return watcher.state if json.loads(text)["type"] in ("snapshot", "changes") else None

    async with websockets.connect(url, origin=server.base, additional_headers=headers, max_size=2**24) as ws:
        # 2. submission -> appearance, one job at a time.
        latencies = []
        for _ in range(samples):
            started = time.perf_counter()
            response = await loop.run_in_executor(None, lambda: api.post(server.base + "/api/jobs/", json={"kind": "noop"}))
            job_id = response.json()["id"]
            while True:
                state = await follow(10)
                if state is not None and job_id in _ids(state):
                    latencies.append(time.perf_counter() - started)
                    break

        # 3. flood: submit ``flood`` jobs from 4 threads while 4 worker slots drain them.
        def submit_many(n: int) -> None:
            s = requests.Session()
            s.headers["Authorization"] = f"Token {server.token}"
            for _ in range(n):
                s.post(server.base + "/api/jobs/", json={"kind": "noop"})

        done_target = flood * 2 + samples
        received = []
        started = time.perf_counter()
        producers = [loop.run_in_executor(None, submit_many, flood // 4) for _ in range(4)]
        last_state = None
        while True:
            state = await follow(30)
            if state is None:
                continue
            received.append(time.perf_counter())
            last_state = state
            if last_state["counts"]["succeeded"] >= done_target and all(p.done() for p in producers):
                break
        await asyncio.gather(*producers)
        elapsed = time.perf_counter() - started
        per_second: dict[int, int] = {}
        for t in received:
            per_second[int(t - started)] = per_second.get(int(t - started), 0) + 1
        truth = api.get(server.base + "/api/queue/").json()
    return {
        "latency": {
            "samples": samples,
            "p50_ms": _ms(_percentile(latencies, 0.5)),
            "p99_ms": _ms(_percentile(latencies, 0.99)),
            "max_ms": _ms(max(latencies)),
        },
        "flood": {
            "jobs": flood,
            "seconds": round(elapsed, 2),
            "jobs_per_second": round(flood / elapsed, 1),
            "messages": len(received),
            "max_messages_in_one_second": max(per_second.values()),
            "final_counts": last_state["counts"],
            "final_matches_api": last_state["counts"] == truth["by_status"],
        },
    }


def _flood_without_dashboard(server: Server, flood: int) -> dict:
    """The same flood with no dashboard connected: the baseline the dashboard's cost shows against."""
    from concurrent.futures import ThreadPoolExecutor

    import requests

    api = requests.Session()
    api.headers["Authorization"] = f"Token {server.token}"
    target = api.get(server.base + "/api/queue/").json()["by_status"]["succeeded"] + flood

    def submit_many(n: int) -> None:
        s = requests.Session()
        s.headers["Authorization"] = f"Token {server.token}"
        for _ in range(n):
            s.post(server.base + "/api/jobs/", json={"kind": "noop"})

    started = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        for _ in range(4):
            pool.submit(submit_many, flood // 4)
    while api.get(server.base + "/api/queue/").json()["by_status"]["succeeded"] < target:
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    return {"jobs": flood, "seconds": round(elapsed, 2), "jobs_per_second": round(flood / elapsed, 1)}


async def _bulk_drain(server: Server, jobs: int, *, watch: bool) -> dict:
    """Insert ``jobs`` pending noop jobs in one transaction, wake the worker, wait until the
    queue is empty; with ``watch``, through the eyes of one connected dashboard."""
    import requests
    import websockets

    from bench import scratch, sql

    conn = scratch.sqlite_connect(Path(server.var) / scratch.SQLITE_NAME)
    before = conn.execute("SELECT coalesce(max(seq), 0) FROM jobs_job").fetchone()[0]
    target = conn.execute("SELECT count(*) FROM jobs_job WHERE status = 'succeeded'").fetchone()[0] + jobs + 1
    api = requests.Session()
    api.headers["Authorization"] = f"Token {server.token}"
    ws = None
    watcher = Watcher()
    if watch:
        ws = await websockets.connect(f"ws://127.0.0.1:{server.port}/ws/dashboard/", origin=server.base,
                                      additional_headers={"Cookie": server.session_cookie()}, max_size=2**24)
    try:
        sql.fill(conn, jobs)
        api.post(server.base + "/api/jobs/", json={"kind": "noop"})  # its wake-up starts the drain now
        started = time.perf_counter()
        received: list[float] = []
        last_state = None
        while time.perf_counter() - started < 120:
            if ws is not None:
                text = await asyncio.wait_for(ws.recv(), timeout=30)
                reply = watcher.receive(text)
                if reply is not None:
                    await ws.send(json.dumps(reply))
                if watcher.state is None or json.loads(text)["type"] not in ("snapshot", "changes"):
                    continue
                received.append(time.perf_counter())
                last_state = watcher.state
                if last_state["counts"].get("succeeded", 0) >= target:
                    break
            else:
                counts = dict(conn.execute("SELECT status, count(*) FROM jobs_job GROUP BY status").fetchall())
                if counts.get("succeeded", 0) >= target:
                    break
                await asyncio.sleep(0.1)
    finally:
        if ws is not None:
            await ws.close()
    done, window = conn.execute(
        "SELECT count(*), (julianday(max(finished_at)) - julianday(min(started_at))) * 86400.0 "
        "FROM jobs_job WHERE seq > ? AND status = 'succeeded'", (before,)).fetchone()
    conn.close()
    result = {"jobs": done, "window_s": round(window, 3), "jobs_per_second": round(done / window, 1)}
    if watch:
        per_second: dict[int, int] = {}
        for t in received:
            per_second[int(t - started)] = per_second.get(int(t - started), 0) + 1
        truth = api.get(server.base + "/api/queue/").json()
        result.update(messages=len(received), max_messages_in_one_second=max(per_second.values()),
                      final_matches_api=last_state is not None and last_state["counts"] == truth["by_status"])
    return result


def bench_live(samples: int, flood: int, bulk: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as var, Server(var) as server:
        baseline = _flood_without_dashboard(server, flood)
        result = asyncio.run(_latency_and_flood(server, samples, flood))
        result["flood_without_dashboard"] = baseline
        unwatched = asyncio.run(_bulk_drain(server, bulk, watch=False))
        watched = asyncio.run(_bulk_drain(server, bulk, watch=True))
        result["bulk_drain"] = {
            "unwatched": unwatched,
            "watched": watched,
            "watched_over_unwatched": round(watched["jobs_per_second"] / unwatched["jobs_per_second"], 3),
        }
        return result


def run(quick: bool) -> dict:
    """All dashboard numbers as one dict."""
    pending = 100_000 if quick else 1_000_000
    return {
        "snapshot": bench_snapshot(pending, repeats=10 if quick else 30),
        "live": bench_live(samples=30 if quick else 200, flood=400 if quick else 1000, bulk=2000 if quick else 10_000),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--only", choices=["snapshot", "live"])
    args = parser.parse_args(argv)
    if args.child:
        _, pending, repeats = args.child
        print(json.dumps(snapshot_child(int(pending), int(repeats))))
        return 0
    if args.only == "snapshot":
        result = {"snapshot": bench_snapshot(100_000 if args.quick else 1_000_000, 10 if args.quick else 30)}
    elif args.only == "live":
        result = {"live": bench_live(30 if args.quick else 200, 400 if args.quick else 1000, 2000 if args.quick else 10_000)}
    else:
        result = run(args.quick)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
