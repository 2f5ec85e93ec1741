"""Counters that never go down: the one writer of the ``Counter`` table.

``/metrics`` reports them as Prometheus counters (``resilient_jobs_finished_total``,
``resilient_jobs_submitted_total``, ``resilient_breaker_transitions_total``). They are kept in the
database, not in a process, so they survive restarts and add up across any number of processes,
and pruning old rows cannot lower them.

Each is written inside the transaction that records what it counts, as one upsert that adds:
a worker's trip gathers its outcomes in a ``Tally`` and writes one row per (metric, dependency,
label) whatever the number of jobs. A series is spread over ``SHARDS`` rows chosen by the writer
(worker id, or process and thread), so concurrent writers rarely queue on one row lock;
``jobs.selectors.counter_totals`` sums the shards.
"""

from __future__ import annotations

import collections
import os
import threading
import zlib
from collections.abc import Mapping

from django.db import connection

from jobs.models import Counter

SHARDS = 8

# Add to each series' share, creating it at its first increment (one statement for every series
# of a transaction; rows in a fixed order, so two writers lock shared rows in the same order).
# PostgreSQL and SQLite (3.24+) both say it this way.
UPSERT = (
    "INSERT INTO {table} (metric, dependency, label, shard, value) VALUES {rows} "
    "ON CONFLICT (metric, dependency, label, shard) DO UPDATE SET value = {table}.value + excluded.value"
)

Key = tuple[str, str, str]  # (metric, dependency, label)


class Tally:
    """Increments gathered over one transaction's work, written once by ``flush``."""

    def __init__(self) -> None:
        self.counts: collections.Counter[Key] = collections.Counter()

    def add(self, metric: str, dependency: str, label: str = "", n: int = 1) -> None:
        self.counts[(metric, dependency, label)] += n

    def flush(self, *, writer: str | None = None) -> None:
        """Write every increment (inside the caller's transaction) and start again from zero."""
        counters_add(self.counts, writer=writer)
        self.counts.clear()


def counters_add(increments: Mapping[Key, int], *, writer: str | None = None) -> None:
    """Add ``increments`` to their series in one statement; ``writer`` picks the shard (default:
    this process and thread)."""
    upsert = counters_upsert(increments, writer=writer)
    if upsert is None:
        return
    with connection.cursor() as cursor:
        cursor.execute(*upsert)


def counters_upsert(increments: Mapping[Key, int], *, writer: str | None = None) -> tuple[str, list] | None:
    """The statement ``counters_add`` runs, and its parameters (None: nothing to add), for a caller
    that runs it inside a larger statement (a submission on PostgreSQL)."""
    rows = sorted((key, n) for key, n in increments.items() if n)
    if not rows:
        return None
    shard = zlib.crc32((writer or f"{os.getpid()}:{threading.get_ident()}").encode()) % SHARDS
    table = connection.ops.quote_name(Counter._meta.db_table)
    params: list = []
    for (metric, dependency, label), n in rows:
        params += [metric, dependency, label, shard, n]
    return UPSERT.format(table=table, rows=", ".join(["(%s, %s, %s, %s, %s)"] * len(rows))), params


def counter_add(metric: str, dependency: str, label: str = "", n: int = 1) -> None:
    """Add ``n`` to one series (a single submission or operator action)."""
    counters_add({(metric, dependency, label): n})
