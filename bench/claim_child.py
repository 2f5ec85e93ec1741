"""(b), the measuring side: runs inside Django against DATABASE_URL; prints one JSON line.

``python -m bench.claim_child --sizes 1000,100000 --claims 500``: for each size, tops the pending
queue up with one bulk INSERT … SELECT so that at least that many jobs stay pending while it
measures, analyses the table, then times
``jobs.queue.job_claim_next`` call by call. A raw claim (one UPDATE … WHERE seq = (SELECT … LIMIT 1))
on the same connection is timed alongside as the floor.

With ``--limits`` each round also times the claim with a flow-control limit in force that never
binds, set live on the ``local`` breaker row the way an operator sets one (not timed): a cap of
100,000 calls in flight (``cap``) and a rate limit of 999,999,999/s (``rate``). The claims of a
round run in turn (none, cap, rate, raw), so the machine's other load falls on all alike; each
claimed job is then marked succeeded (not timed), as a worker would, so the calls in flight the
limited claim counts stay at a worker's handful instead of growing with the run.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import django


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", required=True)
    parser.add_argument("--claims", type=int, default=500)
    parser.add_argument("--limits", action="store_true", help="also time the claim with a limit in force")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "resilient.settings")
    django.setup()

    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from bench import sql
    from bench.stats import percentile
    from jobs import queue
    from jobs.models import Breaker, Job, JobStatus

    vendor = connection.vendor
    # Live limits on the ``local`` row that put flow control in force without ever binding.
    variants = {"none": {}}
    if args.limits:
        variants.update(cap={"max_concurrency": 100_000}, rate={"rate_limit": "999999999/s"})
    local_row = Breaker.objects.filter(name="local")

    def set_limits(live: dict) -> None:
        local_row.update(limits=live, rate_tat=None)

    def finish(job) -> None:
        Job.objects.filter(seq=job.seq).update(status=JobStatus.SUCCEEDED, lease_owner="", lease_expires_at=None)

    def pending() -> int:
        return Job.objects.filter(status=JobStatus.PENDING).count()

    def top_up(size: int) -> float:
        """Make ``size`` + enough for the measured claims (ours and raw) pending."""
        missing = size + (len(variants) + 1) * (args.claims + 20) + 50 - pending()
        if missing <= 0:
            return 0.0
        started = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cur:
            if vendor == "sqlite":
                now = sql.now_sqlite()
                cur.execute(sql.fill_sql("sqlite", mixed_priorities=True), (missing, now, now, now))
            else:
                cur.execute(sql.fill_sql("postgresql", mixed_priorities=True), (missing,))
        with connection.cursor() as cur:
            cur.execute("ANALYZE jobs_job" if vendor == "postgresql" else "ANALYZE")
        return time.perf_counter() - started

    def raw_claim() -> None:
        with transaction.atomic(), connection.cursor() as cur:
            if vendor == "sqlite":
                now = sql.now_sqlite()
                cur.execute(sql.CLAIM_SQLITE, (now, now, now, now))
            else:
                cur.execute(sql.CLAIM_PG)
            cur.fetchone()

    def plan() -> str:
        with CaptureQueriesContext(connection) as ctx:
            job = queue.job_claim_next(worker_id="bench-explain")
        # The claiming UPDATE … RETURNING, not the breaker gates query that precedes it.
        select = next(q["sql"] for q in ctx.captured_queries if q["sql"].lstrip().upper().startswith("UPDATE JOBS_JOB"))
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute(("EXPLAIN QUERY PLAN " if vendor == "sqlite" else "EXPLAIN ") + select)
            lines = [" ".join(str(c) for c in row) for row in cur.fetchall()]
        assert job is not None
        return " | ".join(lines)

    queue.job_claim_next(worker_id="bench-rows")  # creates the breaker rows
    out = []
    for size in [int(s) for s in args.sizes.split(",")]:
        fill_s = top_up(size)
        for _ in range(20):  # warm caches and the connection
            for live in variants.values():
                set_limits(live)
                queue.job_claim_next(worker_id="bench-warm")
            raw_claim()
        times: dict[str, list[float]] = {name: [] for name in variants}
        raw = []
        for _ in range(args.claims):
            for name, live in variants.items():
                set_limits(live)
                t = time.perf_counter()
                job = queue.job_claim_next(worker_id="bench")
                times[name].append((time.perf_counter() - t) * 1e6)
                assert job is not None, "queue ran dry"
                if args.limits:
                    finish(job)
            t = time.perf_counter()
            raw_claim()
            raw.append((time.perf_counter() - t) * 1e6)
        set_limits({})
        ours = times["none"]
        limited = {
            f"{name}_us_{stat}": value
            for name in variants if name != "none"
            for stat, value in (("p50", percentile(times[name], 50)), ("p99", percentile(times[name], 99)),
                                ("mean", sum(times[name]) / len(times[name])))
        }
        out.append({
            "size": size,
            "pending_after": pending(),
            "fill_seconds": round(fill_s, 2),
            "us_mean": sum(ours) / len(ours),
            "us_p50": percentile(ours, 50),
            "us_p99": percentile(ours, 99),
            "raw_us_mean": sum(raw) / len(raw),
            "raw_us_p50": percentile(raw, 50),
            "plan": plan(),
            **limited,
        })
        print(json.dumps({"progress": out[-1]}), flush=True)
    print(json.dumps({"vendor": vendor, "results": out}), flush=True)


if __name__ == "__main__":
    main()
