"""Bad input (issue 2, item 5): a JSON 400 naming the field, nothing stored, never a 500.

Every case runs on SQLite and on PostgreSQL (jsonb rejects NUL, so NUL must be refused before
the database sees it).
"""

from __future__ import annotations

import json
import os

import pytest
from django.conf import settings as django_settings
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobs import services
from jobs.models import EventKind, Job, JobEvent

pytestmark = pytest.mark.django_db

SUBMIT = "/api/jobs/"
WRITE_UP = "/jobs"


def counts() -> tuple[int, int]:
    return Job.objects.count(), JobEvent.objects.count()


@pytest.fixture
def stored():
    """One job already stored, so "nothing stored" compares real, non-zero counts."""
    services.job_submit(kind="noop", idempotency_key="already-there")
    return counts()


def post_json(client, path: str, body) -> object:
    """POST ``body`` encoded by the stdlib (ensure_ascii: lone surrogates travel as \\uXXXX)."""
    return client.post(path, json.dumps(body), content_type="application/json")


def post_raw(client, path: str, raw: bytes | str, content_type: str = "application/json"):
    return client.post(path, raw, content_type=content_type)


def assert_rejected(response, field: str, before: tuple[int, int], *, status: int = 400) -> dict:
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert field in body, body
    assert counts() == before
    return body


def nest(levels: int, leaf=1) -> dict:
    """A dict ``levels`` deep counting itself: nest(1) == {"a": 1}."""
    value = leaf
    for _ in range(levels):
        value = {"a": value}
    return value


def nest_lists(levels: int, leaf=1) -> list:
    value = leaf
    for _ in range(levels):
        value = [value]
    return value


# --- the body as a whole ---------------------------------------------------------------------

NOT_JSON = [
    b"kind=noop",
    b"{",
    b"{'kind': 'noop'}",
    b'{"kind": "noop",}',
    b'{"kind": "noop"} trailing',
    b"\xef\xbb\xbf",  # a bare byte-order mark
]


@pytest.mark.parametrize("path", [SUBMIT, WRITE_UP])
@pytest.mark.parametrize("raw", NOT_JSON)
def test_body_not_json(api, stored, path, raw):
    body = assert_rejected(post_raw(api, path, raw), "detail", stored)
    assert body["code"] == "parse_error"


NOT_AN_OBJECT = [
    b"[]",
    b'[{"kind": "noop"}]',
    b"[[1]]",
    b"[{}]",
    b'"noop"',
    b"42",
    b"0",
    b"-1.5",
    b"null",
    b"true",
    b"false",
]


@pytest.mark.parametrize("path", [SUBMIT, WRITE_UP])
@pytest.mark.parametrize("raw", NOT_AN_OBJECT)
def test_body_not_an_object(api, stored, path, raw):
    body = assert_rejected(post_raw(api, path, raw), "non_field_errors", stored)
    assert body["non_field_errors"] == ["the body must be a JSON object"]


NON_FINITE = [
    b'{"kind": "noop", "payload": {"x": NaN}}',
    b'{"kind": "noop", "payload": {"x": Infinity}}',
    b'{"kind": "noop", "payload": {"x": [-Infinity]}}',
    b'{"kind": "noop", "priority": NaN}',
]

# Not NaN literals, but json.loads turns them into float infinities.
OVERFLOWING = [
    (b'{"kind": "noop", "payload": {"x": 1e400}}', "payload"),
    (b'{"kind": "noop", "payload": {"x": [-1e400]}}', "payload"),
    (b'{"kind": "noop", "priority": 1e400}', "priority"),
    (b'{"kind": "noop", "max_attempts": -1e400}', "max_attempts"),
]


@pytest.mark.parametrize(("raw", "field"), OVERFLOWING)
def test_numbers_that_overflow_to_infinity(api, stored, raw, field):
    assert_rejected(post_raw(api, SUBMIT, raw), field, stored)


def test_write_up_number_overflowing_to_infinity(api, stored):
    assert_rejected(post_raw(api, WRITE_UP, b'{"x": 1e400}'), "payload", stored)


def test_huge_integers_are_kept_exactly(api):
    raw = b'{"kind": "noop", "payload": {"big": ' + b"9" * 200 + b"}}"
    response = post_raw(api, SUBMIT, raw)
    assert response.status_code == 201, response.content
    assert Job.objects.get().payload == {"big": int("9" * 200)}


def test_integers_beyond_the_parser_limit_are_400(api, stored):
    raw = b'{"kind": "noop", "payload": {"big": ' + b"9" * 5000 + b"}}"
    assert_rejected(post_raw(api, SUBMIT, raw), "detail", stored)


@pytest.mark.parametrize("path", [SUBMIT, WRITE_UP])
@pytest.mark.parametrize("raw", NON_FINITE)
def test_nan_and_infinity_are_not_json(api, stored, path, raw):
    assert_rejected(post_raw(api, path, raw), "detail", stored)


NOT_UTF8 = [
    b'{"kind": "noop", "payload": {"x": "\xff\xfe"}}',
    b'{"kind": "caf\xe9"}',  # Latin-1
    '{"kind": "noop"}'.encode("utf-16"),
    b'{"kind": "noop", "payload": {"x": "\xed\xa0\x80"}}',  # a surrogate encoded as raw UTF-8 bytes
]


@pytest.mark.parametrize("path", [SUBMIT, WRITE_UP])
@pytest.mark.parametrize("raw", NOT_UTF8)
def test_body_not_utf8(api, stored, path, raw):
    assert_rejected(post_raw(api, path, raw), "detail", stored)


DEEP_BODIES = [b"[" * 100_000, b'{"a":' * 100_000, b'{"kind": "noop", "payload": ' + b"[" * 50_000]


@pytest.mark.parametrize("path", [SUBMIT, WRITE_UP])
@pytest.mark.parametrize("raw", DEEP_BODIES, ids=["brackets", "objects", "in-payload"])
def test_deeply_nested_body(api, stored, path, raw):
    assert_rejected(post_raw(api, path, raw), "detail", stored)


@pytest.mark.parametrize("path", [SUBMIT, WRITE_UP])
def test_body_over_the_default_limit_is_413(api, stored, path):
    limit = django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE  # RESILIENT_MAX_BODY_BYTES
    if not os.environ.get("RESILIENT_MAX_BODY_BYTES"):
        assert limit == 1024 * 1024  # the default
    raw = json.dumps({"kind": "noop", "payload": {"x": "a" * limit}}).encode()
    body = assert_rejected(post_raw(api, path, raw), "detail", stored, status=413)
    assert body["code"] == "too_large"


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=200)
@pytest.mark.parametrize("path", [SUBMIT, WRITE_UP])
def test_body_over_a_configured_limit_is_413(api, stored, path):
    over = json.dumps({"kind": "noop", "payload": {"x": "a" * 300}}).encode()
    assert_rejected(post_raw(api, path, over), "detail", stored, status=413)
    fits = json.dumps({"kind": "noop", "payload": {"x": "a" * 150}}).encode()
    assert len(fits) <= 200
    assert post_raw(api, path, fits).status_code in (200, 201)


def test_other_content_types_are_refused_as_json(api, stored):
    response = post_raw(api, SUBMIT, b"kind=noop", content_type="application/x-www-form-urlencoded")
    assert_rejected(response, "detail", stored, status=415)
    response = post_raw(api, SUBMIT, b'{"kind": "noop"}', content_type="text/plain")
    assert_rejected(response, "detail", stored, status=415)


def test_empty_body_names_kind(api, stored):
    assert_rejected(post_raw(api, SUBMIT, b""), "kind", stored)
    assert_rejected(post_raw(api, SUBMIT, b"{}"), "kind", stored)


# --- fields of POST /api/jobs/ ---------------------------------------------------------------

FIELD_CASES = [
    # (field named in the answer, body)
    ("kind", {"payload": {}}),
    ("kind", {"kind": "nope"}),
    ("kind", {"kind": ""}),
    ("kind", {"kind": "NOOP"}),
    ("kind", {"kind": "noop\u0000"}),
    ("kind", {"kind": "\ud800"}),
    ("kind", {"kind": 5}),
    ("kind", {"kind": True}),
    ("kind", {"kind": None}),
    ("kind", {"kind": ["noop"]}),
    ("kind", {"kind": {"name": "noop"}}),
    ("priority", {"kind": "noop", "priority": "5"}),
    ("priority", {"kind": "noop", "priority": 5.5}),
    ("priority", {"kind": "noop", "priority": 5.0}),
    ("priority", {"kind": "noop", "priority": True}),
    ("priority", {"kind": "noop", "priority": False}),
    ("priority", {"kind": "noop", "priority": None}),
    ("priority", {"kind": "noop", "priority": []}),
    ("priority", {"kind": "noop", "priority": {}}),
    ("priority", {"kind": "noop", "priority": -101}),
    ("priority", {"kind": "noop", "priority": 101}),
    ("priority", {"kind": "noop", "priority": 10**30}),
    ("priority", {"kind": "noop", "priority": -(10**30)}),
    ("priority", {"kind": "noop", "priority": 1e300}),
    ("emergency", {"kind": "noop", "emergency": "true"}),
    ("emergency", {"kind": "noop", "emergency": 1}),
    ("emergency", {"kind": "noop", "emergency": 0}),
    ("emergency", {"kind": "noop", "emergency": None}),
    ("emergency", {"kind": "noop", "emergency": []}),
    ("priority", {"kind": "noop", "priority": 5, "emergency": True}),
    ("priority", {"kind": "noop", "priority": 10, "emergency": True}),
    ("max_attempts", {"kind": "noop", "max_attempts": 0}),
    ("max_attempts", {"kind": "noop", "max_attempts": -1}),
    ("max_attempts", {"kind": "noop", "max_attempts": 101}),
    ("max_attempts", {"kind": "noop", "max_attempts": 70_000}),
    ("max_attempts", {"kind": "noop", "max_attempts": "3"}),
    ("max_attempts", {"kind": "noop", "max_attempts": 3.5}),
    ("max_attempts", {"kind": "noop", "max_attempts": True}),
    ("max_attempts", {"kind": "noop", "max_attempts": None}),
    ("payload", {"kind": "noop", "payload": []}),
    ("payload", {"kind": "noop", "payload": [{"a": 1}]}),
    ("payload", {"kind": "noop", "payload": "x"}),
    ("payload", {"kind": "noop", "payload": 5}),
    ("payload", {"kind": "noop", "payload": True}),
    ("payload", {"kind": "noop", "payload": None}),
    ("payload", {"kind": "noop", "payload": nest(33)}),
    ("payload", {"kind": "noop", "payload": {"a": nest_lists(32)}}),  # 33 levels with the dict
    ("payload", {"kind": "noop", "payload": {"x": "a\u0000b"}}),
    ("payload", {"kind": "noop", "payload": {"a\u0000": 1}}),
    ("payload", {"kind": "noop", "payload": {"deep": [{"x": ["\u0000"]}]}}),
    ("payload", {"kind": "noop", "payload": {"x": "\ud800"}}),
    ("payload", {"kind": "noop", "payload": {"x": "\udfff"}}),
    ("payload", {"kind": "noop", "payload": {"x": "\udc00\ud800"}}),  # a pair the wrong way round
    ("payload", {"kind": "noop", "payload": {"\ud800": 1}}),
    ("payload", {"kind": "noop", "payload": {"list": [1, "ok", "\ud83d"]}}),
    ("payload", {"kind": "simulate", "payload": {"complexity": "lots"}}),
    ("payload", {"kind": "simulate", "payload": {"failure_rate": 2}}),
    ("payload", {"kind": "http", "payload": {}}),
    ("payload", {"kind": "http", "payload": {"url": "http://example.com/"}}),
    ("payload", {"kind": "http", "payload": {"url": "ftp://127.0.0.1/"}}),
    ("payload", {"kind": "http", "payload": {"url": 5}}),
    ("payload", {"kind": "http", "payload": {"url": "http://[::1/"}}),
    ("payload", {"kind": "http", "payload": {"url": "http://127.0.0.1/", "method": "BREW"}}),
    ("payload", {"kind": "http", "payload": {"url": "http://127.0.0.1/", "headers": {"a": 1}}}),
    ("dependency", {"kind": "noop", "dependency": "nope"}),
    ("dependency", {"kind": "noop", "dependency": ""}),
    ("dependency", {"kind": "noop", "dependency": 5}),
    ("dependency", {"kind": "noop", "dependency": None}),
    ("dependency", {"kind": "noop", "dependency": "local\u0000"}),
    ("idempotency_key", {"kind": "noop", "idempotency_key": "k" * 201}),
    ("idempotency_key", {"kind": "noop", "idempotency_key": "\u00e9" * 201}),
    ("idempotency_key", {"kind": "noop", "idempotency_key": ""}),
    ("idempotency_key", {"kind": "noop", "idempotency_key": 5}),
    ("idempotency_key", {"kind": "noop", "idempotency_key": True}),
    ("idempotency_key", {"kind": "noop", "idempotency_key": ["k"]}),
    ("idempotency_key", {"kind": "noop", "idempotency_key": None}),
    ("idempotency_key", {"kind": "noop", "idempotency_key": "a\u0000b"}),
    ("idempotency_key", {"kind": "noop", "idempotency_key": "\ud800"}),
    ("colour", {"kind": "noop", "colour": "red"}),
    ("id", {"kind": "noop", "id": "3f1c0000-0000-0000-0000-000000000000"}),
    ("status", {"kind": "noop", "status": "succeeded"}),
    ("attempts", {"kind": "noop", "attempts": 0}),
]


@pytest.mark.parametrize(
    ("field", "body"), FIELD_CASES, ids=[f"{f}-{i}" for i, (f, _) in enumerate(FIELD_CASES)]
)
def test_bad_field_is_400_naming_it(api, stored, field, body):
    answer = assert_rejected(post_json(api, SUBMIT, body), field, stored)
    assert isinstance(answer[field], list) and all(isinstance(m, str) and m for m in answer[field])


def test_unknown_field_with_a_lone_surrogate_name(api, stored):
    raw = b'{"kind": "noop", "\\ud800x": 1}'
    response = post_raw(api, SUBMIT, raw)
    assert response.status_code == 400, response.content
    assert list(response.json()) == ["\\ud800x"]
    assert counts() == stored


def test_emergency_false_with_a_priority_is_fine(api):
    response = post_json(api, SUBMIT, {"kind": "noop", "priority": 5, "emergency": False})
    assert response.status_code == 201 and response.json()["priority"] == 5


@pytest.mark.parametrize("priority", [-100, 100, 0])
def test_priority_bounds_are_inclusive(operator_api, priority):
    response = post_json(operator_api, SUBMIT, {"kind": "noop", "priority": priority})
    assert response.status_code == 201 and response.json()["priority"] == priority


@pytest.mark.parametrize("max_attempts", [1, 100])
def test_max_attempts_bounds_are_inclusive(api, max_attempts):
    response = post_json(api, SUBMIT, {"kind": "noop", "max_attempts": max_attempts})
    assert response.status_code == 201 and response.json()["max_attempts"] == max_attempts


def test_idempotency_key_of_200_characters_is_fine(api):
    key = "\u00e9" * 200  # characters, not bytes
    assert post_json(api, SUBMIT, {"kind": "noop", "idempotency_key": key}).status_code == 201
    assert Job.objects.get().idempotency_key == key


@pytest.mark.parametrize("path", [SUBMIT, WRITE_UP])
def test_payload_depth_limit_is_inclusive(api, path):
    body = {"kind": "noop", "payload": nest(32)} if path == SUBMIT else nest(32)
    assert post_json(api, path, body).status_code in (200, 201)


def test_valid_surrogate_pairs_and_unicode_are_stored(api):
    raw = b'{"kind": "noop", "payload": {"emoji": "\\ud83d\\ude00", "\\u00e9": "\\u2603"}}'
    response = post_raw(api, SUBMIT, raw)
    assert response.status_code == 201, response.content
    assert Job.objects.get().payload == {"emoji": "\U0001f600", "\u00e9": "\u2603"}


# --- payload size --------------------------------------------------------------------------


def payload_of_size(size: int) -> dict:
    """A payload whose stored JSON (``json.dumps``, as JSONField writes it) is exactly ``size`` bytes."""
    payload = {"x": "a" * (size - len('{"x": ""}'))}
    assert len(json.dumps(payload).encode()) == size
    return payload


@override_settings(RESILIENT={})  # the defaults, whatever the environment says
@pytest.mark.parametrize("path", [SUBMIT, WRITE_UP])
def test_payload_over_the_default_256_kib(api, stored, path):
    limit = 256 * 1024
    too_big = payload_of_size(limit + 1)
    body = {"kind": "noop", "payload": too_big} if path == SUBMIT else too_big
    assert_rejected(post_json(api, path, body), "payload", stored)
    fits = payload_of_size(limit)
    body = {"kind": "noop", "payload": fits} if path == SUBMIT else fits
    assert post_json(api, path, body).status_code in (200, 201)


@override_settings(RESILIENT={"MAX_PAYLOAD_BYTES": 100})
@pytest.mark.parametrize("path", [SUBMIT, WRITE_UP])
def test_payload_over_a_configured_limit(api, stored, path):
    body = (
        {"kind": "noop", "payload": payload_of_size(101)}
        if path == SUBMIT
        else payload_of_size(101)
    )
    answer = assert_rejected(post_json(api, path, body), "payload", stored)
    assert "100" in answer["payload"][0]
    body = (
        {"kind": "noop", "payload": payload_of_size(100)}
        if path == SUBMIT
        else payload_of_size(100)
    )
    assert post_json(api, path, body).status_code in (200, 201)


@override_settings(RESILIENT={"MAX_PAYLOAD_BYTES": 100})
def test_payload_size_counts_utf8_bytes_not_characters(api, stored):
    payload = {"x": "\u00e9" * 50}  # 50 characters, 100 bytes of string
    assert_rejected(post_json(api, SUBMIT, {"kind": "noop", "payload": payload}), "payload", stored)


# --- the write-up's POST /jobs ----------------------------------------------------------------

WRITE_UP_CASES = [
    {"x": "a\u0000"},
    {"\u0000": 1},
    {"x": "\ud800"},
    {"\udfff": "y"},
    nest(33),
    {"complexity": "lots"},
    {"complexity": -1},
    {"failure_rate": 1.5},
]


@pytest.mark.parametrize("body", WRITE_UP_CASES)
def test_write_up_bad_payload(api, stored, body):
    assert_rejected(post_json(api, WRITE_UP, body), "payload", stored)


def test_write_up_accepts_any_object(api):
    response = post_json(api, WRITE_UP, {"anything": [1, {"b": None}], "emergency": "not a bool"})
    assert response.status_code == 200
    assert response.json()["priority"] == 1  # only "emergency": true raises it


# --- PATCH /api/jobs/{id}/ ---------------------------------------------------------------------

PATCH_CASES = [
    ("priority", {}),
    ("priority", {"priority": "5"}),
    ("priority", {"priority": 5.5}),
    ("priority", {"priority": True}),
    ("priority", {"priority": None}),
    ("priority", {"priority": []}),
    ("priority", {"priority": -101}),
    ("priority", {"priority": 101}),
    ("priority", {"priority": 10**30}),
    ("status", {"priority": 5, "status": "succeeded"}),
    ("non_field_errors", [{"priority": 5}]),
    ("non_field_errors", 5),
    ("non_field_errors", None),
]


@pytest.mark.parametrize(("field", "body"), PATCH_CASES)
def test_patch_bad_priority(operator_api, field, body):
    job, _ = services.job_submit(kind="noop", priority=3)
    before = counts()
    response = operator_api.patch(
        f"/api/jobs/{job.uuid}/", json.dumps(body), content_type="application/json"
    )
    assert_rejected(response, field, before)
    job.refresh_from_db()
    assert job.priority == 3
    assert not JobEvent.objects.filter(kind=EventKind.REPRIORITISED).exists()


@pytest.mark.parametrize("raw", [b"{", b'{"priority": NaN}', b"\xff", b"[" * 100_000])
def test_patch_body_not_json(operator_api, raw):
    job, _ = services.job_submit(kind="noop", priority=3)
    before = counts()
    response = operator_api.patch(f"/api/jobs/{job.uuid}/", raw, content_type="application/json")
    assert_rejected(response, "detail", before)
    job.refresh_from_db()
    assert job.priority == 3


# --- no client input produces a 500 ------------------------------------------------------------

# Strings include NUL and lone surrogates; json.dumps escapes them (ensure_ascii), as a client would.
TEXT = st.text(
    alphabet=st.one_of(st.characters(), st.sampled_from(["\u0000", "\ud800", "\udfff", "\ud83d"])),
    max_size=12,
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.integers(min_value=-150, max_value=150),
    st.floats(),  # NaN and Infinity included: json.dumps writes them, the parser must refuse
    TEXT,
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=25,
)
FIELDS = {
    "kind": st.one_of(st.sampled_from(["noop", "simulate", "http"]), JSON_VALUES),
    "payload": st.one_of(st.dictionaries(TEXT, JSON_VALUES, max_size=5), JSON_VALUES),
    "priority": st.one_of(st.integers(min_value=-120, max_value=120), JSON_VALUES),
    "emergency": st.one_of(st.booleans(), JSON_VALUES),
    "dependency": st.one_of(st.sampled_from(["local", "default", "validation"]), JSON_VALUES),
    "max_attempts": st.one_of(st.integers(min_value=-5, max_value=110), JSON_VALUES),
    "idempotency_key": st.one_of(TEXT, JSON_VALUES),
}
BODIES = st.one_of(
    st.fixed_dictionaries({}, optional=FIELDS),
    st.builds(
        lambda known, extra: {**extra, **known},
        st.fixed_dictionaries({}, optional=FIELDS),
        st.dictionaries(TEXT, JSON_VALUES, max_size=3),
    ),
    JSON_VALUES,
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=BODIES, path=st.sampled_from([SUBMIT, SUBMIT, WRITE_UP]))
def test_no_client_input_produces_a_500(api, body, path):
    before = counts()
    response = api.post(path, json.dumps(body), content_type="application/json")
    # 403: a priority above the ceiling or a privileged option; 409: a key reused with other
    # parameters (examples share the database); 429: the pending cap. Never a 5xx.
    assert response.status_code in {200, 201, 400, 403, 409, 413, 429}, response.content[:500]
    assert response["Content-Type"].startswith("application/json")
    response.json()
    if response.status_code in (400, 413):
        assert counts() == before
    else:
        assert Job.objects.count() in (before[0], before[0] + 1)


# --- query parameters ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("kind=%00", "kind"),
        ("dependency=a%00b", "dependency"),
        ("status=%00", "status"),
        ("status=bogus", "status"),
        ("ordering=%00", "ordering"),
    ],
)
def test_bad_list_filters_are_400_naming_them(api, query, field):
    response = api.get(f"/api/jobs/?{query}")
    assert response.status_code == 400, response.content
    assert field in response.json()


@pytest.mark.parametrize(
    "query", ["kind=%ED%A0%80", "kind=%FF", "dependency=%F0%9F%98%80", "page=%00"]
)
def test_odd_list_filters_never_500(api, query):
    assert api.get(f"/api/jobs/?{query}").status_code in (200, 404)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    body=st.one_of(
        st.fixed_dictionaries({}, optional={"priority": FIELDS["priority"]}), JSON_VALUES
    )
)
def test_no_patch_body_produces_a_500(operator_api, body):
    job, _ = services.job_submit(kind="noop")
    response = operator_api.patch(
        f"/api/jobs/{job.uuid}/", json.dumps(body), content_type="application/json"
    )
    assert response.status_code in {200, 400}, response.content[:500]
    if response.status_code == 400:
        job.refresh_from_db()
        assert job.priority == 0
