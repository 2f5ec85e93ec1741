"""A claiming process for the claim-concurrency test: claims until the queue is empty.

Run as ``python -m tests.support.claim_process WORKER_ID`` with the test's database in DATABASE_URL. It
prints ``ready``, waits for a line on stdin (so every process starts claiming at once), claims,
and prints ``claimed N in SECONDS``.
"""

from __future__ import annotations

import sys
import time

import django


def main(worker_id: str) -> None:
    django.setup()
    from django.db import connection

    from jobs import queue

    connection.ensure_connection()
    print("ready", flush=True)
    sys.stdin.readline()
    claimed = 0
    started = time.monotonic()
    while queue.job_claim_next(worker_id=worker_id) is not None:
        claimed += 1
    elapsed = time.monotonic() - started
    connection.close()
    print(f"claimed {claimed} in {elapsed:.3f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
