"""pybreaker driven by the row storage: its state machine on our shared, atomic row."""

from __future__ import annotations

from datetime import timedelta

import pybreaker
import pytest
from django.test import override_settings
from django.utils import timezone

from jobs import breakers
from jobs.breakers.storage import BreakerRowStorage, pybreaker_for
from jobs.exceptions import DependencyFailure, PermanentJobFailure
from jobs.models import Breaker, BreakerEvent, BreakerEventKind

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("config"),
]


@pytest.fixture
def config():
    with override_settings(RESILIENT={"DEPENDENCIES": {"svc": {"failure_threshold": 2, "reset_timeout": 10}}}):
        yield


def failing():
    raise DependencyFailure("HTTP 503")


def call(cb, func=lambda: "ok"):
    with cb.calling():
        return func()


def row() -> Breaker:
    return Breaker.objects.get(name="svc")


def test_every_storage_member_is_implemented():
    """pybreaker's base class uses @abstractmethod without ABCMeta: a missing member returns None."""
    storage = BreakerRowStorage("svc", owner="me")
    assert storage.state == "closed"
    assert storage.counter == 0 and storage.success_counter == 0
    assert storage.opened_at is None


def test_pybreaker_trips_on_the_shared_row_and_rejects():
    cb = pybreaker_for("svc", owner="me")
    for _ in range(2):
        with pytest.raises(DependencyFailure):
            call(cb, failing)
    assert row().state == "open" and row().failures == 2
    with pytest.raises(pybreaker.CircuitBreakerError):
        call(cb)
    assert BreakerEvent.objects.filter(kind=BreakerEventKind.OPENED).count() == 1


def test_excluded_errors_do_not_count():
    cb = pybreaker_for("svc", owner="me")
    for _ in range(5):
        with pytest.raises(PermanentJobFailure):
            call(cb, lambda: (_ for _ in ()).throw(PermanentJobFailure("HTTP 404")))
    assert row().state == "closed"


def test_half_open_trial_is_exclusive_and_closes_on_success():
    first, second = pybreaker_for("svc", owner="first"), pybreaker_for("svc", owner="second")
    for _ in range(2):
        with pytest.raises(DependencyFailure):
            call(first, failing)
    Breaker.objects.filter(name="svc").update(retry_at=timezone.now() - timedelta(seconds=1))
    inside = []

    def trial():
        # While the trial runs, the other owner is rejected (pybreaker alone would let it through).
        with pytest.raises(pybreaker.CircuitBreakerError):
            call(second)
        inside.append(row().state)
        return "ok"

    assert call(first, trial) == "ok"
    assert inside == ["half-open"]
    assert row().state == "closed" and row().level == 0
    assert call(second) == "ok"


def test_failed_trial_reopens_with_doubled_timeout():
    cb = pybreaker_for("svc", owner="me")
    for _ in range(2):
        with pytest.raises(DependencyFailure):
            call(cb, failing)
    Breaker.objects.filter(name="svc").update(retry_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(DependencyFailure):
        call(cb, failing)
    r = row()
    assert r.state == "open" and r.level == 1
    assert 15 <= (r.retry_at - r.opened_at).total_seconds() <= 20


def test_forced_states_are_sticky_for_pybreaker():
    cb = pybreaker_for("svc", owner="me")
    breakers.breaker_force_open(name="svc", actor="op")
    with pytest.raises(pybreaker.CircuitBreakerError):
        call(cb)
    breakers.breaker_force_closed(name="svc", actor="op")
    for _ in range(4):
        with pytest.raises(DependencyFailure):
            call(cb, failing)
    assert call(cb) == "ok"
