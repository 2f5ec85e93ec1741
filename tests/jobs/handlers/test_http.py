"""The http kind's trust boundary, against real downstreams on 127.0.0.1.

In these tests only ``localhost`` is on the allowlist: a stub reached as ``127.0.0.1`` is off it
and must never receive a call, whether the job went through submission or reached the handler
directly (a payload stored before a rule existed, or written to the database by hand).
"""

from __future__ import annotations

import json

import pytest
import requests
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from jobs import breakers, dependencies
from jobs import http as http_client
from jobs.exceptions import DependencyFailure, InvalidInput, PermanentJobFailure
from jobs.handlers import builtin, http_payload
from jobs.handlers.registry import JobContext
from jobs.models import Job
from tests.support.downstream import Downstream

pytestmark = pytest.mark.django_db

SECRET = "Bearer s3cret-token"


@pytest.fixture(autouse=True)
def only_localhost():
    with override_settings(RESILIENT={"HTTP_ALLOWED_HOSTS": ["localhost"]}):
        yield


@pytest.fixture
def off_list():
    with Downstream() as ds:
        yield ds


@pytest.fixture
def allowed():
    with Downstream() as ds:
        yield ds


@pytest.fixture
def other():
    with Downstream() as ds:
        yield ds


def local(ds: Downstream, path: str = "/x") -> str:
    return f"http://localhost:{ds.port}{path}"


def run(payload: dict, dependency: str = "default") -> dict:
    """Call the handler as the worker does, without submission's checks."""
    return builtin.http(payload, JobContext(job_id="t", kind="http", dependency=dependency, attempt=1))


def submit(api, payload: dict, dependency: str | None = None):
    body = {"kind": "http", "payload": payload, **({"dependency": dependency} if dependency else {})}
    return api.post("/api/jobs/", body, format="json")


def assert_refused(api, payload: dict, dependency: str | None = None) -> str:
    """Submission answers 400 on ``payload`` and stores nothing; the handler refuses it too."""
    response = submit(api, payload, dependency)
    assert response.status_code == 400, response.content
    assert Job.objects.count() == 0
    with pytest.raises(PermanentJobFailure) as refused:
        run(payload, dependency or "default")
    assert breakers.classify(refused.value) == breakers.Outcome.NEUTRAL  # the job's fault, not the downstream's
    return str(response.json())


# --- 1. SSRF: one parse, and only the allowlisted host --------------------------------------------

URL_TRICKS = [
    "http://127.0.0.1:{off}\\@localhost/x",  # urlsplit saw localhost; requests connected to 127.0.0.1
    "http://127.0.0.1:{off}\\\\@localhost/x",
    "http://127.0.0.1:{off}@localhost/x",  # userinfo
    "http://localhost@127.0.0.1:{off}/x",
    "http://%6c%6fcalhost:{off}/x",  # percent-encoded host (requests decodes it)
    "http://127.0.0.%31:{off}/x",
    "http://127.0.0.1:{off}\t@localhost/x",  # urlsplit drops the tab
    "http://127.0.0.1:{off}\n@localhost/x",
    "http://127.0.0.1:{off}/x",  # plainly off the list
    "http://loc\u0430lhost:{off}/x",  # non-ASCII host (Cyrillic a)
    "ftp://localhost:{off}/x",
    "http://:{off}/x",
]


@pytest.mark.parametrize("trick", URL_TRICKS)
def test_url_tricks_are_refused_and_never_reach_the_network(api, off_list, trick):
    assert_refused(api, {"url": trick.format(off=off_list.port)})
    assert off_list.hits() == []


PATH_TRICKS = [
    "http://127.0.0.1:{off}\\@localhost/x",  # an absolute URL replaced the base
    "http://localhost:{allowed}/x",
    "//127.0.0.1:{off}/x",
    "../x",
    "a/../../x",
    "%2e%2e/x",
    "%2E%2E%2Fx",
    "a/%252e%252e/%252e%252e/x",  # encoded twice
    "./x",
    "@127.0.0.1:{off}/x",
    "\\\\127.0.0.1:{off}/x",
    "..\\x",
    "https:x",
    "x y",
    # dot segments with matrix parameters (Tomcat and friends read "..;x" as "..")
    "..;/admin",
    "%2e%2e;/admin",
    ".;/x",
    "a/..;jsessionid=1/x",
    "a/%252e%252e%253b/x",
    # NUL, which some servers treat as the end of the path
    ".%00./x",
    "%00",
    "x%2500y",
    "x?q=%00",
]


def billing_settings(ds: Downstream) -> dict:
    deps = {"billing": {"base_url": local(ds, "/api/"), "headers": {"Authorization": SECRET}}}
    return {"HTTP_ALLOWED_HOSTS": ["localhost"], "DEPENDENCIES": deps}


@pytest.fixture
def billing(allowed):
    with override_settings(RESILIENT=billing_settings(allowed)):
        yield allowed


@pytest.mark.parametrize("trick", PATH_TRICKS)
def test_path_tricks_are_refused_and_stay_under_the_base_url(api, billing, off_list, trick):
    assert_refused(api, {"path": trick.format(off=off_list.port, allowed=billing.port)}, "billing")
    assert off_list.hits() == [] and billing.hits() == []


def test_a_path_under_the_base_url_is_called_with_the_dependency_host(api, billing):
    billing.set("/api/v1/items:batch", status=201)
    assert submit(api, {"path": "v1/items:batch?x=1", "method": "POST", "json": {"a": 1}}, "billing").status_code == 201
    assert run({"path": "/v1/items:batch?x=1", "method": "POST"}, "billing")["status"] == 201
    assert billing.headers("/api/v1/items:batch")[0]["Host"] == f"localhost:{billing.port}"


def test_an_allowlisted_host_is_called_on_any_port(allowed, other):
    # The allowlist names hosts, not ports (see docs/security.md).
    assert run({"url": local(allowed)})["status"] == 200
    assert run({"url": local(other, "/y")})["status"] == 200
    assert allowed.hits("/x") and other.hits("/y")


@pytest.mark.parametrize("entry", ["::1", "[::1]", "0:0:0:0:0:0:0:1"])
@pytest.mark.parametrize("url", ["http://[::1]:8080/x", "http://[0::1]/x"])
def test_an_ipv6_literal_matches_its_bracketless_form(entry, url):
    with override_settings(RESILIENT={"HTTP_ALLOWED_HOSTS": [entry]}):
        builtin.validate_http({"url": url}, "default")
        with pytest.raises(InvalidInput):
            builtin.validate_http({"url": "http://[::2]/x"}, "default")


# --- 2. no cookies across jobs ---------------------------------------------------------------


def test_a_cookie_one_downstream_sets_is_never_sent_with_another_job(allowed, other):
    allowed.set("/login", headers={"Set-Cookie": "sid=planted; Path=/"})
    run({"url": local(allowed, "/login")})
    run({"url": local(other, "/elsewhere")})
    run({"url": local(allowed, "/again")})
    seen = other.headers() + allowed.headers()
    assert len(seen) == 3
    assert all("cookie" not in {name.lower() for name in headers} for headers in seen)


# --- 3. every part of the payload is checked at submission ---------------------------------------

BAD_PAYLOADS = [
    {"url": "http://localhost:abc/x"},
    {"url": "http://localhost:99999/x"},
    {"url": "http://localhost:0/x"},
    {"url": "http://localhost:/x"},
    {"url": 5},
    {},
    {"url": "http://localhost/x", "path": "/x"},
    {"url": "http://localhost/x", "method": "TRACE"},
    {"url": "http://localhost/x", "method": 5},
    {"url": "http://localhost/x", "headers": ["X-A"]},
    {"url": "http://localhost/x", "headers": {"X-A": 1}},
    {"url": "http://localhost/x", "headers": {"X-A": "1\r\nX-Injected: 1"}},
    {"url": "http://localhost/x", "headers": {"X-A": "a\nb"}},
    {"url": "http://localhost/x", "headers": {"X-A": "a\x00b"}},
    {"url": "http://localhost/x", "headers": {"Bad Name": "1"}},
    {"url": "http://localhost/x", "headers": {"X:A": "1"}},
    {"url": "http://localhost/x", "headers": {"": "1"}},
    {"url": "http://localhost/x", "headers": {"X-A": "v" * 5000}},
    {"url": "http://localhost/x", "headers": {f"X-{i}": "v" for i in range(40)}},
    {"url": "http://localhost/x", "headers": {"Host": "evil.example"}},
    {"url": "http://localhost/x", "headers": {"transfer-encoding": "chunked"}},
    {"url": "http://localhost/x", "headers": {"Content-Length": "5"}},
    {"url": "http://localhost/x", "headers": {"Connection": "close"}},
    {"url": "http://localhost/x", "headers": {"COOKIE": "sid=x"}},
    {"url": "http://localhost/x", "headers": {"Proxy-Authorization": "Basic eDp5"}},
    {"url": "http://localhost/x", "body": "x"},
    # requests refuses a value with leading or trailing whitespace only when it sends
    {"url": "http://localhost/x", "headers": {"X-A": " x"}},
    {"url": "http://localhost/x", "headers": {"X-A": "x "}},
    {"url": "http://localhost/x", "headers": {"X-A": "\tx"}},
    {"url": "http://localhost/x", "headers": {"X-A": "x\t"}},
    {"url": "http://localhost/x%00"},
    {"url": "http://localhost/x?q=%2500"},
]


@pytest.mark.parametrize("payload", BAD_PAYLOADS, ids=range(len(BAD_PAYLOADS)))
def test_bad_http_payloads_are_400_and_never_run(api, payload):
    assert_refused(api, payload)


def test_an_unknown_key_is_refused_naming_the_allowed_ones(api):
    message = assert_refused(api, {"url": "http://localhost/x", "timeout": 1})
    assert "timeout" in message and "headers, json, method, path, url" in message


def test_a_bad_port_at_run_time_does_not_count_against_the_breaker():
    with pytest.raises(PermanentJobFailure) as refused:
        run({"url": "http://localhost:abc/x"})
    assert breakers.classify(refused.value) == breakers.Outcome.NEUTRAL and not refused.value.retryable


def test_good_headers_and_any_json_are_sent(api, allowed):
    payload = {"url": local(allowed), "method": "put", "headers": {"X-Trace": "a\tb", "Accept": "text/plain"},
               "json": {"a": [1, None, "é"]}}
    assert submit(api, payload).status_code == 201
    assert run(payload)["status"] == 200
    [headers] = allowed.headers("/x")
    assert headers["X-Trace"] == "a\tb" and headers["Accept"] == "text/plain"


# --- 4. secrets live in the dependency, not in payloads ------------------------------------------


def test_the_dependency_sends_its_own_headers(billing):
    run({"path": "/charge", "headers": {"X-Request": "1"}}, "billing")
    [headers] = billing.headers("/api/charge")
    assert headers["Authorization"] == SECRET and headers["X-Request"] == "1"


@pytest.mark.parametrize("name", ["Authorization", "authorization", "AUTHORIZATION"])
def test_a_payload_may_not_set_a_header_its_dependency_sets(api, billing, name):
    message = assert_refused(api, {"path": "/charge", "headers": {name: "Bearer mine"}}, "billing")
    assert "billing" in message and SECRET not in message
    assert billing.hits() == []


def test_a_dependency_header_never_reaches_the_result_or_the_error(billing):
    billing.set("/api/echo", body=f'{{"you_sent": "{SECRET}"}}')
    billing.set("/api/fail", status=503, body=f'{{"you_sent": "{SECRET}"}}')
    result = run({"path": "/echo"}, "billing")
    assert "s3cret" not in str(result) and "you_sent" in result["body"]
    with pytest.raises(DependencyFailure) as failed:
        run({"path": "/fail"}, "billing")
    assert "s3cret" not in str(failed.value)


def test_an_excerpt_that_ends_inside_a_dependency_header_hides_its_start(billing):
    with override_settings(RESILIENT={**billing_settings(billing), "HTTP_RESULT_EXCERPT_BYTES": 20}):
        billing.set("/api/echo", body="x" * 10 + SECRET)
        body = run({"path": "/echo"}, "billing")["body"]
    assert body == "x" * 10 + "[redacted]"


def test_a_path_may_still_hold_semicolons_and_dots_that_are_not_traversal(billing):
    for path in ("v1/items;v=2", "a...;b/c", ".well-known/x", "a/..b/c.."):
        builtin.validate_http({"path": path}, "billing")


# --- 5. a dependency's headers go only under its own base URL -----------------------------------

OFF_BASE_URLS = [
    "http://localhost:{other}/steal",  # another port of an allowlisted host
    "http://localhost:1/api/x",  # a dead port: would trip the dependency's breaker
    "https://localhost:{billing}/api/x",  # another scheme
    "http://localhost:{billing}/admin",  # outside the base path
    "http://localhost:{billing}/apix",
    "http://localhost:{billing}/api",
    "http://localhost:{billing}/api/%2e%2e/admin",
    "http://localhost:{billing}/api/..;/admin",
]


@pytest.mark.parametrize("trick", OFF_BASE_URLS)
def test_a_url_on_a_dependency_with_a_base_url_must_stay_under_it(api, billing, other, trick):
    assert_refused(api, {"url": trick.format(other=other.port, billing=billing.port)}, "billing")
    assert other.hits() == [] and billing.hits() == []


def test_a_url_under_the_base_url_is_called_with_the_dependency_headers(api, billing):
    url = local(billing, "/api/charge?x=1")
    assert submit(api, {"url": url}, "billing").status_code == 201
    run({"url": url}, "billing")
    assert billing.headers("/api/charge")[0]["Authorization"] == SECRET


def test_dependency_headers_are_attached_only_under_the_base_url(billing, other):
    dep = dependencies.get("billing")
    assert http_payload.dependency_headers(http_client.parse(local(billing, "/api/x")), dep) == {"Authorization": SECRET}
    for url in (local(other, "/api/x"), local(billing, "/elsewhere"), local(billing, "/api")):
        assert http_payload.dependency_headers(http_client.parse(url), dep) == {}


@pytest.mark.parametrize(("in_settings", "in_env"), [
    ({"headers": {"Authorization": SECRET}}, None),
    ({"base_url": "http://localhost/api/", "headers": {"Authorization": SECRET}}, {"base_url": ""}),
])
def test_a_dependency_with_headers_needs_a_base_url(monkeypatch, in_settings, in_env):
    if in_env is not None:
        monkeypatch.setenv(dependencies.ENV_DEPENDENCIES, json.dumps({"payments": in_env}))
    with override_settings(RESILIENT={"DEPENDENCIES": {"payments": in_settings}}):
        with pytest.raises(ImproperlyConfigured, match="'payments'.*base_url") as refused:
            dependencies.configured()
    assert "s3cret" not in str(refused.value)


@pytest.mark.parametrize("value", [" Bearer x", "Bearer x ", "\tBearer x"])
def test_a_dependency_header_with_surrounding_whitespace_is_a_configuration_error(value):
    deps = {"payments": {"base_url": "http://localhost/", "headers": {"Authorization": value}}}
    with override_settings(RESILIENT={"DEPENDENCIES": deps}):
        with pytest.raises(ImproperlyConfigured, match="'payments'.*whitespace"):
            dependencies.configured()


# --- 6. a request that cannot be formed is the job's fault ---------------------------------------


def test_a_header_requests_refuses_fails_the_job_without_counting_or_echoing(monkeypatch, allowed):
    # A payload stored before the whitespace rule: the handler must not count it or quote the value.
    bad = http_payload.HttpCall(target=http_client.parse(local(allowed)), method="GET",
                                headers={"X-Token": " s3cret-payload"}, json=None)
    monkeypatch.setattr(http_payload, "http_call", lambda payload, dependency: bad)
    with pytest.raises(PermanentJobFailure) as refused:
        run({"url": local(allowed)})
    assert breakers.classify(refused.value) == breakers.Outcome.NEUTRAL
    assert "s3cret" not in str(refused.value) and allowed.hits() == []


@pytest.mark.parametrize("error", [requests.exceptions.InvalidHeader, requests.exceptions.InvalidURL,
                                   requests.exceptions.InvalidSchema, requests.exceptions.MissingSchema,
                                   requests.exceptions.InvalidJSONError])
def test_every_cannot_form_the_request_error_is_permanent_and_quotes_nothing(monkeypatch, allowed, error):
    def send(*args, **kwargs):
        raise error("value ' s3cret-payload' is bad")

    monkeypatch.setattr(http_client, "send", send)
    with pytest.raises(PermanentJobFailure) as refused:
        run({"url": local(allowed)})
    assert breakers.classify(refused.value) == breakers.Outcome.NEUTRAL
    assert "s3cret" not in str(refused.value) and error.__name__ in str(refused.value)


# --- 7. what stays --------------------------------------------------------------------------------


def test_the_host_header_names_the_allowlisted_host(allowed):
    run({"url": local(allowed)})
    assert allowed.headers("/x")[0]["Host"] == f"localhost:{allowed.port}"


@pytest.mark.django_db(transaction=True)
async def test_what_the_worker_stores_never_holds_a_dependency_header(allowed):
    from asgiref.sync import sync_to_async
    from channels.db import database_sync_to_async

    from jobs import services
    from jobs.models import JobEvent
    from tests.jobs.worker.test_runner import run_until_done

    deps = {"billing": {"base_url": local(allowed, "/api/"), "headers": {"Authorization": SECRET}}}
    fast = {"HTTP_ALLOWED_HOSTS": ["localhost"], "DEPENDENCIES": deps, "POLL_INTERVAL": 0.05}
    allowed.set("/api/echo", body=f'{{"you_sent": "{SECRET}"}}')
    allowed.set("/api/fail", status=503, body=f'{{"you_sent": "{SECRET}"}}')
    with override_settings(RESILIENT=fast):
        submit_job = sync_to_async(services.job_submit)
        jobs = [(await submit_job(kind="http", dependency="billing", payload={"path": p}, max_attempts=1))[0]
                for p in ("echo", "fail")]
        done = await run_until_done(jobs)
    events = await database_sync_to_async(lambda: [str(e.details) for e in JobEvent.objects.all()])()
    assert [j.status for j in done] == ["succeeded", "failed"]
    assert "you_sent" in done[0].result["body"]
    stored = [str(j.result) for j in done] + [j.last_error or "" for j in done] + events
    assert not [text for text in stored if "s3cret" in text]
