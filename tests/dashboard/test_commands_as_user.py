"""Socket commands act as the signed-in user: the same rules, caps and text checks as REST."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import Permission
from django.test import Client, override_settings

from jobs import services
from jobs.models import EventKind, Job, JobEvent, JobStatus
from tests.support.dashboard_socket import command, open_dashboard

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(("reason", "words"), [("\ud800", "lone surrogates"), ("a\x00b", "NUL")])
async def test_a_cancel_reason_that_cannot_be_stored_is_refused_and_the_job_stays_readable(operator, reason, words):
    """Before, a lone surrogate was stored and GET /api/jobs/{id}/ answered 500 from then on (SQLite);
    NUL closed the socket on PostgreSQL."""
    job, _ = await database_sync_to_async(services.job_submit)(kind="noop")
    comm, _, _ = await open_dashboard(operator)
    reply = await command(comm, action="cancel", id=str(job.uuid), reason=reason, ref=1)
    assert reply["type"] == "error" and reply["field"] == "reason" and words in reply["message"]
    again = await command(comm, action="cancel", id=str(job.uuid), reason="maintenance", ref=2)
    assert again["type"] == "result"  # the socket is still usable
    await comm.disconnect()

    def read():
        client = Client()
        client.force_login(operator)
        return client.get(f"/api/jobs/{job.uuid}/")

    response = await database_sync_to_async(read)()
    assert response.status_code == 200 and response.json()["status"] == JobStatus.CANCELLED
    reasons = await database_sync_to_async(
        lambda: list(JobEvent.objects.filter(kind=EventKind.CANCELLED).values_list("details", flat=True))
    )()
    assert reasons == [{"reason": "maintenance"}]


@override_settings(RESILIENT={"MAX_PENDING_PER_USER": 2})
async def test_socket_submissions_belong_to_the_operator_and_count_against_their_cap(django_user_model):
    def make():
        user = django_user_model.objects.create_user("ops", password="ops-pass-123", is_staff=True)
        user.user_permissions.add(*Permission.objects.filter(codename__in=["view_all_jobs", "add_job"]))
        return user

    ops = await database_sync_to_async(make)()
    comm, _, _ = await open_dashboard(ops)
    for ref in (1, 2):
        assert (await command(comm, action="submit", kind="noop", ref=ref))["type"] == "result"
    refused = await command(comm, action="submit", kind="noop", ref=3)
    assert refused["type"] == "error" and refused["code"] == "too_many_pending"
    high = await command(comm, action="submit", kind="noop", priority=50, ref=4)
    assert high["type"] == "error" and high["code"] == "permission_denied"
    await comm.disconnect()
    owners = await database_sync_to_async(lambda: list(Job.objects.values_list("submitter__username", flat=True)))()
    assert owners == ["ops", "ops"]
