"""The operator socket checks the session and the account on every command, not only at connect:
a signed-out, deactivated, demoted or re-passworded operator loses the socket."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import Permission
from django.contrib.sessions.models import Session
from django.core.cache import cache
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.test import Client, override_settings
from rest_framework.exceptions import Throttled
from rest_framework.test import APIClient

from dashboard.consumers import DashboardConsumer
from jobs import services
from jobs.exceptions import ResilientError
from jobs.models import Breaker, BreakerEvent, Job
from tests.dashboard.conftest import view_all_jobs_permission
from tests.support.dashboard_socket import (
    closed_with,
    command,
    connect,
    login_session,
    next_reply,
    open_dashboard,
)

pytestmark = pytest.mark.django_db(transaction=True)

FORCE_OPEN = {"action": "breaker_force_open", "name": "default", "reason": "r"}


@pytest.fixture
def quick_checks(monkeypatch):
    """Check the session every 0.2 s instead of every few seconds."""
    monkeypatch.setattr(DashboardConsumer, "session_check_interval", 0.2)
    return 0.2


@database_sync_to_async
def change(user, **fields):
    type(user).objects.filter(pk=user.pk).update(**fields)


@database_sync_to_async
def nothing_forced() -> bool:
    return not BreakerEvent.objects.exists() and not Breaker.objects.exclude(override="").exists()


async def assert_refused_and_closed(comm, code: str, close_code: int) -> None:
    reply = await command(comm, **FORCE_OPEN, ref="x")
    assert (reply["type"], reply["code"], reply["ref"], reply["action"]) == ("error", code, "x", "breaker_force_open"), reply
    assert await closed_with(comm) == close_code
    assert await nothing_forced()


async def test_deactivated_operator_is_refused_and_closed(operator):
    comm, _, _ = await open_dashboard(operator)
    await change(operator, is_active=False)
    await assert_refused_and_closed(comm, "session_ended", 4001)


async def test_operator_who_lost_staff_is_refused_and_closed(operator):
    comm, _, _ = await open_dashboard(operator)
    await change(operator, is_staff=False)
    await assert_refused_and_closed(comm, "forbidden", 4003)


async def test_signed_out_operator_is_refused_and_closed(operator):
    session = await login_session(operator)
    comm, _, _ = await open_dashboard(operator, session=session)
    await database_sync_to_async(Session.objects.filter(session_key=session).delete)()
    await assert_refused_and_closed(comm, "session_ended", 4001)


async def test_password_change_elsewhere_ends_the_socket(operator):
    comm, _, _ = await open_dashboard(operator)

    def new_password():
        operator.set_password("a-new-password-456")
        operator.save()

    await database_sync_to_async(new_password)()
    await assert_refused_and_closed(comm, "session_ended", 4001)


async def test_revoked_view_permission_closes(staff_readonly):
    comm, _, _ = await open_dashboard(staff_readonly)
    await database_sync_to_async(lambda: staff_readonly.user_permissions.clear())()
    reply = await command(comm, action="cancel", id="00000000-0000-0000-0000-000000000000")
    assert (reply["type"], reply["code"]) == ("error", "forbidden"), reply
    assert await closed_with(comm) == 4003


async def test_revoked_command_permission_is_refused_and_the_socket_stays(staff_readonly):
    grant = database_sync_to_async(
        lambda: staff_readonly.user_permissions.add(Permission.objects.get(codename="override_breaker"))
    )
    await grant()
    comm, hello, _ = await open_dashboard(staff_readonly)
    assert "breaker_force_open" in hello["actions"]
    await database_sync_to_async(
        lambda: staff_readonly.user_permissions.remove(Permission.objects.get(codename="override_breaker"))
    )()
    reply = await command(comm, **FORCE_OPEN)
    assert (reply["type"], reply["code"]) == ("error", "permission_denied"), reply
    assert await nothing_forced()
    # Still open and still answering: an unknown action gets its error, not a close.
    assert (await command(comm, action="explode"))["field"] == "action"
    await comm.disconnect()


async def test_superuser_demoted_to_plain_staff_is_closed(operator):
    comm, _, _ = await open_dashboard(operator)
    await change(operator, is_superuser=False)  # staff, but without view_all_jobs
    await assert_refused_and_closed(comm, "forbidden", 4003)


async def test_logout_closes_an_idle_socket_within_the_check_interval(operator, quick_checks):
    session = await login_session(operator)
    comm, _, _ = await open_dashboard(operator, session=session)

    def logout():
        client = Client()
        client.cookies["sessionid"] = session
        assert client.post("/accounts/logout/").status_code in (200, 302)

    await database_sync_to_async(logout)()
    # Nothing is sent by the client: the socket's own periodic check notices.
    reply = await next_reply(comm, timeout=quick_checks * 10)
    assert (reply["type"], reply["code"], reply["ref"]) == ("error", "session_ended", None), reply
    assert await closed_with(comm, timeout=quick_checks * 10) == 4001


async def test_password_change_closes_an_idle_socket(operator, quick_checks):
    comm, _, _ = await open_dashboard(operator)

    def new_password():
        operator.set_password("a-new-password-456")
        operator.save()

    await database_sync_to_async(new_password)()
    assert await closed_with(comm, timeout=quick_checks * 10) == 4001


async def test_a_valid_session_is_not_closed_by_the_periodic_check(operator, quick_checks):
    comm, _, _ = await open_dashboard(operator)
    await asyncio.sleep(quick_checks * 5)  # several checks pass
    reply = await command(comm, action="breaker_force_closed", name="local", reason="ok")
    assert reply["type"] == "result", reply
    await comm.disconnect()


# --- who may connect at all (the page and the socket share one rule) ------------------------------


async def test_staff_without_view_all_jobs_cannot_connect(staff_without_view):
    comm = await connect(staff_without_view)
    connected, _ = await comm.connect(timeout=5)
    assert not connected


async def test_staff_with_view_all_jobs_can_connect(staff_readonly):
    comm, hello, _ = await open_dashboard(staff_readonly)
    assert hello["actions"] == []
    await comm.disconnect()


async def test_inactive_user_cannot_connect(operator):
    session = await login_session(operator)
    await change(operator, is_active=False)
    comm = await connect(session=session)
    connected, _ = await comm.connect(timeout=5)
    assert not connected


def test_the_page_needs_staff_and_view_all_jobs(client, user, staff_without_view, staff_readonly, operator):
    for who, status in ((user, 403), (staff_without_view, 403), (staff_readonly, 200), (operator, 200)):
        client.force_login(who)
        assert client.get("/dashboard/").status_code == status, who
    staff_without_view.user_permissions.add(view_all_jobs_permission())
    client.force_login(staff_without_view)
    assert client.get("/dashboard/").status_code == 200


# --- errors a service raises: a clean reply, never a dead socket ------------------------------------


class TooManyPending(ResilientError):
    """Stands in for the per-user limits the services will raise (a jobs.exceptions error)."""

    status_code = 429
    default_code = "throttled"


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        pytest.param(DjangoPermissionDenied("not your job"), "permission_denied", "not your job", id="django-permission"),
        pytest.param(TooManyPending("too many pending jobs"), "throttled", "too many pending jobs", id="domain-throttle"),
        pytest.param(Throttled(wait=12), "throttled", "Request was throttled.", id="drf-throttled"),
        pytest.param(RuntimeError("boom"), "server_error", "the server could not run this command", id="unexpected"),
    ],
)
async def test_an_error_from_a_service_is_a_reply_and_the_socket_stays(operator, monkeypatch, caplog, error, code, message):
    def refuse(**kwargs):
        raise error

    monkeypatch.setattr(services, "job_cancel", refuse)
    comm, _, _ = await open_dashboard(operator)
    reply = await command(comm, action="cancel", id="00000000-0000-0000-0000-000000000000", ref=3)
    assert (reply["type"], reply["code"], reply["ref"], reply["action"]) == ("error", code, 3, "cancel"), reply
    assert reply["message"].startswith(message), reply
    if isinstance(error, RuntimeError):
        assert "boom" not in reply["message"]  # details go to the log, not to the client
        assert any(r.exc_info and r.exc_info[1] is error for r in caplog.records)
    assert (await command(comm, action="submit", kind="noop"))["type"] == "result"  # still usable
    await comm.disconnect()


# --- the submission throttle is shared with POST /api/jobs/ --------------------------------------


@pytest.fixture
def fresh_cache():
    cache.clear()
    yield
    cache.clear()


@override_settings(RESILIENT={"SUBMIT_RATE": "5/min"})
async def test_socket_and_rest_submissions_share_one_budget(operator, fresh_cache):
    comm, _, _ = await open_dashboard(operator)
    for i in range(5):
        assert (await command(comm, action="submit", kind="noop", ref=i))["type"] == "result"
    reply = await command(comm, action="submit", kind="noop", ref=6)
    assert (reply["type"], reply["code"], reply["ref"]) == ("error", "throttled", 6), reply
    assert 0 < reply["retry_after"] <= 60

    def rest_submit() -> int:
        client = APIClient()
        client.force_authenticate(operator)
        return client.post("/api/jobs/", {"kind": "noop"}, format="json").status_code

    assert await database_sync_to_async(rest_submit)() == 429
    assert await database_sync_to_async(Job.objects.count)() == 5
    # Other commands are not submissions: not throttled.
    assert (await command(comm, action="breaker_force_closed", name="local", reason="ok"))["type"] == "result"
    await comm.disconnect()


@override_settings(RESILIENT={"SUBMIT_RATE": "2/min"})
async def test_rest_submissions_count_against_the_socket(operator, fresh_cache):
    def rest_submit() -> int:
        client = APIClient()
        client.force_authenticate(operator)
        return client.post("/api/jobs/", {"kind": "noop"}, format="json").status_code

    assert [await database_sync_to_async(rest_submit)() for _ in range(2)] == [201, 201]
    comm, _, _ = await open_dashboard(operator)
    assert (await command(comm, action="submit", kind="noop"))["code"] == "throttled"
    await comm.disconnect()
