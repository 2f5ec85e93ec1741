"""PATCH /api/breakers/{name}/: operators change a dependency's flow-control limits live, audited,
honoured at the next claim; bad values are a 400 naming the field; GET shows the flow."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.test import override_settings

from jobs import queue, services
from jobs.models import Breaker, BreakerEvent, BreakerEventKind, Job

pytestmark = pytest.mark.django_db

CONFIG = {"DEPENDENCIES": {"billing": {"max_concurrency": 4, "rate_limit": "50/s",
                                       "concurrency": {"mode": "adaptive", "min": 1, "max": 16}},
                             "search": {"max_concurrency": 4}}}


def patch(client, body, name="billing"):
    return client.patch(f"/api/breakers/{name}/", body, format="json")


@override_settings(RESILIENT=CONFIG)
def test_an_operator_changes_the_limits_and_goes_back_to_configured(operator_api):
    response = patch(operator_api, {"max_concurrency": 2, "rate_limit": "10/m", "adaptive_max": 8,
                                    "reason": "billing is struggling"})
    assert response.status_code == 200, response.json()
    flow = response.json()["flow"]
    assert (flow["max_concurrency"], flow["rate_limit"], flow["adaptive"]) == (2, "10/m", {"min": 1, "max": 8})
    assert flow["configured"] == {"max_concurrency": 4, "rate_limit": "50/s", "adaptive": {"min": 1, "max": 16}}
    event = BreakerEvent.objects.get(breaker="billing", kind=BreakerEventKind.LIMITS_CHANGED)
    assert event.actor == "user:operator" and event.reason == "billing is struggling"
    assert event.details["old"]["max_concurrency"] == 4 and event.details["new"]["max_concurrency"] == 2
    assert event.details["old"]["rate_limit"] == "50/s" and event.details["new"]["rate_limit"] == "10/m"

    response = patch(operator_api, {"max_concurrency": None, "reason": "lift the cap"})
    assert response.status_code == 200 and response.json()["flow"]["max_concurrency"] is None
    assert response.json()["flow"]["rate_limit"] == "10/m", "other live limits stay"

    response = patch(operator_api, {"reset": True, "reason": "incident over"})
    assert response.status_code == 200
    assert response.json()["flow"]["max_concurrency"] == 4 and response.json()["flow"]["live"] == {}
    assert BreakerEvent.objects.filter(kind=BreakerEventKind.LIMITS_CHANGED).count() == 3
    detail = operator_api.get("/api/breakers/billing/").json()
    latest = max(detail["events"], key=lambda e: e["at"])
    assert latest["kind"] == "limits_changed" and latest["reason"] == "incident over"


@override_settings(RESILIENT=CONFIG)
def test_a_live_cap_is_honoured_at_the_next_claim(operator_api):
    jobs = [services.job_submit(kind="noop", dependency="search")[0] for _ in range(6)]
    Breaker.objects.filter(name="search").update(probe_window=64)  # proven: only the cap limits
    patch(operator_api, {"max_concurrency": 1, "reason": "throttle"}, name="search")
    assert len(queue.jobs_claim(worker_id="w", limit=10)) == 1
    patch(operator_api, {"max_concurrency": 3, "reason": "loosen"}, name="search")
    assert len(queue.jobs_claim(worker_id="w", limit=10)) == 2
    assert set(Job.objects.filter(seq__in=[j.seq for j in jobs]).values_list("attempts", flat=True)) == {0}


@override_settings(RESILIENT=CONFIG)
@pytest.mark.parametrize(("body", "field"), [
    ({"max_concurrency": 0, "reason": "x"}, "max_concurrency"),
    ({"max_concurrency": "2", "reason": "x"}, "max_concurrency"),
    ({"max_concurrency": True, "reason": "x"}, "max_concurrency"),
    ({"rate_limit": "5 per s", "reason": "x"}, "rate_limit"),
    ({"rate_limit": 5, "reason": "x"}, "rate_limit"),
    ({"adaptive_min": 0, "reason": "x"}, "adaptive_min"),
    ({"adaptive_min": 20, "reason": "x"}, "adaptive_min"),
    ({"max_concurrency": 2}, "reason"),
    ({"max_concurrency": 2, "reason": "  "}, "reason"),
    ({"max_concurrency": 2, "reason": 5}, "reason"),
    ({"reset": "yes", "reason": "x"}, "reset"),
    ({"reset": True, "max_concurrency": 2, "reason": "x"}, "reset"),
    ({"reason": "x"}, "non_field_errors"),
    ({"burst": 2, "reason": "x"}, "burst"),
])
def test_bad_values_are_a_400_naming_the_field_and_change_nothing(operator_api, body, field):
    response = patch(operator_api, body)
    assert response.status_code == 400, response.json()
    assert field in response.json(), response.json()
    assert not BreakerEvent.objects.filter(kind=BreakerEventKind.LIMITS_CHANGED).exists()
    assert all(row.limits == {} for row in Breaker.objects.all())


def test_adaptive_bounds_need_adaptive_concurrency(operator_api):
    response = patch(operator_api, {"adaptive_max": 4, "reason": "x"}, name="default")
    assert response.status_code == 400 and "adaptive_max" in response.json()


def test_the_change_needs_the_override_permission(api, readonly_api, staff_readonly, operator_api):
    body = {"max_concurrency": 2, "reason": "x"}
    assert patch(api, body, name="default").status_code == 403
    assert patch(readonly_api, body, name="default").status_code == 403
    staff_readonly.user_permissions.add(Permission.objects.get(codename="override_breaker"))
    assert patch(readonly_api, body, name="default").status_code == 200
    assert patch(operator_api, body, name="nope").status_code == 404


@override_settings(RESILIENT=CONFIG)
def test_the_flow_block_says_why_the_adaptive_limit_last_changed(operator_api):
    from jobs import breakers

    assert operator_api.get("/api/breakers/billing/").json()["flow"]["adaptive_change"] is None
    Breaker.objects.filter(name="billing").update(adaptive_limit=6.0)
    breakers.breaker_record(name="billing", outcome=breakers.Outcome.FAILURE,
                            error="timeout calling http://billing.internal/x: ReadTimeout")
    flow = operator_api.get("/api/breakers/billing/").json()["flow"]
    assert flow["adaptive_limit"] == 3
    change = flow["adaptive_change"]
    assert (change["from"], change["to"], change["cause"]) == (6, 3, "timeout") and change["at"]
    assert operator_api.get("/api/breakers/search/").json()["flow"]["adaptive_change"] is None, "not adaptive"
