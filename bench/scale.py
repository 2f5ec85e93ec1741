"""Scale: ``python -m bench.scale [--quick] [--finished N] [--pending M] [--prunable P]`` (or ``run(quick)``).

With N finished jobs (default 10,000,000; quick 200,000; also ``BENCH_SCALE_FINISHED``), each with
one event, and M pending jobs (default 1,000,000; quick 20,000; ``BENCH_SCALE_PENDING``) on
PostgreSQL, all loaded by bulk ``INSERT … SELECT generate_series``. P of the finished jobs
(default a tenth of N: 1,000,000; quick 20,000; ``BENCH_SCALE_PRUNABLE``) finished 30–37 days ago, past
every retention (7 days for succeeded and cancelled jobs, 30 for failed ones); the other N − P
within the last 6 days, inside every retention. So the prune below deletes exactly P jobs.

1. the dashboard snapshot build (one broadcaster tick), target < 150 ms;
2. the admin job list (``GET /admin/jobs/job/``), target < 300 ms;
3. a ``/metrics`` scrape, target < 300 ms;
   and, without a target, ``GET /api/queue/`` and ``GET /api/breakers/`` (their pending counts);
4. ``GET /api/jobs/?payload_contains={"customer": K}`` (the GIN index; ~N/100,000 matches),
   target < 100 ms, beside the same containment in raw SQL (same run) as its floor;
5. the worker's trip (``record_and_claim``: record 10 outcomes, claim 10) p99 while draining,
   without pruning and then while ``manage.py prune`` deletes the P old jobs and their events in a
   separate process: target ratio ≤ 2.

Measured in a child process configured for the harness's PostgreSQL database
(``BENCH_DATABASE_URL``); only processes started here are stopped, by PID. ``--keep`` leaves the
filled database behind and ``--reuse`` measures on it again without the fill: it only tops the
old jobs back up to P and the pending ones up to M (a previous run pruned and drained them).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from bench import scratch
from bench.report import Row, failed, skipped
from bench.stats import percentile, ratio

FULL = (10_000_000, 1_000_000)
QUICK = (200_000, 20_000)
CHUNK = 500_000
CUSTOMERS = 100_000  # payload {"customer": g % CUSTOMERS}: ~rows / 100,000 jobs per customer

FILL_FINISHED = (
    "INSERT INTO jobs_job (uuid, kind, payload, dependency, priority, status, attempts, max_attempts, run_after, "
    "lease_owner, last_error, created_at, updated_at, started_at, finished_at, idempotency_fingerprint) "
    "SELECT gen_random_uuid(), 'noop', jsonb_build_object('customer', g %% {customers}, 'n', g), "
    "CASE WHEN g %% 3 = 0 THEN 'default' ELSE 'local' END, 0, "
    "CASE WHEN g %% 20 = 0 THEN 'failed' WHEN g %% 20 = 1 THEN 'cancelled' ELSE 'succeeded' END, 1, 5, t, '', '', "
    "t, t, t, t, '' FROM generate_series(%s, %s) g, "
    "LATERAL (SELECT {age} AS t) ts"
)
# g in [low, high] of [first, last]: the old jobs over 30–37 days ago (past the 30-day retention
# of failed jobs too), the recent ones over the last 6 days (inside the 7-day one); oldest first.
OLD_AGE = "now() - interval '30 days' - ((%s - g)::float8 / %s) * interval '7 days'"
RECENT_AGE = "now() - ((%s - g)::float8 / %s) * interval '6 days'"
FILL_EVENTS = (
    "INSERT INTO jobs_jobevent (job_id, kind, at, actor, details) "
    "SELECT seq, status, finished_at, 'bench', '{}'::jsonb FROM jobs_job WHERE seq BETWEEN %s AND %s"
)
FILL_PENDING = (
    "INSERT INTO jobs_job (uuid, kind, payload, dependency, priority, status, attempts, max_attempts, run_after, "
    "lease_owner, last_error, created_at, updated_at, idempotency_fingerprint) "
    "SELECT gen_random_uuid(), 'noop', jsonb_build_object('customer', g %% {customers}), "
    "CASE WHEN g %% 3 = 0 THEN 'default' ELSE 'local' END, (g %% 3) - 1, 'pending', 0, 5, now(), '', '', "
    "now(), now(), '' FROM generate_series(1, %s) g"
)
RAW_CONTAINS = "SELECT seq FROM jobs_job WHERE payload @> %s::jsonb ORDER BY seq DESC LIMIT 50"


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def _timed(fn, repeats: int) -> dict:
    fn()  # warm
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return {"median_ms": _ms(statistics.median(times)), "p95_ms": _ms(percentile(times, 95)), "max_ms": _ms(max(times))}


def _fill_finished(first: int, last: int, age: str, label: str) -> None:
    """Finished jobs g = first..last (payload customer g % CUSTOMERS), each with one event, aged by
    ``age`` (OLD_AGE or RECENT_AGE) over their span."""
    from django.db import connection, transaction

    span = last - first + 1
    for low in range(first, last + 1, CHUNK):
        high = min(last, low + CHUNK - 1)
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute(FILL_FINISHED.format(customers=CUSTOMERS, age=age), [low, high, last, span])
            cur.execute("SELECT currval(pg_get_serial_sequence('jobs_job', 'seq'))")
            seq = cur.fetchone()[0]
            cur.execute(FILL_EVENTS, [seq - (high - low), seq])
        print(json.dumps({"progress": f"{high - first + 1:,} of {span:,} {label} finished"}), file=sys.stderr, flush=True)


def _fill_pending(pending: int) -> None:
    from django.db import connection, transaction

    if pending > 0:
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute(FILL_PENDING.format(customers=CUSTOMERS), [pending])


def _analyze() -> None:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE jobs_job")
        cur.execute("VACUUM ANALYZE jobs_jobevent")


def _fill(finished: int, pending: int, prunable: int) -> float:
    """The whole fill: ``prunable`` old finished jobs, the rest recent, ``pending`` pending."""
    started = time.perf_counter()
    if prunable:
        _fill_finished(1, prunable, OLD_AGE, "old")
    if finished > prunable:
        _fill_finished(prunable + 1, finished, RECENT_AGE, "recent")
    _fill_pending(pending)
    _analyze()
    return time.perf_counter() - started


def _top_up(pending: int, prunable: int) -> float:
    """On a database a previous run filled (``--reuse``): put back the old jobs its prune deleted
    and the pending ones its drain claimed, so this run measures the same sizes."""
    from jobs.models import Job, JobStatus
    from jobs.services import prune_count

    started = time.perf_counter()
    old = sum(prune_count().jobs.values())
    if old < prunable:
        # g continues past every earlier row so the payloads keep their spread of customers.
        first = Job.objects.order_by("-seq").values_list("seq", flat=True).first() + 1
        _fill_finished(first, first + prunable - old - 1, OLD_AGE, "old (top-up)")
    queued = Job.objects.filter(status=JobStatus.PENDING).count()
    _fill_pending(pending - queued)
    _analyze()
    return time.perf_counter() - started


TRIP_PAUSE = 0.01  # a worker whose jobs take a little time: the queue lasts through the run


def _trips(seconds: float, *, until=None) -> tuple[list[float], int, int]:
    """Worker trips (record the last trip's claims as successes, claim 10) for ``seconds`` or
    until ``until()`` is true: (each trip's seconds, jobs claimed, trips that found fewer than 10)."""
    from jobs.worker import outcomes
    from jobs.worker.outcomes import Attempt

    held: list = []
    times = []
    claimed = short = 0
    stop_at = time.monotonic() + seconds
    while time.monotonic() < stop_at and not (until and until()):
        finished = [Attempt(job=c.job, result=None, duration=0.001) for c in held]
        t = time.perf_counter()
        _, held = outcomes.record_and_claim(worker_id="bench-scale", finished=finished, want=10)
        times.append(time.perf_counter() - t)
        claimed += len(held)
        short += len(held) < 10
        time.sleep(TRIP_PAUSE)
    outcomes.record(worker_id="bench-scale", finished=[Attempt(job=c.job, duration=0.001) for c in held])
    return times, claimed, short


def child(finished: int, pending: int, prunable: int, repeats: int, drain_seconds: float, *, reuse: bool = False) -> dict:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from rest_framework.test import APIClient

    from dashboard import snapshot
    from dashboard.counts import StatusCounter
    from dashboard.throughput import ThroughputWindow
    from jobs import services

    if reuse:
        out: dict = {"reused": True, "top_up_seconds": round(_top_up(pending, prunable), 1)}
    else:
        out = {"fill_seconds": round(_fill(finished, pending, prunable), 1)}
    with connection.cursor() as cur:
        cur.execute("SELECT status, count(*) FROM jobs_job GROUP BY status")
        by_status = dict(cur.fetchall())
    out["rows"] = by_status
    out["finished"] = sum(n for status, n in by_status.items() if status not in ("pending", "running"))
    out["pending"] = by_status.get("pending", 0)
    out["prunable"] = prunable

    window, counter = ThroughputWindow(), StatusCounter()

    def tick() -> None:
        window.refresh()
        json.dumps(snapshot.build(throughput=window.series(), counter=counter))

    out["snapshot"] = _timed(tick, repeats)

    admin = get_user_model().objects.filter(is_superuser=True).first()
    web = Client(HTTP_HOST="127.0.0.1")
    web.force_login(admin)

    def admin_list() -> None:
        assert web.get("/admin/jobs/job/").status_code == 200

    out["admin_list"] = _timed(admin_list, repeats)

    def scrape() -> None:
        assert web.get("/metrics").status_code == 200

    out["metrics"] = _timed(scrape, repeats)

    api = APIClient(HTTP_HOST="127.0.0.1")
    api.force_authenticate(admin)
    needle = json.dumps({"customer": 4242})

    def contains() -> None:
        response = api.get("/api/jobs/", {"payload_contains": needle})
        assert response.status_code == 200, response.content[:200]
        out["payload_contains_matches"] = response.json()["count"]

    def contains_raw() -> None:
        with connection.cursor() as cur:
            cur.execute(RAW_CONTAINS, [needle])
            cur.fetchall()

    def queue() -> None:
        assert api.get("/api/queue/").status_code == 200

    def breakers() -> None:
        assert api.get("/api/breakers/").status_code == 200

    out["api_queue"] = _timed(queue, repeats)
    out["api_breakers"] = _timed(breakers, repeats)
    out["payload_contains"] = _timed(contains, repeats)
    out["payload_contains_raw"] = _timed(contains_raw, repeats)
    with connection.cursor() as cur:
        cur.execute("EXPLAIN " + RAW_CONTAINS, [needle])
        out["payload_contains_plan"] = " | ".join(r[0].strip() for r in cur.fetchall())[:300]

    # 5. the worker's trip while draining, without and with a prune running beside it.
    _trips(1.0)  # warm the connection and caches
    base, base_claimed, base_short = _trips(drain_seconds)
    due = services.prune_count()
    if sum(due.jobs.values()) != prunable:
        raise RuntimeError(f"{sum(due.jobs.values())} jobs past retention, expected {prunable}")
    env = dict(os.environ, LOG_LEVEL="WARNING")
    t0 = time.perf_counter()
    prune = subprocess.Popen([sys.executable, "manage.py", "prune"], cwd=scratch.ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        during, during_claimed, during_short = _trips(3600, until=lambda: prune.poll() is not None)
        prune_seconds = time.perf_counter() - t0
        output = prune.communicate(timeout=600)[0]
    finally:
        if prune.poll() is None:
            prune.kill()
    if prune.returncode:
        raise RuntimeError(f"manage.py prune failed: {output[-500:]}")
    out["drain"] = {
        "trips_without_prune": len(base),
        "trip_p50_ms": _ms(percentile(base, 50)), "trip_p99_ms": _ms(percentile(base, 99)),
        "trips_during_prune": len(during),
        "claimed_without_prune": base_claimed, "claimed_during_prune": during_claimed,
        "short_trips": base_short + during_short,  # > 0: the queue ran dry (numbers not comparable)
        "trip_during_prune_p50_ms": _ms(percentile(during, 50)) if during else None,
        "trip_during_prune_p99_ms": _ms(percentile(during, 99)) if during else None,
        "due_jobs": sum(due.jobs.values()), "due_job_events": due.job_events,
        "pruned_jobs": _deleted(output, "jobs"), "pruned_job_events": _deleted(output, "job events"),
        "left_past_retention": sum(services.prune_count().jobs.values()),
        "prune_seconds": round(prune_seconds, 1), "prune_output": output.strip()[-200:],
    }
    out["load_average"] = os.getloadavg()[0]
    return out


def _deleted(output: str, what: str) -> int | None:
    """The count ``manage.py prune`` reported: "deleted 1000 jobs (…), 1000 job events, …"."""
    import re

    match = re.search(rf"(\d+) {what}\b", output)
    return int(match.group(1)) if match else None


def _rows(data: dict) -> list[Row]:
    scale = f"{data['finished']:,} finished + {data['pending']:,} pending"
    rows = []
    for key, case, target in (
        ("snapshot", "dashboard snapshot", 150), ("admin_list", "admin job list", 300),
        ("metrics", "/metrics scrape", 300), ("payload_contains", "payload_contains (GIN)", 100),
    ):
        m = data[key]
        rows.append(Row(
            bench="scale", case=f"{case}, {scale}", value=m["median_ms"], unit="ms median", p50_ms=m["median_ms"],
            p99_ms=m["p95_ms"], target=f"< {target} ms", status="ok" if m["median_ms"] < target else "failed",
            note=f"p95 {m['p95_ms']} ms, max {m['max_ms']} ms", extra=m,
            **({"baseline": data["payload_contains_raw"]["median_ms"], "baseline_label": "ms raw SQL @>",
                "ratio": ratio(m["median_ms"], data["payload_contains_raw"]["median_ms"])}
               if key == "payload_contains" else {}),
        ))
    for key, case in (("api_queue", "GET /api/queue/"), ("api_breakers", "GET /api/breakers/")):
        m = data[key]
        rows.append(Row(bench="scale", case=f"{case}, {scale}", value=m["median_ms"], unit="ms median",
                        p50_ms=m["median_ms"], p99_ms=m["p95_ms"], note=f"p95 {m['p95_ms']} ms, max {m['max_ms']} ms",
                        extra=m))
    d = data["drain"]
    worse = ratio(d["trip_during_prune_p99_ms"], d["trip_p99_ms"])
    rows.append(Row(
        bench="scale", case=f"worker trip p99 while pruning {d['pruned_jobs'] or 0:,} jobs, {scale}", value=d["trip_during_prune_p99_ms"],
        unit="ms p99", p50_ms=d["trip_during_prune_p50_ms"], p99_ms=d["trip_during_prune_p99_ms"],
        baseline=d["trip_p99_ms"], baseline_label="ms p99 without pruning", ratio=worse, target="ratio ≤ 2",
        status="ok" if worse is not None and worse <= 2 and not d["short_trips"] else "failed",
        note=f"prune of {d['pruned_jobs']} jobs + {d['pruned_job_events']} events in {d['prune_seconds']} s "
             f"({d['left_past_retention']} left past retention); {d['trips_during_prune']} trips during, {d['trips_without_prune']} without; "
             f"{d['claimed_during_prune'] + d['claimed_without_prune']:,} jobs drained; queue ran dry on {d['short_trips']} trips",
        extra=d,
    ))
    return rows


def _sizes(quick: bool) -> tuple[int, int]:
    finished, pending = QUICK if quick else FULL
    return int(os.environ.get("BENCH_SCALE_FINISHED", finished)), int(os.environ.get("BENCH_SCALE_PENDING", pending))


def _prunable(finished: int) -> int:
    return int(os.environ.get("BENCH_SCALE_PRUNABLE", finished // 10))


def measure(finished: int, pending: int, prunable: int, *, repeats: int, drain_seconds: float,
            reuse: bool = False, keep: bool = False, timeout: float = 6 * 3600) -> dict:
    if not 0 <= prunable <= finished:
        raise ValueError(f"--prunable {prunable} must be between 0 and --finished {finished}")
    url = scratch.PG_URL if reuse else scratch.pg_fresh()[0]
    env = dict(os.environ, DATABASE_URL=url, DJANGO_SETTINGS_MODULE="resilient.settings", LOG_LEVEL="WARNING",
               SECRET_KEY=scratch.secret_key(), PYTHONUNBUFFERED="1")
    env.pop("REDIS_URL", None)
    try:
        # stderr (the fill's progress) goes through to ours: a long fill shows where it is.
        out = subprocess.run(
            [sys.executable, "-m", "bench.scale", "--child", "--finished", str(finished), "--pending", str(pending),
             "--prunable", str(prunable), "--repeats", str(repeats), "--drain-seconds", str(drain_seconds),
             *(["--reuse"] if reuse else [])],
            cwd=scratch.ROOT, env=env, stdout=subprocess.PIPE, text=True, timeout=timeout,
        )
    finally:
        if not keep:
            scratch.pg_fresh()  # leave no ten-million-row table behind
    if out.returncode:
        raise RuntimeError(f"bench.scale child failed (exit {out.returncode}; its stderr is above)")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(quick: bool) -> list[Row]:
    problem = scratch.postgres_problem()
    if problem:
        return [skipped("scale", "PostgreSQL", problem)]
    finished, pending = _sizes(quick)
    prunable = _prunable(finished)
    try:
        return _rows(measure(finished, pending, prunable, repeats=5 if quick else 10, drain_seconds=5 if quick else 20))
    except Exception as exc:  # noqa: BLE001
        return [failed("scale", "PostgreSQL", str(exc).splitlines()[-1][:200])]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--finished", type=int)
    parser.add_argument("--pending", type=int)
    parser.add_argument("--prunable", type=int, help="finished jobs past retention, pruned in step 5")
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--drain-seconds", type=float)
    parser.add_argument("--keep", action="store_true", help="leave the filled database behind (for --reuse)")
    parser.add_argument("--reuse", action="store_true", help="measure on the database a --keep run left; no fill")
    parser.add_argument("--timeout", type=float, default=6 * 3600, help="seconds before the measuring child is stopped")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    default_finished, default_pending = _sizes(args.quick)
    finished = args.finished if args.finished is not None else default_finished
    pending = args.pending if args.pending is not None else default_pending
    prunable = args.prunable if args.prunable is not None else _prunable(finished)
    repeats = args.repeats or (5 if args.quick else 10)
    drain_seconds = args.drain_seconds or (5 if args.quick else 20)
    if args.child:
        print(json.dumps(child(finished, pending, prunable, repeats, drain_seconds, reuse=args.reuse)))
        return 0
    if scratch.postgres_problem():
        print(scratch.postgres_problem(), file=sys.stderr)
        return 2
    data = measure(finished, pending, prunable, repeats=repeats, drain_seconds=drain_seconds,
                   reuse=args.reuse, keep=args.keep, timeout=args.timeout)
    from bench.report import table

    rows = _rows(data)
    print(table(rows))
    print(json.dumps(data, indent=2))
    return 1 if any(r.status == "failed" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
