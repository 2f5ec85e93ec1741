"""On PostgreSQL, two claims at once for one limited dependency: the second waits the moment the
first holds the breaker row, then takes what the limit leaves — instead of coming back with
nothing — and the limit still holds. Real connections, one per thread, each its own transaction."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, transaction

from jobs import breakers, queue
from jobs.models import Breaker, Job, JobStatus
from jobs.queue import claim
from tests.jobs.breakers.svc import SVC, at
from tests.jobs.breakers.test_flow import backlog, configure

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def hold_a_claim(*, limit: int, seconds: float, claimed: threading.Event, taken: list) -> threading.Thread:
    """A claim in its own transaction (its own connection) that commits ``seconds`` after it took
    its jobs: the worker's trip, recording outcomes and flushing counters before its commit."""

    def run() -> None:
        try:
            with transaction.atomic():
                taken.extend(queue.claims_take(worker_id="first", limit=limit, now=at(0)))
                claimed.set()
                time.sleep(seconds)
        finally:
            claimed.set()
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def running() -> int:
    return Job.objects.filter(dependency=SVC, status=JobStatus.RUNNING).count()


@pytest.mark.parametrize(("cap", "first", "second"), [(5, 3, 2), (100_000, 3, 10)])
def test_a_claim_waits_for_the_row_another_claim_holds_and_the_cap_holds(postgres, cap, first, second):
    """A cap that binds (5: the second claim gets the 2 the first left) and one that cannot (the
    second gets all 10 it asked for). Skipping the held row, the second claim got none."""
    with configure(max_concurrency=cap):
        breakers.breakers_ensure()
        Breaker.objects.filter(name=SVC).update(probe_window=64)  # proven: only the cap limits
        backlog(20)
        claimed, taken = threading.Event(), []
        holder = hold_a_claim(limit=first, seconds=0.03, claimed=claimed, taken=taken)
        assert claimed.wait(10)
        try:
            got = queue.claims_take(worker_id="second", limit=10, now=at(0))
        finally:
            holder.join(10)
        assert len(taken) == first
        assert len(got) == second
        assert {c.job.seq for c in got}.isdisjoint(c.job.seq for c in taken)
        assert running() == first + second <= cap


def test_a_rate_limit_claim_waits_for_the_row_too(postgres):
    """The rate limit's slot is taken under the same lock: the second claim waits for it, then
    starts its own calls (a rate that cannot bind in these two claims)."""
    with configure(rate_limit="999999999/s"):
        breakers.breakers_ensure()
        Breaker.objects.filter(name=SVC).update(probe_window=64)
        backlog(20)
        claimed, taken = threading.Event(), []
        holder = hold_a_claim(limit=3, seconds=0.03, claimed=claimed, taken=taken)
        assert claimed.wait(10)
        try:
            got = queue.claims_take(worker_id="second", limit=3, now=at(0.001))
        finally:
            holder.join(10)
        assert (len(taken), len(got)) == (3, 3)


def test_a_row_held_past_the_wait_leaves_the_claim_empty_and_its_transaction_whole(postgres):
    """Held longer than ``CONTENDED_WAIT``: the claim gives up after about that long, takes none
    of the dependency's jobs (the cap is unknown, not spent), and the transaction it is part of —
    the worker's trip, with outcomes already written — carries on and commits."""
    with configure(max_concurrency=5):
        breakers.breakers_ensure()
        Breaker.objects.filter(name=SVC).update(probe_window=64)
        *_, before = backlog(20)  # last in pop order: the holder's claim leaves it
        claimed, taken = threading.Event(), []
        holder = hold_a_claim(limit=3, seconds=claim.CONTENDED_WAIT + 1.5, claimed=claimed, taken=taken)
        assert claimed.wait(10)
        try:
            with transaction.atomic():
                Job.objects.filter(seq=before.seq).update(priority=7)  # written before the claim
                started = time.monotonic()
                got = queue.claims_take(worker_id="second", limit=10, now=at(0))
                waited = time.monotonic() - started
                assert Job.objects.get(seq=before.seq).priority == 7  # still usable
        finally:
            holder.join(10)
        assert got == []
        assert claim.CONTENDED_WAIT <= waited < claim.CONTENDED_WAIT + 1.0
        assert Job.objects.get(seq=before.seq).priority == 7  # committed
        assert running() == 3
        assert len(queue.claims_take(worker_id="second", limit=10, now=at(0))) == 2  # the row is free
