"""The submission's SQL reading of which breakers hold (``sql.breakers_holding``, PostgreSQL)
gives the same answers as its Python side (``holds_read``: ``rules.decide`` != ADMIT), for every
state, override and expiry, down to the text of ``retry_at`` in the held event."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from jobs import breakers
from jobs.breakers import sql
from jobs.models import Breaker, BreakerOverride, BreakerState

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 4, 5, 6, 7, 250000, tzinfo=UTC)
# Times around now: unset, past, exactly now, future with microseconds, future on a whole second.
TIMES = [None, NOW - timedelta(seconds=5), NOW, NOW + timedelta(seconds=30, microseconds=7), NOW.replace(microsecond=0) + timedelta(minutes=2)]


def _rows() -> list[Breaker]:
    rows = []
    combos = itertools.product(BreakerState.values, BreakerOverride.values, TIMES, TIMES, TIMES[:3])
    for n, (state, override, expires, retry_at, trial_expires) in enumerate(combos):
        rows.append(Breaker(name=f"b{n}", state=state, override=override, override_expires_at=expires,
                            retry_at=retry_at, trial_expires_at=trial_expires, updated_at=NOW))
    return rows


def test_sql_and_python_agree_on_what_holds_and_why(postgres):
    rows = Breaker.objects.bulk_create(_rows())
    names = sorted(row.name for row in rows) + ["no-such-breaker"]
    python = breakers.holds_read(names=set(names), now=NOW)
    with connection.cursor() as cursor:
        cursor.execute(sql.breakers_holding(count=len(names)), [NOW, *names])
        found = {name: (why, until, text) for name, why, until, text in cursor.fetchall()}
    assert {name: (why, until) for name, (why, until, _) in found.items()} == python
    # Both kinds of answer occur, or the comparison proves little.
    assert 0 < len(python) < len(rows)
    for name, (_, until, text) in found.items():
        assert text == (until.isoformat() if until else None), name
