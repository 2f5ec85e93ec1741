"""The breaker card says why a dependency's adaptive limit last changed, in a real Chromium against
a real server whose ``billing`` dependency has adaptive concurrency, with a real worker process
calling a real HTTP stub on 127.0.0.1."""

from __future__ import annotations

import json

import pytest

from tests.support import browser as browser_support
from tests.support.browser import api_job, login, second_worker, submit

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DEPENDENCIES = {"billing": {"concurrency": {"mode": "adaptive", "min": 1, "max": 16}}}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from browser_support.serve_dashboard(tmp_path_factory, RESILIENT_DEPENDENCIES=json.dumps(DEPENDENCIES))


def test_the_card_shows_the_adaptive_limits_last_change_and_its_cause(browser, server):
    from playwright.sync_api import expect

    from tests.support.downstream import Downstream
    from tests.support.processes import wait_until

    page = login(browser, server)
    card = page.locator('article[data-breaker="billing"]')
    expect(card.locator(".breaker-stats")).to_contain_text("Adaptive")
    expect(card.locator(".adaptive-change")).to_have_count(0)  # no change yet
    with second_worker(server), Downstream() as stub:  # the server's one slot is taken
        stub.set("/busy", status=503)
        ok = submit(server, kind="http", dependency="billing", payload={"url": stub.url("/ok")}, max_attempts=1)
        wait_until(lambda: api_job(server, ok["id"])["status"] == "succeeded", timeout=30,
                   message=lambda: str(api_job(server, ok["id"])))
        expect(card.locator(".adaptive-change")).to_contain_text("1 → 2: healthy round")
        busy = submit(server, kind="http", dependency="billing", payload={"url": stub.url("/busy")},
                      max_attempts=1)
        wait_until(lambda: api_job(server, busy["id"])["status"] == "failed", timeout=30,
                   message=lambda: str(api_job(server, busy["id"])))
        expect(card.locator(".adaptive-change")).to_contain_text("2 → 1: 503 from downstream")
        expect(card.locator(".breaker-stats")).to_contain_text("1 (1–16)")
    change = server["api"].get(f"{server['base']}/api/breakers/billing/").json()["flow"]["adaptive_change"]
    assert (change["from"], change["to"], change["cause"]) == (2, 1, "503 from downstream")
    assert card.locator("dd:has(.adaptive-change) time").get_attribute("datetime") == change["at"]
    assert not page.js_errors
