"""What ``resilient show`` says a held job waits for: the server's own ``waiting_for`` (read from
the real database after real claims), in words, for every flow-control limit."""

from __future__ import annotations

import pytest
from django.test import override_settings

from jobs import breakers, queue, selectors, services
from resilient_cli import render

pytestmark = pytest.mark.django_db

DEP = "billing"


def held_job(**options) -> dict:
    """Two jobs on ``DEP``; the first claimed, the second's ``waiting_for`` returned."""
    with override_settings(RESILIENT={"DEPENDENCIES": {DEP: {"failure_threshold": 5, **options}}}):
        breakers.breakers_ensure()
        first, second = (services.job_submit(kind="noop", dependency=DEP)[0] for _ in range(2))
        claimed = queue.claims_take(worker_id="w", limit=10)
        assert [c.job.seq for c in claimed] == [first.seq]
        second.refresh_from_db()
        return selectors.job_waiting_for(second)


def test_a_job_held_by_the_rate_limit_says_which_limit_and_the_next_start():
    waiting = held_job(rate_limit="1/h")
    assert waiting["reason"] == "rate_limit"
    text = render.waiting(waiting)
    assert text == f"held by {DEP}'s rate limit 1/h; next start at {waiting['until']}"


@pytest.mark.parametrize(("options", "reason", "words"), [
    ({"max_concurrency": 1}, "max_concurrency", "concurrency cap"),
    ({"concurrency": {"mode": "adaptive", "min": 1, "max": 1}}, "adaptive_concurrency", "adaptive concurrency limit"),
    ({"failure_threshold": 1}, "probing", "probe limit after failures"),
])
def test_a_job_held_by_a_concurrency_limit_says_which_and_how_full(options, reason, words):
    waiting = held_job(**options)
    assert waiting["reason"] == reason
    assert render.waiting(waiting) == (
        f"held by {DEP}'s {words} (1 of 1 calls in flight); starts when a call in flight finishes, "
        f"at the latest {waiting['at_latest']}")
