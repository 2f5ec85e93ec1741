"""Every response carries a Content-Security-Policy and the cheap security headers; the pages
need no inline script or style, so a strict policy costs them nothing (checked in Chromium)."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from tests.support.processes import free_port, start_serve

pytestmark = pytest.mark.django_db

EXPECTED_POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "connect-src": "'self'",
    "frame-ancestors": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "object-src": "'none'",
}
PAGES = [
    "/accounts/login/",
    "/dashboard/",
    "/admin/",
    "/admin/jobs/job/",
    "/api/jobs/",
    "/api/docs/",
    "/api/docs/?script=",
    "/api/schema/",
    "/jobs",
    "/healthz",
    "/readyz",
    "/metrics",
    "/static/dashboard/main.js",
    "/no-such-page/",
    "/api/no-such-endpoint/",
]
INLINE = [
    re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.I),
    re.compile(r"<style\b", re.I),
    re.compile(r"\sstyle=", re.I),
    re.compile(r"\son[a-z]+=", re.I),
    re.compile(r"javascript:", re.I),
]


def directives(header: str) -> dict[str, str]:
    parts = (part.strip().split(None, 1) for part in header.split(";") if part.strip())
    return {part[0]: part[1] if len(part) > 1 else "" for part in parts}


@pytest.fixture
def staff_client(client, operator):
    client.force_login(operator)
    return client


@pytest.mark.parametrize("path", PAGES)
def test_every_response_carries_the_policy_and_headers(staff_client, path):
    response = staff_client.get(path)
    response.close()  # a static file is a FileResponse: close its file
    assert response.status_code != 500, path  # /readyz may be 503: no worker in this test
    assert directives(response["Content-Security-Policy"]) == EXPECTED_POLICY, path
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    if not path.startswith("/static/"):  # WhiteNoise answers before the X-Frame-Options middleware
        assert response["X-Frame-Options"] == "DENY"


def test_anonymous_and_error_responses_carry_it_too(client):
    for path in ["/dashboard/", "/api/jobs/", "/admin/jobs/job/?q=%00"]:
        response = client.get(path)
        assert "Content-Security-Policy" in response, path


def test_the_browsable_api_may_use_its_inline_styles_and_nothing_else(staff_client):
    response = staff_client.get("/api/jobs/", HTTP_ACCEPT="text/html")
    assert response["Content-Type"].startswith("text/html")
    policy = directives(response["Content-Security-Policy"])
    assert policy["style-src"] == "'self' 'unsafe-inline'"  # DRF's template has style= attributes
    assert policy["script-src"] == "'self'"


@pytest.mark.parametrize(
    "path", ["/accounts/login/", "/dashboard/", "/api/docs/", "/admin/", "/admin/jobs/job/"]
)
def test_our_pages_have_no_inline_script_or_style(staff_client, path):
    html = staff_client.get(path).content.decode()
    for pattern in INLINE:
        assert not pattern.search(html), (path, pattern.pattern, pattern.search(html))


async def test_the_early_413_carries_the_headers_too():
    from tests.resilient.test_body_limit import http_scope, never_receive, run_asgi

    sent = await run_asgi(
        http_scope("/api/jobs/", [(b"content-length", b"999999999")]), never_receive
    )
    headers = dict(sent[0]["headers"])
    assert directives(headers[b"content-security-policy"].decode()) == EXPECTED_POLICY
    assert headers[b"x-content-type-options"] == b"nosniff"


def test_the_policy_is_one_string_with_every_directive():
    from resilient import security_headers

    assert directives(security_headers.policy()) == EXPECTED_POLICY


# --- in a real browser ------------------------------------------------------------------------

WATCH_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', e =>
  window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
"""


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_pages_load_in_chromium_with_no_violation_and_the_socket_opens(tmp_path):
    from playwright.sync_api import sync_playwright

    from tests.support.browser import CHROMIUM_ARGS, LIVE, chromium_path

    path = chromium_path()
    user = get_user_model().objects.create_superuser("csp-operator", password="csp-pass-123456")
    Token.objects.create(user=user)
    port = free_port()
    server = start_serve(tmp_path, port, RESILIENT_POLL_INTERVAL="30")
    base = f"http://127.0.0.1:{port}"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
            try:
                page = chromium.new_context().new_page()
                console: list[str] = []
                page.on("console", lambda m: console.append(m.text))
                page.on("pageerror", lambda exc: console.append(str(exc)))
                page.add_init_script(WATCH_VIOLATIONS)
                page.goto(base + "/accounts/login/")
                page.get_by_label("Username").fill("csp-operator")
                page.get_by_label("Password").fill("csp-pass-123456")
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_url(re.compile(r"/dashboard/$"))
                page.wait_for_selector(LIVE)  # the websocket opened under connect-src 'self'
                seen = {"/dashboard/": page.evaluate("window.__cspViolations")}
                for url in ["/admin/", "/admin/jobs/job/?status=all", "/api/jobs/", "/api/docs/"]:
                    page.goto(base + url)
                    page.wait_for_load_state("networkidle")
                    seen[url] = page.evaluate("window.__cspViolations")
                page.wait_for_selector("#swagger-ui .information-container")  # Swagger UI ran
                assert all(not found for found in seen.values()), seen
                assert not [line for line in console if "Content Security Policy" in line], console
            finally:
                chromium.close()
    finally:
        assert server.stop() == 0


def test_the_swagger_init_script_is_served_as_javascript(staff_client):
    response = staff_client.get("/api/docs/?script=")
    assert response["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle" in response.content.decode()
    json.dumps(response["Content-Security-Policy"])
