"""Jobs submitted for later: ``run_after`` / ``delay_seconds``, through the service and the API."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from jobs import queue, selectors, services
from jobs.exceptions import IdempotencyConflict, InvalidInput
from jobs.models import EventKind, JobStatus

pytestmark = pytest.mark.django_db


def submit(api, **body):
    return api.post("/api/jobs/", body, format="json")


def test_delay_seconds_keeps_the_job_pending_and_unclaimable_until_then():
    before = timezone.now()
    job, created = services.job_submit(kind="noop", delay_seconds=3600)
    assert created and job.status == JobStatus.PENDING
    assert timedelta(seconds=3599) < job.run_after - before < timedelta(seconds=3601)
    assert queue.job_claim_next(worker_id="w1") is None
    later = job.run_after + timedelta(seconds=1)
    claimed = queue.job_claim_next(worker_id="w1", now=later)
    assert claimed is not None and claimed.seq == job.seq


def test_a_scheduled_job_does_not_block_a_runnable_one_behind_it():
    scheduled, _ = services.job_submit(kind="noop", priority=50, delay_seconds=600)
    runnable, _ = services.job_submit(kind="noop", priority=0)
    claimed = queue.job_claim_next(worker_id="w1")
    assert claimed is not None and claimed.seq == runnable.seq
    assert scheduled.seq != claimed.seq


def test_run_after_with_a_time_zone_is_stored_in_utc_and_recorded_in_the_event():
    when = timezone.now() + timedelta(days=2)
    job, _ = services.job_submit(kind="noop", run_after=when.astimezone(timezone.get_fixed_timezone(120)).isoformat())
    assert abs((job.run_after - when).total_seconds()) < 0.001
    submitted = job.events.get(kind=EventKind.SUBMITTED)
    assert submitted.details["run_after"] == job.run_after.isoformat()


def test_a_past_run_after_means_now():
    job, _ = services.job_submit(kind="noop", run_after="2001-01-01T00:00:00Z")
    assert timezone.now() - job.run_after < timedelta(seconds=5)
    assert queue.job_claim_next(worker_id="w1").seq == job.seq


def test_waiting_for_says_scheduled_until_the_time_and_a_retry_backoff_stays_retry_scheduled():
    job, _ = services.job_submit(kind="noop", delay_seconds=120)
    assert selectors.job_waiting_for(job) == {"reason": "scheduled", "until": job.run_after.isoformat()}
    job.attempts = 1  # what a failed attempt's backoff looks like
    assert selectors.job_waiting_for(job)["reason"] == "retry_scheduled"


def test_cancel_before_it_runs():
    job, _ = services.job_submit(kind="noop", delay_seconds=60)
    cancelled = services.job_cancel(job_id=job.uuid)
    assert cancelled.status == JobStatus.CANCELLED
    assert queue.job_claim_next(worker_id="w1", now=job.run_after + timedelta(seconds=5)) is None


@pytest.mark.parametrize(
    ("fields", "field", "text"),
    [
        ({"run_after": "2030-01-01T12:00:00"}, "run_after", "time zone"),
        ({"run_after": "tomorrow"}, "run_after", "ISO 8601"),
        ({"run_after": "2030-13-01T00:00:00Z"}, "run_after", "ISO 8601"),
        ({"run_after": 1700000000}, "run_after", "ISO 8601"),
        ({"run_after": "0001-01-01T00:00:00+14:00"}, None, None),  # before datetime's range: means now
        ({"run_after": "9999-12-31T23:59:59Z"}, "run_after", "RESILIENT_MAX_DELAY"),
        ({"run_after": "2030-01-01T00:00:00Z", "delay_seconds": 5}, "run_after", "not both"),
        ({"delay_seconds": -1}, "delay_seconds", "0 or more"),
        ({"delay_seconds": float("nan")}, "delay_seconds", "0 or more"),
        ({"delay_seconds": float("inf")}, "delay_seconds", "0 or more"),
        ({"delay_seconds": "60"}, "delay_seconds", "number"),
        ({"delay_seconds": True}, "delay_seconds", "number"),
        ({"delay_seconds": 366 * 86400}, "delay_seconds", "RESILIENT_MAX_DELAY"),
    ],
)
def test_bad_schedules_name_their_field_and_store_nothing(fields, field, text):
    if field is None:
        job, _ = services.job_submit(kind="noop", **fields)
        assert job.run_after <= timezone.now()
        return
    with pytest.raises(InvalidInput) as caught:
        services.job_submit(kind="noop", **fields)
    assert caught.value.field == field and text in caught.value.message
    assert not selectors.job_list().exists()


@override_settings(RESILIENT={"MAX_DELAY": 60})
def test_the_delay_limit_is_a_setting():
    services.job_submit(kind="noop", delay_seconds=60)
    with pytest.raises(InvalidInput, match="at most 60 seconds"):
        services.job_submit(kind="noop", delay_seconds=61)


def test_an_idempotent_replay_of_a_delayed_submission_answers_the_first_job():
    first, _ = services.job_submit(kind="noop", delay_seconds=30, idempotency_key="k")
    again, created = services.job_submit(kind="noop", delay_seconds=30, idempotency_key="k")
    assert again.seq == first.seq and not created
    with pytest.raises(IdempotencyConflict):
        services.job_submit(kind="noop", delay_seconds=31, idempotency_key="k")
    with pytest.raises(IdempotencyConflict):
        services.job_submit(kind="noop", idempotency_key="k")


# --- over HTTP ----------------------------------------------------------------------------------


def test_api_accepts_delay_seconds_and_shows_scheduled_in_the_detail(api):
    response = submit(api, kind="noop", delay_seconds=90)
    assert response.status_code == 201, response.json()
    body = response.json()
    detail = api.get(f"/api/jobs/{body['id']}/").json()
    assert detail["status"] == "pending"
    assert detail["waiting_for"]["reason"] == "scheduled"
    until = datetime.fromisoformat(detail["waiting_for"]["until"])
    assert until == datetime.fromisoformat(detail["run_after"]) > timezone.now() + timedelta(seconds=80)


def test_api_accepts_run_after_with_z(api):
    when = (timezone.now() + timedelta(hours=1)).replace(microsecond=0)
    response = submit(api, kind="noop", run_after=when.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert response.status_code == 201, response.json()
    assert response.json()["run_after"].startswith(when.strftime("%Y-%m-%dT%H:%M:%S"))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"run_after": "2030-01-01T12:00:00"}, "run_after"),
        ({"run_after": "soon"}, "run_after"),
        ({"run_after": "2030-01-01T00:00:00Z", "delay_seconds": 1}, "run_after"),
        ({"delay_seconds": -5}, "delay_seconds"),
        ({"delay_seconds": 10**12}, "delay_seconds"),
        ({"delay_seconds": None}, "delay_seconds"),
    ],
)
def test_api_bad_schedule_is_a_400_naming_the_field(api, body, field):
    response = submit(api, kind="noop", **body)
    assert response.status_code == 400
    assert list(response.json()) == [field]
    assert not selectors.job_list().exists()


def test_api_cancel_a_scheduled_job(api):
    job = submit(api, kind="noop", delay_seconds=600).json()
    response = api.post(f"/api/jobs/{job['id']}/cancel/")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"


def test_a_run_after_with_a_large_utc_offset_is_stored_in_utc():
    """PostgreSQL refuses offsets beyond ±15:59 that Python parses: the time is stored in UTC."""
    when = (timezone.now() + timedelta(days=1)).astimezone(
        timezone.get_fixed_timezone(20 * 60)).isoformat()
    assert when.endswith("+20:00")
    job, created = services.job_submit(kind="noop", run_after=when)
    job.refresh_from_db()
    assert created and job.run_after == datetime.fromisoformat(when)


def test_a_past_run_after_with_an_idempotency_key_replays_instead_of_conflicting():
    """A past time means now, but the request is the same request when it is sent again."""
    first, created = services.job_submit(kind="noop", run_after="2020-01-01T00:00:00Z", idempotency_key="past")
    again, created_again = services.job_submit(kind="noop", run_after="2020-01-01T00:00:00Z", idempotency_key="past")
    assert created and not created_again and again.seq == first.seq


@pytest.mark.parametrize("delay", [10**400, -(10**400)])
def test_a_huge_integer_delay_is_a_400_not_a_500(api, delay):
    response = api.post("/api/jobs/", f'{{"kind": "noop", "delay_seconds": {delay}}}', content_type="application/json")
    assert response.status_code == 400, response.content
    assert "delay_seconds" in response.json()


def test_a_far_east_year_one_run_after_means_now_and_a_year_9999_one_is_too_far():
    job, _ = services.job_submit(kind="noop", run_after="0001-01-01T00:00:00+05:00")
    assert job.run_after <= timezone.now()
    with pytest.raises(InvalidInput) as excinfo:
        services.job_submit(kind="noop", run_after="9999-12-31T23:59:59-05:00")
    assert excinfo.value.field == "run_after"
