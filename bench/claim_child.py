"""(b), the measuring side: runs inside Django against DATABASE_URL; prints one JSON line.

``python -m bench.claim_child --sizes 1000,100000 --claims 500``: for each size, tops the pending
queue up with one bulk INSERT … SELECT so that at least that many jobs stay pending while it
measures, analyses the table, then times
``jobs.queue.job_claim_next`` call by call. A raw claim (one UPDATE … WHERE seq = (SELECT … LIMIT 1))
on the same connection is timed alongside as the floor.
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
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "resilient.settings")
    django.setup()

    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from bench import sql
    from bench.stats import percentile
    from jobs import queue
    from jobs.models import Job, JobStatus

    vendor = connection.vendor

    def pending() -> int:
        return Job.objects.filter(status=JobStatus.PENDING).count()

    def top_up(size: int) -> float:
        """Make ``size`` + enough for the measured claims (ours and raw) pending."""
        missing = size + 2 * args.claims + 50 - pending()
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

    out = []
    for size in [int(s) for s in args.sizes.split(",")]:
        fill_s = top_up(size)
        for _ in range(20):  # warm caches and the connection
            queue.job_claim_next(worker_id="bench-warm")
            raw_claim()
        ours, raw = [], []
        for _ in range(args.claims):
            t = time.perf_counter()
            job = queue.job_claim_next(worker_id="bench")
            ours.append((time.perf_counter() - t) * 1e6)
            assert job is not None, "queue ran dry"
            t = time.perf_counter()
            raw_claim()
            raw.append((time.perf_counter() - t) * 1e6)
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
        })
        print(json.dumps({"progress": out[-1]}), flush=True)
    print(json.dumps({"vendor": vendor, "results": out}), flush=True)


if __name__ == "__main__":
    main()
