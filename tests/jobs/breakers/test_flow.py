"""Flow control at the claim: the probe limit, slow start, the cap and the rate limit, against a
reference model (hypothesis) and case by case, on the real database with an injected clock."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from django.test import override_settings
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from jobs import breakers, dependencies, queue, selectors, services
from jobs.breakers import Outcome, flow
from jobs.models import Breaker, BreakerState, Job, JobStatus
from tests.jobs.breakers.svc import SVC, T0, at

pytestmark = pytest.mark.django_db


def configure(**options: object):
    return override_settings(RESILIENT={"DEPENDENCIES": {SVC: options}, "LEASE_SECONDS": 600})


def backlog(count: int, *, dependency: str = SVC) -> list[Job]:
    jobs = [services.job_submit(kind="noop", dependency=dependency, max_attempts=1)[0] for _ in range(count)]
    Job.objects.filter(seq__in=[j.seq for j in jobs]).update(run_after=T0)
    return jobs


def take(want: int, now: float = 0, worker: str = "w") -> list[Job]:
    return [c.job for c in queue.claims_take(worker_id=worker, limit=want, now=at(now))]


def succeed(job: Job, now: float = 0) -> None:
    queue.jobs_succeed(successes=[queue.Success(job=job, result={}, duration=0.01, finished_at=at(now))],
                       worker_id="w")
    breakers.breaker_record(name=job.dependency, outcome=Outcome.SUCCESS, duration=0.01, now=at(now))


def fail(job: Job, now: float = 0) -> None:
    queue.job_fail(job=job, worker_id="w", error="HTTP 503", retryable=False, retry_after=None, duration=0.01)
    breakers.breaker_record(name=job.dependency, outcome=Outcome.FAILURE, duration=0.01, error="HTTP 503",
                            now=at(now))


# --- the reference model --------------------------------------------------------------------------


@dataclass
class Model:
    """What the docs promise, written as plainly as possible."""

    threshold: int
    cap: int | None
    interval: float | None  # the rate limit's spacing
    failures: int = 0
    window: int = 0
    open: bool = False
    tat: float | None = None
    in_flight: list[int] = field(default_factory=list)

    def allowance(self) -> int | None:
        ceiling = min(flow.SLOW_START_CEILING, self.cap) if self.cap else flow.SLOW_START_CEILING
        if self.failures or not self.window:
            probe = max(1, self.threshold - self.failures)
        else:
            probe = self.window if self.window < ceiling else None
        limits = [x for x in (probe, self.cap) if x is not None]
        return min(limits) if limits else None

    def claim(self, want: int, pending: int, now: float) -> int:
        if self.open:
            return 0
        allowed = self.allowance()
        n = min(want, pending, allowed - len(self.in_flight) if allowed is not None else want)
        n = max(0, n)
        if self.interval is not None and n:
            if self.tat is not None and self.tat > now:
                return 0
            n = 1
            self.tat = max(self.tat or now, now) + self.interval
        return n

    def succeed(self) -> None:
        if self.open:
            return
        ceiling = min(flow.SLOW_START_CEILING, self.cap) if self.cap else flow.SLOW_START_CEILING
        if self.failures or not self.window:
            # Whole after one failure, halved after a run of them; at least the probe allowance + 1.
            held = self.window if self.failures <= 1 else self.window // 2
            self.window = min(ceiling, max(max(1, self.threshold - self.failures) + 1, held))
        else:
            self.window = min(ceiling, self.window + 1)
        self.failures = 0

    def fail(self) -> None:
        if self.open:
            return
        self.failures += 1
        self.open = self.failures >= self.threshold
        if self.open:
            self.window = 0


steps = st.lists(
    st.one_of(
        st.tuples(st.just("claim"), st.integers(1, 8)),
        st.tuples(st.just("ok"), st.integers(0, 30)),
        st.tuples(st.just("fail"), st.integers(0, 30)),
        st.tuples(st.just("tick"), st.sampled_from([0.05, 0.2, 0.5, 1.0])),
    ),
    max_size=30,
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(threshold=st.integers(1, 5), cap=st.none() | st.integers(1, 6),
       rate=st.none() | st.sampled_from(["5/s", "2/s"]), script=steps)
# One failure on a proven dependency, then a success: the whole window comes back (not half).
@example(threshold=2, cap=None, rate=None,
         script=[("claim", 8), ("ok", 0), ("fail", 0), ("claim", 1), ("ok", 0), ("claim", 8)])
# A run of two failures, then a success: half the window.
@example(threshold=3, cap=None, rate=None,
         script=[("claim", 8), ("ok", 0), ("ok", 0), ("claim", 2), ("fail", 0), ("fail", 0), ("ok", 0),
                 ("claim", 8)])
def test_the_claim_admits_what_the_reference_model_admits(threshold, cap, rate, script):
    Job.objects.all().delete()
    Breaker.objects.all().delete()
    options = {"failure_threshold": threshold, "reset_timeout": 1000, "max_concurrency": cap, "rate_limit": rate}
    with configure(**options):
        model = Model(threshold=threshold, cap=cap,
                      interval=dependencies.parse_rate(rate).interval if rate else None)
        pending = backlog(12)
        breakers.breakers_ensure()
        running: list[Job] = []
        now = 0.0
        for action, arg in script:
            if action == "tick":
                now += arg
            elif action == "claim":
                expected = model.claim(arg, len(pending), T0.timestamp() + now)
                got = take(arg, now)
                assert len(got) == expected, (action, arg, model)
                running += got
                taken = {j.seq for j in got}
                pending = [j for j in pending if j.seq not in taken]
                model.in_flight += [j.seq for j in got]
            elif running:
                job = running.pop(arg % len(running))
                model.in_flight.remove(job.seq)
                if action == "ok":
                    succeed(job, now)
                    model.succeed()
                else:
                    fail(job, now)
                    model.fail()
            assert Breaker.objects.get(name=SVC).state == (BreakerState.OPEN if model.open else BreakerState.CLOSED)
        # Nothing held ever spent an attempt.
        assert not Job.objects.filter(status=JobStatus.PENDING, attempts__gt=0).exists()


# --- case by case -----------------------------------------------------------------------------------


def test_a_new_dependency_is_probed_with_failure_threshold_calls_then_fewer_per_failure():
    with configure(failure_threshold=3, reset_timeout=1000):
        backlog(10)
        first = take(10)
        assert len(first) == 3 and take(10) == []
        fail(first[0])
        assert take(10) == [], "2 in flight, allowance 3 - 1 = 2"
        fail(first[1])
        assert take(10) == [], "1 in flight, allowance 1"
        succeed(first[2])
        assert len(take(10)) == 2, "a success ends probing: the window is the allowance + 1 = 1 + 1"


def test_slow_start_doubles_per_round_and_ends_at_the_cap():
    with configure(failure_threshold=2, max_concurrency=10):
        backlog(60)
        sizes = []
        for _ in range(5):
            round_ = take(50)
            sizes.append(len(round_))
            for job in round_:
                succeed(job)
        assert sizes == [2, 4, 8, 10, 10]


def proven_with_20_in_flight() -> list[Job]:
    backlog(40)
    breakers.breakers_ensure()
    Breaker.objects.filter(name=SVC).update(probe_window=20)
    running = take(40)
    assert len(running) == 20
    return running


def test_one_failure_on_a_proven_dependency_probes_then_the_next_success_resumes_its_whole_window():
    with configure(failure_threshold=3, max_concurrency=20):
        running = proven_with_20_in_flight()
        fail(running.pop())
        assert take(40) == [], "19 in flight, allowance 3 - 1 = 2"
        succeed(running.pop())
        assert len(take(40)) == 2, "the window resumes whole (20) with 18 in flight"
        assert Breaker.objects.get(name=SVC).probe_window == 20


def test_a_run_of_failures_on_a_proven_dependency_recovers_half_its_window():
    with configure(failure_threshold=3, max_concurrency=20):
        running = proven_with_20_in_flight()
        fail(running.pop())
        fail(running.pop())
        assert take(40) == [], "18 in flight, allowance 3 - 2 = 1"
        succeed(running.pop())
        assert take(40) == [], "the window resumes at half (10), and 17 are still in flight"
        for job in running[:8]:
            succeed(job)
        assert len(take(40)) == 18 - 9, "the window grew by one per success to 18; 9 still in flight"


def test_local_has_no_probe_limit_and_other_dependencies_keep_flowing():
    with configure(failure_threshold=1, max_concurrency=1):
        backlog(3)
        backlog(5, dependency=dependencies.LOCAL)
        got = take(10)
        assert sorted(j.dependency for j in got) == [dependencies.LOCAL] * 5 + [SVC]


def test_waiting_for_names_the_limit_and_when_the_job_can_next_start():
    with configure(max_concurrency=1, rate_limit="1/m"):
        first, second = backlog(2)
        [taken] = take(5)
        assert taken.seq == first.seq
        waiting = selectors.job_waiting_for(Job.objects.get(seq=second.seq), now=at(1))
        assert waiting["reason"] == "max_concurrency" and waiting["dependency"] == SVC
        assert waiting["in_flight"] == 1 and waiting["limit"] == 1
        succeed(taken, now=1)
        waiting = selectors.job_waiting_for(Job.objects.get(seq=second.seq), now=at(2))
        assert waiting["reason"] == "rate_limit" and waiting["rate_limit"] == "1/m"
        assert waiting["until"] == at(60).isoformat()
        assert take(5, now=30) == []
        assert [j.seq for j in take(5, now=60)] == [second.seq]


def test_a_cap_with_room_for_the_whole_claim_takes_it_in_pop_order_in_one_statement():
    """A limit that cannot bind costs the claim one look at its row, not a walk dependency by
    dependency: the jobs of a capped and an uncapped dependency come out of ONE UPDATE."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with configure(max_concurrency=50):
        breakers.breakers_ensure()
        Breaker.objects.filter(name=SVC).update(probe_window=64)  # proven: only the cap limits
        for _ in range(4):  # interleaved: svc, local, svc, local, ...
            backlog(1)
            backlog(1, dependency=dependencies.LOCAL)
        with CaptureQueriesContext(connection) as ctx:
            got = take(8)
        assert [j.dependency for j in got] == [SVC, dependencies.LOCAL] * 4
        updates = [q["sql"] for q in ctx.captured_queries if q["sql"].lstrip().upper().startswith("UPDATE")]
        assert len(updates) == 1, updates
        assert take(50) == []
    with configure(max_concurrency=5):  # 4 in flight: room for one more, the cap binds
        backlog(3)
        assert len(take(8)) == 1


@pytest.mark.parametrize(("success", "error", "cause"), [
    (True, "", "healthy round"),
    (False, "HTTP 503 from http://127.0.0.1:1/w", "503 from downstream"),
    (False, "HTTP 429 from http://127.0.0.1:1/w", "429 from downstream"),
    (False, "timeout calling http://127.0.0.1:1/w: ReadTimeout", "timeout"),
    (False, "slow call: 1.500s > slow_call_seconds 1s", "slow call"),
    (False, "error calling http://127.0.0.1:1/w: ConnectionError: refused", "error calling downstream"),
])
def test_the_adaptive_limits_cause_names_what_moved_it(success, error, cause):
    assert flow.adaptive_cause(success=success, error=error) == cause


ADAPTIVE = {"concurrency": {"mode": "adaptive", "min": 1, "max": 30}, "slow_call_seconds": 1.0}


def test_an_adaptive_cut_keeps_when_from_what_to_what_and_why():
    with configure(**ADAPTIVE):
        breakers.breakers_ensure()
        Breaker.objects.filter(name=SVC).update(adaptive_limit=8.0, probe_window=64)
        assert flow.adaptive_change(Breaker.objects.get(name=SVC)) is None, "no change before the first"
        breakers.breaker_record(name=SVC, outcome=Outcome.FAILURE, error="HTTP 503 from http://127.0.0.1:1/w",
                                now=at(5))
        row = Breaker.objects.get(name=SVC)
        assert row.adaptive_limit == 4.0
        assert flow.adaptive_change(row) == {"at": at(5).isoformat(), "from": 8, "to": 4,
                                             "cause": "503 from downstream"}
        breakers.breaker_record(name=SVC, outcome=Outcome.SUCCESS, duration=1.5, now=at(6))  # slow: a failure
        assert flow.adaptive_change(Breaker.objects.get(name=SVC)) == {
            "at": at(6).isoformat(), "from": 4, "to": 2, "cause": "slow call"}


def test_growth_is_a_change_only_when_the_limit_gains_a_whole_call():
    with configure(**ADAPTIVE):
        backlog(5)
        breakers.breakers_ensure()
        Breaker.objects.filter(name=SVC).update(adaptive_limit=4.9, probe_window=64)
        running = take(5)
        assert len(running) == 4, "the limit in whole calls: 4"
        succeed(running.pop(), now=1)  # 4.9 + 1/4.9 = 5.10: a fifth call
        row = Breaker.objects.get(name=SVC)
        assert flow.adaptive_change(row) == {"at": at(1).isoformat(), "from": 4, "to": 5, "cause": "healthy round"}
        succeed(running.pop(), now=2)  # 5.10 + 1/5.10 = 5.30: still five
        row = Breaker.objects.get(name=SVC)
        assert row.adaptive_limit > 5.2
        assert flow.adaptive_change(row)["at"] == at(1).isoformat(), "a fraction of a call is no change"


def test_a_limited_claim_measures_each_dependency_once():
    """The budgets measured to choose the claim's path are the ones it then claims with: one count
    of calls in flight per claim, not one to choose and another to claim."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with configure(rate_limit="5/s"):
        backlog(3)
        breakers.breakers_ensure()
        Breaker.objects.filter(name=SVC).update(probe_window=64)
        with CaptureQueriesContext(connection) as queries:
            assert len(take(10)) == 1
    counts = [q["sql"] for q in queries.captured_queries if "COUNT(*)" in q["sql"] and "lease_expires_at" in q["sql"]]
    assert len(counts) == 1, counts


def test_slots_a_claim_does_not_start_go_back_to_the_rate_limit():
    """1,000/s with its jobs between another dependency's in pop order: each claim starts one
    before the other dependency's head stops the run; the other nine slots are not spent."""
    with configure(rate_limit="1000/s"):
        breakers.breakers_ensure()
        Breaker.objects.filter(name=SVC).update(probe_window=64)
        for _ in range(6):
            backlog(1)
            backlog(1, dependency=dependencies.LOCAL)
        first = take(20)
        assert [j.dependency for j in first].count(SVC) == 1
        # One slot (1 ms) was spent, not ten: 2 ms later the next start is due (not after 10 ms).
        assert Breaker.objects.get(name=SVC).rate_tat == pytest.approx(at(0.001).timestamp())
        assert SVC in [j.dependency for j in take(20, now=0.002)]


def test_a_generous_rate_limit_starts_ten_milliseconds_of_its_calls_per_claim():
    """1,000/s: one claim takes 10 slots at once (10 ms of them), the next claim at the same instant
    none, and 10 ms later 10 more; 5/s stays one per claim (the one-second window's promise)."""
    assert flow.rate_starts(dependencies.parse_rate("1000/s")) == 10
    assert flow.rate_starts(dependencies.parse_rate("5/s")) == 1
    assert flow.rate_starts(dependencies.parse_rate("100000/m")) == 16
    with configure(rate_limit="1000/s"):
        backlog(30)
        breakers.breakers_ensure()
        Breaker.objects.filter(name=SVC).update(probe_window=64)
        assert len(take(20)) == 10
        assert take(20) == []
        assert len(take(20, now=0.01)) == 10
