"""Django admin for breakers: read-only pages; Force open…, Force closed…, Release through the services."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.admin import helpers
from django.contrib.auth.models import Permission
from django.utils import timezone

from jobs import breakers, services
from jobs.breakers import Outcome
from jobs.models import Breaker, BreakerEvent, BreakerEventKind, EventKind, JobEvent

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/jobs/breaker/"


@pytest.fixture
def admin_client(client, operator):
    breakers.breakers_ensure()
    client.force_login(operator)
    return client


def act(client, action: str, *names: str, **extra):
    data = {"action": action, helpers.ACTION_CHECKBOX_NAME: list(names), "index": 0, **extra}
    return client.post(CHANGELIST, data, follow=True)


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def trip(name: str = "default") -> None:
    for i in range(3):
        breakers.breaker_record(name=name, outcome=Outcome.FAILURE, error=f"HTTP 503 #{i}", job_id=f"job-{i}")


def test_list_shows_state_override_failures_retry_at_and_held_jobs(admin_client):
    trip("default")
    for _ in range(2):
        services.job_submit(kind="http", payload={"url": "http://127.0.0.1:1/"})
    services.job_submit(kind="noop")  # local: its breaker admits, nothing held
    breakers.breaker_force_closed(name="local", actor="user:ops", reason="false alarm", ttl_seconds=600)
    response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    rows = {row.name: row for row in response.context["cl"].result_list}
    model_admin = response.context["cl"].model_admin
    default, local = rows["default"], rows["local"]
    assert model_admin.state_display(default) == "open"
    assert model_admin.failures_display(default) == "3/3"
    assert model_admin.held_display(default) == 2
    assert model_admin.held_display(local) == 0
    assert model_admin.state_display(local) == "forced closed"
    assert model_admin.shadow_display(local) == "automatic: closed"
    assert model_admin.override_display(local).startswith("forced closed by user:ops until ")
    assert model_admin.override_display(local).endswith(": false alarm")
    html = response.content.decode()
    assert "Force open…" in html and "Force closed…" in html and "Release" in html


def test_detail_is_read_only_with_events_inline_and_recent_errors(admin_client):
    trip("default")
    response = admin_client.get(f"{CHANGELIST}default/change/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "HTTP 503 #2" in html and "job-2" in html  # recent counted failures
    assert "3 consecutive failures reached the threshold of 3" in html  # the opened event, inline
    assert 'name="state"' not in html and 'name="override"' not in html  # nothing editable
    assert 'name="_save"' not in html
    assert admin_client.post(f"{CHANGELIST}default/change/", {"state": "closed"}).status_code == 403
    assert Breaker.objects.get(name="default").state == "open"
    assert admin_client.get(f"{CHANGELIST}add/").status_code == 403
    assert admin_client.get(f"{CHANGELIST}default/delete/").status_code == 403


def test_inline_shows_only_the_last_events(admin_client, monkeypatch):
    from jobs.admin import breakers as breakers_admin

    monkeypatch.setattr(breakers_admin, "INLINE_EVENTS", 2)
    for reason in ["one", "two", "three"]:
        breakers.breaker_force_open(name="default", actor="user:ops", reason=f"reason {reason}")
    html = admin_client.get(f"{CHANGELIST}default/change/").content.decode()
    assert "reason three" in html and "reason two" in html and "reason one" not in html


def test_force_open_asks_a_reason_and_a_duration_then_applies_through_the_service(admin_client):
    first = act(admin_client, "force_open", "default")
    assert first.status_code == 200
    assert [t.name for t in first.templates][0] == "admin/jobs/action_form.html"
    assert "default: closed" in first.content.decode()

    missing = act(admin_client, "force_open", "default", apply="1", reason="", duration_minutes="")
    assert "This field is required." in missing.content.decode()
    too_long = act(admin_client, "force_open", "default", apply="1", reason="x", duration_minutes="0")
    assert "Ensure this value is greater than or equal to 1." in too_long.content.decode()
    bad_text = act(admin_client, "force_open", "default", apply="1", reason="a\x00b", duration_minutes="")
    assert bad_text.templates[0].name == "admin/jobs/action_form.html"  # the service refused it
    assert not BreakerEvent.objects.filter(kind=BreakerEventKind.FORCED_OPEN).exists()
    assert Breaker.objects.get(name="default").override == ""

    held, _ = services.job_submit(kind="http", payload={"url": "http://127.0.0.1:1/"})
    before = timezone.now()
    done = act(admin_client, "force_open", "default", apply="1", reason="planned maintenance", duration_minutes="30")
    assert "Forced open for 30 min: default." in messages_of(done)
    row = Breaker.objects.get(name="default")
    assert (row.override, row.override_reason, row.override_actor) == ("open", "planned maintenance", "user:operator")
    assert before + timedelta(minutes=30) <= row.override_expires_at <= timezone.now() + timedelta(minutes=30)
    event = BreakerEvent.objects.filter(breaker=row).last()
    assert (event.kind, event.actor, event.reason, event.to_state) == (
        BreakerEventKind.FORCED_OPEN, "user:operator", "planned maintenance", "open")
    assert event.details["ttl_seconds"] == 1800
    assert JobEvent.objects.filter(job=held, kind=EventKind.HELD).count() == 1  # the service held the backlog
    with pytest.raises(breakers.CircuitOpen):
        breakers.breaker_admit(name="default", owner="w")


def test_force_closed_without_duration_then_release(admin_client):
    trip("default")
    done = act(admin_client, "force_closed", "default", "local", apply="1", reason="known false alarm", duration_minutes="")
    assert "Forced closed: default, local." in messages_of(done)
    row = Breaker.objects.get(name="default")
    assert (row.override, row.override_expires_at, row.state) == ("closed", None, "open")  # shadow stays open
    assert breakers.breaker_admit(name="default", owner="w").dependency == "default"
    assert BreakerEvent.objects.filter(kind=BreakerEventKind.FORCED_CLOSED, actor="user:operator").count() == 2

    released = act(admin_client, "release", "default")
    assert "Released: default." in messages_of(released)
    row = Breaker.objects.get(name="default")
    assert (row.override, row.override_actor, row.state) == ("", "", "open")
    event = BreakerEvent.objects.filter(breaker=row).last()
    assert (event.kind, event.actor, event.from_state, event.to_state) == (
        BreakerEventKind.RELEASED, "user:operator", "forced closed", "open")
    assert Breaker.objects.get(name="local").override == "closed"  # not selected: untouched


def test_staff_without_the_override_permission_is_refused(client, django_user_model):
    breakers.breakers_ensure()
    viewer = django_user_model.objects.create_user("viewer2", password="viewer-pass-123", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_breaker"))
    client.force_login(viewer)
    response = client.get(CHANGELIST)
    assert response.status_code == 200
    assert response.context["action_form"] is None  # no action it may run: no action menu
    act(client, "force_open", "default", apply="1", reason="sneaky", duration_minutes="")
    act(client, "force_closed", "default", apply="1", reason="sneaky", duration_minutes="")
    breakers.breaker_force_open(name="local", actor="user:ops", reason="by someone allowed")
    act(client, "release", "local")
    assert Breaker.objects.get(name="default").override == ""
    assert Breaker.objects.get(name="local").override == "open"
    assert not BreakerEvent.objects.filter(actor="user:viewer2").exists()

    viewer.user_permissions.add(Permission.objects.get(codename="override_breaker"))
    act(client, "release", "local")
    assert Breaker.objects.get(name="local").override == ""
    assert BreakerEvent.objects.filter(actor="user:viewer2", kind=BreakerEventKind.RELEASED).count() == 1


def test_staff_without_view_permission_cannot_see_breakers(client, staff_readonly):
    client.force_login(staff_readonly)
    assert client.get(CHANGELIST).status_code == 403


def test_breaker_event_admin_lists_the_history(admin_client):
    trip("default")
    breakers.breaker_force_open(name="local", actor="user:ops", reason="maintenance")
    response = admin_client.get("/admin/jobs/breakerevent/", {"breaker__name__exact": "default"})
    assert response.status_code == 200
    assert [e.kind for e in response.context["cl"].result_list] == ["opened", "failure", "failure", "failure"]
    found = admin_client.get("/admin/jobs/breakerevent/", {"q": "maintenance"})
    assert [e.kind for e in found.context["cl"].result_list] == ["forced_open"]
    assert admin_client.get("/admin/jobs/breakerevent/add/").status_code == 403


def test_change_limits_asks_a_reason_then_applies_through_the_service(admin_client):
    first = act(admin_client, "change_limits", "default")
    assert first.status_code == 200 and "default: 3 in flight (probing)" in first.content.decode()
    bad = act(admin_client, "change_limits", "default", apply="1", reason="slow down", rate_limit="5 a second")
    assert bad.templates[0].name == "admin/jobs/action_form.html"  # the service refused the rate
    assert "rate_limit must be" in bad.content.decode() or "must be a string" in bad.content.decode()
    assert not BreakerEvent.objects.filter(kind=BreakerEventKind.LIMITS_CHANGED).exists()

    done = act(admin_client, "change_limits", "default", apply="1", reason="slow down", max_concurrency="2",
               rate_limit="5/s")
    assert "Limits changed: default." in messages_of(done)
    assert Breaker.objects.get(name="default").limits == {"max_concurrency": 2, "rate_limit": "5/s"}
    event = BreakerEvent.objects.get(kind=BreakerEventKind.LIMITS_CHANGED)
    assert event.actor == "user:operator" and event.details["new"]["max_concurrency"] == 2

    act(admin_client, "change_limits", "default", apply="1", reason="incident over", reset="on")
    assert Breaker.objects.get(name="default").limits == {}


def test_change_limits_sets_the_adaptive_bounds_of_an_adaptive_dependency_only(admin_client, settings):
    settings.RESILIENT = {"DEPENDENCIES": {"elastic": {"concurrency": {"mode": "adaptive", "min": 1, "max": 16}}}}
    breakers.breakers_ensure()
    page = act(admin_client, "change_limits", "elastic")
    assert 'name="adaptive_min"' in page.content.decode() and 'name="adaptive_max"' in page.content.decode()
    refused = act(admin_client, "change_limits", "default", apply="1", reason="resize", adaptive_max="8")
    assert "has no adaptive concurrency configured" in refused.content.decode()
    assert Breaker.objects.get(name="default").limits == {}
    act(admin_client, "change_limits", "elastic", apply="1", reason="resize", adaptive_min="2", adaptive_max="8")
    assert Breaker.objects.get(name="elastic").limits == {
        "max_concurrency": None, "rate_limit": None, "adaptive_min": 2, "adaptive_max": 8}
    event = BreakerEvent.objects.get(breaker_id="elastic", kind=BreakerEventKind.LIMITS_CHANGED)
    assert event.details["new"]["adaptive"] == {"min": 2, "max": 8}
