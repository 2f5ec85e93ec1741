"""The Celery side of bench/competitors.py; runs only with the competitors venv's python.

``python celery_app.py enqueue N`` sends N ``noop`` tasks; ``python -m celery -A celery_app
worker ...`` runs them. Each task pushes "started finished" (``time.time()``) to a Redis list:
the harness takes first start → last finish from it, and its length says when the drain is over.
"""

from __future__ import annotations

import os
import sys
import time

import redis
from celery import Celery

BROKER_URL = os.environ["BENCH_CELERY_BROKER"]
TIMES_KEY = "bench:celery:times"

app = Celery("bench_competitors", broker=BROKER_URL)
app.conf.update(
    task_ignore_result=True,  # no result backend: our worker writes outcomes, but to its own table
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=True,
)
_times = redis.Redis.from_url(BROKER_URL)  # its connection pool is thread-safe


@app.task(name="noop", ignore_result=True)
def noop() -> dict:
    """Return {} at once, like our ``noop`` handler; the timestamp push is the only extra work."""
    started = time.time()
    result: dict = {}
    _times.rpush(TIMES_KEY, f"{started!r} {time.time()!r}")
    return result


def enqueue(n: int) -> None:
    """Send n tasks over one broker connection (``apply_async`` reuses the producer pool)."""
    with app.producer_or_acquire() as producer:
        for _ in range(n):
            noop.apply_async(producer=producer)


if __name__ == "__main__":
    if sys.argv[1:2] != ["enqueue"]:
        sys.exit("usage: celery_app.py enqueue N")
    enqueue(int(sys.argv[2]))
