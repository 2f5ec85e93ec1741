"""The change stream's pure rules: applied to the old state, ``diff(old, new)`` gives ``new``,
for any two states; and a change is small when little changed."""

from __future__ import annotations

import copy
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from dashboard import changes

KEYS = [f"{i:08x}-0000-0000-0000-000000000000" for i in range(30)]
SECONDS = 20


def _waiting(draw_reason: str, dependency: str) -> dict | None:
    if draw_reason == "held":
        return {"reason": "breaker_open", "dependency": dependency, "state": "open", "until": "2026-01-01T00:00:00+00:00"}
    if draw_reason == "retry":
        return {"reason": "retry_scheduled", "until": "2026-01-01T00:00:00+00:00"}
    return None  # positional: filled in from the row's place


@st.composite
def queue(draw):
    keys = draw(st.lists(st.sampled_from(KEYS), unique=True, max_size=12))
    rows = []
    for key in keys:
        dependency = draw(st.sampled_from(["local", "default"]))
        row = {"id": key, "kind": "noop", "dependency": dependency, "priority": draw(st.integers(-2, 2))}
        waiting = _waiting(draw(st.sampled_from(["held", "retry", "order", "order"])), dependency)
        if waiting is not None:
            row["waiting_for"] = waiting
        rows.append(row)
    changes.queue_expand(rows)
    return rows


def rows(field: str):
    return st.lists(st.sampled_from(KEYS), unique=True, max_size=10).flatmap(
        lambda keys: st.tuples(*[st.fixed_dictionaries({field: st.just(k), "v": st.integers(0, 2)}) for k in keys])
    ).map(list)


@st.composite
def series(draw):
    end = draw(st.integers(100, 104))
    values = st.lists(st.integers(0, 3), min_size=SECONDS, max_size=SECONDS)
    return {"end": end, "seconds": SECONDS, "succeeded": draw(values), "failed": draw(values)}


@st.composite
def states(draw):
    return {
        "counts": {"pending": draw(st.integers(0, 3))},
        "estimated": draw(st.sampled_from([[], ["pending"]])),
        "breakers": draw(rows("name")),
        "queue": draw(queue()),
        "running": draw(rows("id")),
        "finished": draw(rows("id")),
        "events": draw(rows("id")),
        "throughput": draw(st.one_of(st.none(), series())),
    }


@settings(max_examples=400, deadline=None)
@given(states(), states())
def test_apply_of_diff_gives_the_new_state(old, new):
    change = changes.diff(old, new)
    wire = json.loads(json.dumps(change))  # what travels is JSON
    assert changes.apply(copy.deepcopy(old), wire) == new
    assert (change == {}) == (old == new)


def test_a_job_leaving_the_head_sends_no_other_row():
    rows = [{"id": k, "kind": "noop", "dependency": "local", "priority": 0} for k in KEYS]
    changes.queue_expand(rows)
    old = {"counts": {}, "estimated": [], "breakers": [], "queue": rows, "running": [], "finished": [], "events": [],
           "throughput": None}
    new = copy.deepcopy(old)
    del new["queue"][0]
    changes.queue_expand(new["queue"])
    assert changes.diff(old, new) == {"queue": {"order": [[1, len(KEYS) - 1]]}}


def test_a_moving_series_sends_only_its_new_seconds():
    old = {"end": 100, "seconds": SECONDS, "succeeded": list(range(SECONDS)), "failed": [0] * SECONDS}
    new = {"end": 101, "seconds": SECONDS, "succeeded": [*range(1, SECONDS), 7], "failed": [0] * SECONDS}
    assert changes._series_diff(old, new) == {"end": 101, "from": SECONDS - 1, "succeeded": [7], "failed": [0]}
