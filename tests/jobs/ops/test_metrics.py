"""/metrics: parsed with the Prometheus client's own parser and checked against the database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db.models import F
from django.test import override_settings
from django.utils import timezone
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.authtoken.models import Token

from jobs import breakers, dependencies, queue, selectors, services
from jobs.breakers import Outcome
from jobs.models import Breaker, BreakerEvent, BreakerEventKind, Job, JobStatus
from jobs.ops import metrics
from jobs.worker import heartbeats
from tests.jobs.ops.test_health import closed_port
from tests.support import processes


def scrape(client, **headers) -> dict[str, dict[tuple, float]]:
    """{sample name: {sorted label items: value}} from one scrape."""
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse(response.content.decode())


def parse(text: str) -> dict[str, dict[tuple, float]]:
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def run_one(*, fail: str | None = None, started_ago: float = 0.0) -> Job:
    """Submit, claim and finish one job that took exactly ``started_ago`` seconds (the claim is
    back-dated from the finish, so a slow machine does not move it across a bucket bound)."""
    services.job_submit(kind="noop", max_attempts=1, priority=100)
    job = queue.job_claim_next(worker_id="w")
    if fail:
        queue.job_fail(job=job, worker_id="w", error=fail, retryable=False)
    else:
        queue.job_succeed(job=job, worker_id="w", result=None)
    Job.objects.filter(seq=job.seq).update(started_at=F("finished_at") - timedelta(seconds=started_ago))
    return job


def key(**labels) -> tuple:
    return tuple(sorted(labels.items()))


@pytest.mark.django_db
def test_metrics_match_known_database_contents(client):
    for _ in range(3):
        services.job_submit(kind="noop")
    services.job_submit(kind="http", payload={"url": "http://127.0.0.1:1/"}, priority=5)
    run_one(started_ago=0.2)  # succeeded, ~0.2 s
    run_one(started_ago=3)  # succeeded, ~3 s
    run_one(fail="boom", started_ago=0.02)  # failed
    cancelled, _ = services.job_submit(kind="noop")
    services.job_cancel(job_id=cancelled.uuid, actor="test")
    old = run_one()
    Job.objects.filter(seq=old.seq).update(finished_at=timezone.now() - timedelta(hours=1))

    m = scrape(client)
    assert m["resilient_database_up"][()] == 1
    jobs = m["resilient_jobs"]
    assert jobs[key(status="pending", dependency="local")] == 3
    assert jobs[key(status="pending", dependency="default")] == 1
    assert key(status="succeeded", dependency="local") not in jobs  # see resilient_jobs_finished_recent
    assert jobs[key(status="failed", dependency="local")] == 1
    assert jobs[key(status="cancelled", dependency="local")] == 1
    assert jobs[key(status="running", dependency="validation")] == 0
    assert sum(jobs.values()) == Job.objects.exclude(status=JobStatus.SUCCEEDED).count() == 6

    recent = m["resilient_jobs_finished_recent"]  # the one finished an hour ago is outside
    assert recent == {
        key(outcome="succeeded", dependency="local"): 2,
        key(outcome="failed", dependency="local"): 1,
        key(outcome="cancelled", dependency="local"): 1,
    }
    buckets = m["resilient_job_duration_seconds_bucket"]
    assert buckets[key(dependency="local", le="0.1")] == 1
    assert buckets[key(dependency="local", le="0.25")] == 2
    assert buckets[key(dependency="local", le="2.5")] == 2
    assert buckets[key(dependency="local", le="5.0")] == 3
    assert buckets[key(dependency="local", le="+Inf")] == 3
    assert m["resilient_job_duration_seconds_gcount"][key(dependency="local")] == 3
    assert 3.2 <= m["resilient_job_duration_seconds_gsum"][key(dependency="local")] < 4
    assert m["resilient_metrics_window_seconds"][()] == 300
    assert m["resilient_workers"][()] == 0
    heartbeats.worker_heartbeat(worker_id="w", hostname="h", pid=1, started_at=timezone.now())
    assert scrape(client)["resilient_workers"][()] == 1


@pytest.mark.django_db
def test_openmetrics_when_the_scraper_asks_for_it(client):
    response = client.get("/metrics", HTTP_ACCEPT="application/openmetrics-text; version=1.0.0")
    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response.content.decode().rstrip().endswith("# EOF")
    assert "# TYPE resilient_job_duration_seconds gaugehistogram" in response.content.decode()


@pytest.mark.django_db
def test_metrics_can_require_a_bearer_token_or_be_disabled(client):
    with override_settings(RESILIENT={"METRICS_TOKEN": "s3cret"}):
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
        assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret").status_code == 200
    with override_settings(RESILIENT={"METRICS_ENABLED": "0"}):
        assert client.get("/metrics").status_code == 404


@pytest.mark.django_db
def test_rejected_submissions_are_counted_by_reason(client, api):
    before = scrape(client)["resilient_submissions_rejected_total"]
    assert api.post("/api/jobs/", {"kind": "nope"}, format="json").status_code == 400
    assert api.post("/jobs", "[1]", content_type="application/json").status_code == 400
    assert api.post("/api/jobs/", {"kind": "noop"}, format="json").status_code == 201
    assert api.get("/api/jobs/?status=bogus").status_code == 400  # not a submission
    after = scrape(client)["resilient_submissions_rejected_total"]
    assert after[key(reason="invalid")] - before[key(reason="invalid")] == 2
    assert after[key(reason="throttled")] == before[key(reason="throttled")]


WRITER = """
from jobs import queue, services
for i in range({n}):
    services.job_submit(kind="noop", priority=i % 3)
for _ in range({done}):
    job = queue.job_claim_next(worker_id="{name}")
    queue.job_succeed(job=job, worker_id="{name}", result=None)
print("ok")
"""


@pytest.mark.django_db(transaction=True)
def test_two_writer_processes_and_the_scrape_agree_with_the_database(client):
    procs = [
        processes.start_python(WRITER.format(n=40, done=10, name="p1")),
        processes.start_python(WRITER.format(n=25, done=5, name="p2")),
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    m = scrape(client)
    counts = selectors.counts_by_status()
    assert counts[JobStatus.PENDING] == 50 and counts[JobStatus.SUCCEEDED] == 15
    assert m["resilient_jobs"][key(status="pending", dependency="local")] == 50
    assert m["resilient_jobs_finished_recent"][key(outcome="succeeded", dependency="local")] == 15
    assert m["resilient_job_duration_seconds_gcount"][key(dependency="local")] == 15


REJECTER = """
from django.test import Client
client = Client(HTTP_HOST="localhost", HTTP_AUTHORIZATION="Token {token}")
for _ in range({n}):
    assert client.post("/api/jobs/", {{"kind": "nope"}}, content_type="application/json").status_code == 400
print("ok")
"""

SCRAPER = """
from django.test import Client
print(Client(HTTP_HOST="localhost").get("/metrics").content.decode())
"""


@pytest.mark.django_db(transaction=True)
def test_multiprocess_mode_sums_rejections_across_processes(tmp_path, user):
    token = Token.objects.create(user=user).key
    env = processes.subprocess_env(PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    procs = [processes.start_python(REJECTER.format(token=token, n=n), environ=env) for n in (3, 4)]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    done = processes.run_python(SCRAPER, environ=env)
    assert done.returncode == 0, done.stderr
    m = parse(done.stdout)
    assert m["resilient_submissions_rejected_total"][key(reason="invalid")] == 7
    assert m["resilient_jobs"][key(status="pending", dependency="local")] == 0  # the DB part is there too


def test_metrics_say_the_database_is_down_instead_of_failing():
    port = closed_port()
    env = processes.subprocess_env(DATABASE_URL=f"postgres://postgres@127.0.0.1:{port}/resilient")
    done = processes.run_python(SCRAPER, environ=env)
    assert done.returncode == 0, done.stderr
    m = parse(done.stdout)
    assert m["resilient_database_up"][()] == 0
    assert "resilient_jobs" not in m
    assert "resilient_submissions_rejected_total" in m


def test_rejection_reasons_are_a_closed_set():
    before = metrics.SUBMISSIONS_REJECTED.labels(reason="other")._value.get()
    metrics.submission_rejected(reason="something-new")
    assert metrics.SUBMISSIONS_REJECTED.labels(reason="other")._value.get() == before + 1
    assert "something-new" not in generate_latest(metrics.registry()).decode()


def breaker_gauges(m: dict, family: str, dependency: str, label: str = "state") -> dict[str, float]:
    return {dict(k)[label]: v for k, v in m[family].items() if dict(k)["dependency"] == dependency}


@pytest.mark.django_db
def test_breaker_metrics_match_the_breakers(client):
    for i in range(3):  # default trips: open, with two of its jobs held
        breakers.breaker_record(name="default", outcome=Outcome.FAILURE, error=f"HTTP 503 #{i}")
    for _ in range(2):
        services.job_submit(kind="http", payload={"url": "http://127.0.0.1:1/"})
    services.job_submit(kind="noop")
    breakers.breaker_force_open(name="local", actor="user:ops", reason="maintenance", ttl_seconds=600)
    breakers.breaker_record(name="validation", outcome=Outcome.FAILURE, error="timeout")
    breakers.breaker_force_closed(name="validation", actor="user:ops", reason="false alarm")

    m = scrape(client)
    states = ("closed", "open", "half-open")
    assert breaker_gauges(m, "resilient_breaker_state", "default") == {"closed": 0, "open": 1, "half-open": 0}
    assert breaker_gauges(m, "resilient_breaker_state", "local") == {"closed": 0, "open": 1, "half-open": 0}
    assert breaker_gauges(m, "resilient_breaker_automatic_state", "local") == {"closed": 1, "open": 0, "half-open": 0}
    assert breaker_gauges(m, "resilient_breaker_state", "validation") == {"closed": 1, "open": 0, "half-open": 0}
    for name in dependencies.configured():  # exactly one state per breaker
        assert sum(breaker_gauges(m, "resilient_breaker_state", name).values()) == 1
        assert set(breaker_gauges(m, "resilient_breaker_state", name)) == set(states)
    assert breaker_gauges(m, "resilient_breaker_override", "default", "override") == {"open": 0, "closed": 0}
    assert breaker_gauges(m, "resilient_breaker_override", "local", "override") == {"open": 1, "closed": 0}
    assert breaker_gauges(m, "resilient_breaker_override", "validation", "override") == {"open": 0, "closed": 1}
    assert m["resilient_breaker_failures"][key(dependency="default")] == 3
    assert m["resilient_breaker_failures"][key(dependency="validation")] == 1
    assert m["resilient_breaker_failure_threshold"][key(dependency="default")] == 3
    assert m["resilient_jobs_held"] == {
        key(dependency=name): {"default": 2, "local": 1}.get(name, 0) for name in dependencies.configured()
    }
    transitions = m["resilient_breaker_transitions_total"]
    assert transitions[key(dependency="default", kind="opened")] == 1
    assert transitions[key(dependency="default", kind="forced_open")] == 0
    assert transitions[key(dependency="local", kind="forced_open")] == 1
    assert transitions[key(dependency="validation", kind="forced_closed")] == 1
    expected = BreakerEvent.objects.exclude(kind=BreakerEventKind.FAILURE).count()
    assert sum(transitions.values()) == expected == 3

    breakers.breaker_release(name="local", actor="user:ops")
    m = scrape(client)
    assert breaker_gauges(m, "resilient_breaker_state", "local") == {"closed": 1, "open": 0, "half-open": 0}
    assert m["resilient_jobs_held"][key(dependency="local")] == 0
    assert m["resilient_breaker_transitions_total"][key(dependency="local", kind="released")] == 1


@pytest.mark.django_db
def test_breaker_metrics_on_a_fresh_database_report_every_breaker_closed(client):
    Breaker.objects.all().delete()
    m = scrape(client)
    for name in dependencies.configured():
        assert breaker_gauges(m, "resilient_breaker_state", name) == {"closed": 1, "open": 0, "half-open": 0}
    assert not Breaker.objects.exists()  # a scrape only reads


TRIPPER = """
from jobs import breakers
for i in range(3):
    breakers.breaker_record(name="default", outcome=breakers.Outcome.FAILURE, error="refused")
print("ok")
"""


@pytest.mark.django_db(transaction=True)
def test_a_breaker_tripped_by_another_process_shows_in_the_scrape(client):
    assert breaker_gauges(scrape(client), "resilient_breaker_state", "default")["closed"] == 1
    done = processes.run_python(TRIPPER)
    assert done.returncode == 0, done.stderr
    m = scrape(client)
    assert breaker_gauges(m, "resilient_breaker_state", "default") == {"closed": 0, "open": 1, "half-open": 0}
    assert m["resilient_breaker_transitions_total"][key(dependency="default", kind="opened")] == 1


@pytest.mark.django_db
@override_settings(RESILIENT={"DEPENDENCIES": {"billing": {"max_concurrency": 2, "rate_limit": "120/m"}}})
def test_flow_control_metrics_show_in_flight_the_allowance_the_limits_and_held_jobs(client):
    for _ in range(3):
        services.job_submit(kind="noop", dependency="billing")
    Breaker.objects.filter(name="billing").update(probe_window=breakers.flow.SLOW_START_CEILING)
    queue.jobs_claim(worker_id="w", limit=10)  # the rate limit starts one
    m = scrape(client)
    billing = key(dependency="billing")
    assert m["resilient_dependency_in_flight"][billing] == 1
    assert m["resilient_dependency_allowance"][billing] == 2
    assert m["resilient_dependency_max_concurrency"][billing] == 2
    assert m["resilient_dependency_rate_limit_per_second"][billing] == 2.0
    assert m["resilient_jobs_held_by_rate"][billing] == 2 and m["resilient_jobs_held_by_limit"][billing] == 0
    assert m["resilient_dependency_allowance"][key(dependency="local")] == -1
    assert m["resilient_dependency_adaptive_limit"][billing] == -1


@pytest.mark.django_db
def test_a_scrape_counts_pending_jobs_once(client):
    """The job gauge and the breakers' held jobs read one round trip of bounded counts between them
    (the breakers reuse the gauge's pending counts), and no read groups the pending jobs."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(3):
        services.job_submit(kind="noop", dependency="default")
    breakers.breaker_force_open(name="default", actor="t", reason="r")
    with CaptureQueriesContext(connection) as queries:
        m = scrape(client)
    walks = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT (SELECT COUNT(*)")]
    assert len(walks) == 1
    assert not [q["sql"] for q in queries.captured_queries if "GROUP BY" in q["sql"] and "'pending'" in q["sql"]]
    assert m["resilient_jobs"][key(status="pending", dependency="default")] == 3
    assert m["resilient_jobs_held"][key(dependency="default")] == 3
