"""Job search: JSON containment with PostgreSQL's ``@>`` semantics on both databases, id prefixes
as index ranges, creation windows, several statuses, owner isolation."""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from jobs import selectors, services
from jobs.exceptions import InvalidInput
from jobs.models import Job, JobStatus
from jobs.selectors import sql

pytestmark = pytest.mark.django_db

PAYLOAD = {
    "a": 1, "b": "x", "c": True, "d": None, "k": 1.5, "u": "é ü 😀", 'we"ird.key[0]': 1,
    "e": [1, 2, {"f": "g"}],
    "h": {"i": {"j": [True, False]}},
    "m": [[1, 2], [3]],
}

# (needle, contained?) — each expectation is what PostgreSQL's jsonb @> answers.
CASES = [
    ({}, True),
    ({"a": 1}, True), ({"a": 1.0}, True), ({"a": "1"}, False), ({"a": True}, False), ({"a": 2}, False),
    ({"c": True}, True), ({"c": 1}, False), ({"c": False}, False),
    ({"d": None}, True), ({"d": False}, False), ({"missing": None}, False),
    ({"b": "x"}, True), ({"b": "X"}, False), ({"u": "é ü 😀"}, True), ({'we"ird.key[0]': 1}, True),
    ({"k": 1.5}, True), ({"k": 1}, False),
    ({"e": []}, True), ({"e": [2]}, True), ({"e": [2, 1]}, True), ({"e": [1, 1]}, True), ({"e": [3]}, False),
    ({"e": [{"f": "g"}]}, True), ({"e": [{}]}, True), ({"e": [{"f": "h"}]}, False),
    ({"e": 2}, False), ({"e": {}}, False), ({"e": [[1]]}, False), ({"e": ["1"]}, False),
    ({"h": {}}, True), ({"h": {"i": {}}}, True), ({"h": {"i": {"j": [False]}}}, True),
    ({"h": {"i": {"j": True}}}, False), ({"h": {"i": {"j": [None]}}}, False), ({"h": []}, False),
    ({"m": [[3]]}, True), ({"m": [[2, 1], [3]]}, True), ({"m": [[1, 3]]}, False), ({"m": [3]}, False),
    ({"a": 1, "b": "x", "e": [{"f": "g"}]}, True), ({"a": 1, "b": "y"}, False),
]


@pytest.fixture
def jobs():
    match = services.job_submit(kind="noop", payload=PAYLOAD)[0]
    other = services.job_submit(kind="noop", payload={"a": [1], "e": {"f": "g"}, "h": "i"})[0]
    return match, other


@pytest.mark.parametrize(("needle", "expected"), CASES)
def test_payload_contains_has_jsonb_semantics_on_this_database(jobs, needle, expected):
    match, _ = jobs
    found = list(selectors.job_list(payload_contains=needle).values_list("seq", flat=True))
    assert (match.seq in found) == expected, (connection.vendor, needle)


@pytest.mark.parametrize(("needle", "expected"), CASES)
def test_the_sqlite_containment_agrees_with_jsonb_whatever_database_runs_the_suite(needle, expected):
    # The statement built for SQLite, run by SQLite itself even when the suite runs on PostgreSQL.
    db = sqlite3.connect(":memory:")
    condition, params = sql.json_contains("doc", needle)
    condition = condition.replace("%s", "?")  # Django's placeholder, sqlite3's own
    row = db.execute(f"SELECT {condition} FROM (SELECT ? AS doc)", [*params, json.dumps(PAYLOAD)]).fetchone()
    assert bool(row[0]) == expected, needle


def test_a_job_list_with_no_payload_match_is_empty_and_counts_zero(jobs):
    assert selectors.job_list(payload_contains={"nobody": "has this"}).count() == 0
    assert selectors.job_list(payload_contains={"e": {"f": "g"}}).count() == 1  # only the second job


def test_id_prefix_is_a_range_of_the_unique_index(jobs):
    match, other = jobs
    text = str(match.uuid)
    for prefix in (text[:8], text[:13], text.replace("-", "")[:20], text, text.upper()):
        query = selectors.job_query_parse({"id_prefix": [prefix]})
        assert [j.seq for j in selectors.job_list(query=query)] == [match.seq], prefix
    sql_text = str(selectors.job_list(query=selectors.job_query_parse({"id_prefix": [text[:8]]})).query)
    assert "LIKE" not in sql_text.upper()


@pytest.mark.parametrize(
    "prefix", ["abc", "1234567", "ghijklmn", "12345678-", "1234-5678", "12345678--", "1234567890abcdef-", "0" * 33, ""],
)
def test_bad_id_prefixes_are_refused(prefix):
    if prefix == "12345678-":  # a dash where the id has one: allowed (8 digits)
        assert selectors.job_query_parse({"id_prefix": [prefix]}).id_prefix == "12345678"
        return
    with pytest.raises(InvalidInput) as caught:
        selectors.job_query_parse({"id_prefix": [prefix]})
    assert caught.value.field == "id_prefix"


def test_created_window_is_inclusive_after_and_exclusive_before():
    now = timezone.now().replace(microsecond=0)
    seqs = []
    for minutes in (30, 20, 10):
        job = services.job_submit(kind="noop")[0]
        Job.objects.filter(seq=job.seq).update(created_at=now - timedelta(minutes=minutes))
        seqs.append(job.seq)
    window = selectors.job_list(created_after=now - timedelta(minutes=20), created_before=now - timedelta(minutes=10))
    assert [j.seq for j in window] == [seqs[1]]
    query = selectors.job_query_parse({"created_after": [(now - timedelta(minutes=25)).isoformat()], "ordering": ["oldest"]})
    assert [j.seq for j in selectors.job_list(query=query)] == seqs[1:]


def test_several_statuses_repeated_or_comma_separated():
    pending = services.job_submit(kind="noop")[0]
    cancelled = services.job_cancel(job_id=services.job_submit(kind="noop")[0].uuid)
    failed = services.job_submit(kind="noop")[0]
    Job.objects.filter(seq=failed.seq).update(status=JobStatus.FAILED)
    for params in ({"status": ["failed", "cancelled"]}, {"status": ["failed,cancelled"]}, {"status": ["cancelled", "failed,failed"]}):
        query = selectors.job_query_parse(params)
        assert {j.seq for j in selectors.job_list(query=query)} == {failed.seq, cancelled.seq}, params
    assert [j.seq for j in selectors.job_list(statuses=("pending",))] == [pending.seq]


def test_search_only_finds_jobs_the_user_may_see(user, django_user_model, jobs):
    mine = services.job_submit(kind="noop", payload={"a": 1}, submitter=user)[0]
    stranger = django_user_model.objects.create_user("stranger", password="stranger-pass-123")
    assert [j.seq for j in selectors.job_list(user=user, payload_contains={"a": 1})] == [mine.seq]
    assert list(selectors.job_list(user=stranger, payload_contains={"a": 1})) == []
    prefix = str(jobs[0].uuid)[:8]
    assert list(selectors.job_list(user=user, query=selectors.job_query_parse({"id_prefix": [prefix]}))) == []


def test_postgresql_answers_containment_from_the_gin_index(postgres, jobs):
    queryset = selectors.job_list(payload_contains={"b": "x"})
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")  # a two-row table would be scanned otherwise
        try:
            plan = queryset.explain()
        finally:
            cursor.execute("RESET enable_seqscan")
    assert "job_payload_contains" in plan, plan
