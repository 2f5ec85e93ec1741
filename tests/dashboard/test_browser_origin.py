"""Cross-site websocket hijacking, in a real Chromium against a real ``serve``: a page on another
port of the same host opens the operator socket with the operator's cookie and is refused."""

from __future__ import annotations

import http.server
import re
import threading
from collections.abc import Iterator

import pytest
import requests
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from jobs.models import Breaker, BreakerEvent
from tests.support.browser import CHROMIUM_ARGS, LIVE, chromium_path
from tests.support.processes import free_port, start_serve

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# Opens the socket to the dashboard's origin and, if it opens, forces the default breaker open.
ATTACK = """<!doctype html><title>cat pictures</title><script>
const ws = new WebSocket('ws://127.0.0.1:%(port)d/ws/dashboard/');
ws.onopen = () => {
  document.body.dataset.opened = '1';
  ws.send(JSON.stringify({action: 'breaker_force_open', name: 'default', reason: 'pwned'}));
};
ws.onmessage = (event) => {
  document.body.dataset.messages = (document.body.dataset.messages || '') + event.data;
  if (['result', 'error'].includes(JSON.parse(event.data).type)) document.body.dataset.replied = '1';
};
ws.onclose = (event) => { document.body.dataset.closed = String(event.code); };
</script><body></body>"""


def serve_page(html: str) -> tuple[http.server.ThreadingHTTPServer, int]:
    """A plain http.server on 127.0.0.1 serving ``html`` at every path (the attacker's site)."""

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


@pytest.fixture
def site(tmp_path) -> Iterator[dict]:
    operator = get_user_model().objects.create_superuser("operator", password="operator-pass-123")
    token = Token.objects.create(user=operator).key
    port = free_port()
    proc = start_serve(tmp_path, port)
    try:
        yield {"base": f"http://127.0.0.1:{port}", "port": port, "token": token, "log": proc.output}
    finally:
        proc.stop()


def attack(site: dict) -> dict:
    """Sign the operator in to ``site`` in Chromium, then open the attacker's page in the same
    browser; what the attacker's socket saw."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        context = chromium.new_context()
        page = context.new_page()
        page.goto(site["base"] + "/accounts/login/?next=/dashboard/")
        page.get_by_label("Username").fill("operator")
        page.get_by_label("Password").fill("operator-pass-123")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(re.compile(r"/dashboard/$"))
        page.wait_for_selector(LIVE)  # the operator's own page does get a socket
        assert any(c["name"] == "sessionid" for c in context.cookies())

        attacker, attacker_port = serve_page(ATTACK % {"port": site["port"]})
        try:
            evil = context.new_page()
            evil.goto(f"http://127.0.0.1:{attacker_port}/")
            evil.wait_for_selector("body[data-closed], body[data-replied]", state="attached", timeout=10_000)
            seen = evil.evaluate("({...document.body.dataset})")
        finally:
            attacker.shutdown()
            attacker.server_close()
        chromium.close()
    return {**seen, "attacker_port": attacker_port}


def test_a_page_on_another_port_cannot_use_the_operators_socket(site):
    seen = attack(site)
    assert "opened" not in seen and "messages" not in seen, seen
    assert seen["closed"] == "1006"  # the handshake was refused
    breaker = requests.get(f"{site['base']}/api/breakers/default/",
                           headers={"Authorization": f"Token {site['token']}"}, timeout=5).json()
    assert (breaker["state"], breaker["override"]) == ("closed", None), breaker
    assert Breaker.objects.get(name="default").override == ""
    assert not BreakerEvent.objects.exists()
    assert f"origin 'http://127.0.0.1:{seen['attacker_port']}'" in site["log"]()
