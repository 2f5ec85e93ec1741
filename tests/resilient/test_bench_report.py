"""The benchmark harness's verdicts: a benchmark's own check that is False fails its row (and
so ``make bench``), a plain flag does not."""

from __future__ import annotations

from bench import report


def test_a_false_verdict_fails_its_row_and_a_plain_flag_does_not():
    rows = report.rows_from_dict("flow", {
        "dead": {"max": 3, "promise_holds": True},
        "overload": {"adaptive_meets_target": False, "finished": False},
    })
    status = {row.case: row.status for row in rows}
    assert status == {"dead / max": "ok", "dead / promise_holds": "ok",
                      "overload / adaptive_meets_target": "failed", "overload / finished": "ok"}
