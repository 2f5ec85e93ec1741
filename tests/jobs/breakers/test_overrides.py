"""Operator overrides: forced open and closed with their shadow state, TTLs, input checks."""

from __future__ import annotations

import pytest

from jobs import breakers
from jobs.breakers import Outcome
from jobs.exceptions import CircuitOpen, InvalidInput
from jobs.models import BreakerEvent, BreakerEventKind
from tests.jobs.breakers.svc import SVC, admit, at, record, row, trip

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("svc_config")]


def test_forced_open_rejects_and_keeps_recording_with_a_shadow_state():
    breakers.breaker_force_open(name=SVC, actor="user:op", reason="maintenance", now=at(0))
    with pytest.raises(CircuitOpen) as info:
        admit(now=1)
    assert "forced open" in str(info.value)
    r = row()
    assert breakers.effective_state(r, at(1)) == "open" and r.state == "closed"
    trip(now=2)  # late failures still count: the shadow (automatic) state opens
    assert row().state == "open"
    event = BreakerEvent.objects.get(kind=BreakerEventKind.FORCED_OPEN)
    assert (event.actor, event.reason, event.to_state) == ("user:op", "maintenance", "open")
    breakers.breaker_release(name=SVC, actor="user:op", now=at(3))
    with pytest.raises(CircuitOpen):
        admit(now=3)  # back to automatic, which is open now


def test_forced_closed_admits_everything_counts_and_never_trips():
    breakers.breaker_force_closed(name=SVC, actor="user:op", reason="false alarm", now=at(0))
    for i in range(10):
        admission = admit(now=i)
        assert not admission.trial
        record(Outcome.FAILURE, now=i, admission=admission)
    r = row()
    assert breakers.effective_state(r, at(10)) == "closed"
    assert r.state == "open", "shadow state: what the automatic breaker would be"
    # In shadow mode a success when a trial would be due closes the automatic state.
    record(Outcome.SUCCESS, now=30, admission=admit(now=30))
    assert row().state == "closed"


def test_override_ttl_lifts_by_itself():
    breakers.breaker_force_open(name=SVC, actor="user:op", ttl_seconds=30, now=at(0))
    with pytest.raises(CircuitOpen):
        admit(now=29)
    admit(now=30)  # decisions ignore an expired override at once
    assert breakers.breakers_expire_overrides(now=at(31)) == 1
    r = row()
    assert r.override == "" and r.override_expires_at is None
    assert BreakerEvent.objects.filter(kind=BreakerEventKind.OVERRIDE_EXPIRED).count() == 1
    assert breakers.breakers_expire_overrides(now=at(32)) == 0


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"reason": 5}, "reason"),
        ({"reason": "x" * 501}, "reason"),
        ({"reason": "a\x00b"}, "reason"),
        ({"ttl_seconds": 0}, "ttl_seconds"),
        ({"ttl_seconds": -1}, "ttl_seconds"),
        ({"ttl_seconds": "10"}, "ttl_seconds"),
        ({"ttl_seconds": True}, "ttl_seconds"),
        ({"ttl_seconds": 10**9}, "ttl_seconds"),
    ],
)
def test_override_input_is_checked(kwargs, field):
    with pytest.raises(InvalidInput) as info:
        breakers.breaker_force_open(name=SVC, actor="user:op", **kwargs)
    assert info.value.field == field
    assert row().override == ""
    assert not BreakerEvent.objects.exists()


def test_release_takes_no_ttl():
    with pytest.raises(InvalidInput):
        breakers.breaker_release(name=SVC, actor="user:op", ttl_seconds=5)
