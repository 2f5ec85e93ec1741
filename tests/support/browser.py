"""Browser tests' helpers: a real ``manage.py serve`` (Daphne + worker) on a free port with its
own SQLite file, a Chromium, signing in, and the REST calls the tests make. The fixtures that
use them are in ``tests/dashboard/conftest.py``; screenshots go to ``test-artifacts/`` at the
repository root."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests.support.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]
PASSWORDS = {"operator": "operator-pass-123", "viewer": "viewer-pass-123", "client": "client-pass-123"}
LIVE = 'body[data-socket="open"][data-snapshots]'

USERS_SCRIPT = """
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
User = get_user_model()
User.objects.create_superuser("operator", password="operator-pass-123")
viewer = User.objects.create_user("viewer", password="viewer-pass-123", is_staff=True)
from django.contrib.auth.models import Permission
viewer.user_permissions.add(Permission.objects.get(codename="view_all_jobs"))
User.objects.create_user("client", password="client-pass-123")
print(Token.objects.create(user=User.objects.get(username="operator")).key)
"""


def chromium_path() -> str:
    path = os.environ.get("RESILIENT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        if os.environ.get("CI"):
            pytest.fail(f"Chromium not found at {path} (CI must install it: apt-get install chromium)")
        pytest.skip(f"Chromium not found at {path}; install Debian's chromium or set RESILIENT_CHROMIUM")
    return path


def serve_dashboard(tmp_path_factory, *, occupy: bool = True, **extra_env: str) -> Iterator[dict]:
    """A real embedded server (Daphne + one worker slot) on a free port with its own SQLite file;
    ``occupy``: four long jobs take the slot first, so the jobs tests submit stay pending;
    ``extra_env``: more settings for the server (``RESILIENT_DEPENDENCIES=...``)."""
    var = tmp_path_factory.mktemp("dashboard-server")
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(
        SECRET_KEY="browser-test-secret-key", DJANGO_SETTINGS_MODULE="resilient.settings", DEBUG="0",
        RESILIENT_VAR_DIR=str(var), RESILIENT_SHUTDOWN_GRACE="1", RESILIENT_POLL_INTERVAL="0.5",
        RESILIENT_WORKER_CONCURRENCY="1",  # a job that blocks the slot keeps the rest queued
        PYTHONUNBUFFERED="1",
        **extra_env,
    )
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], env=env, check=True, cwd=ROOT, timeout=120)
    token = subprocess.run([*manage, "shell", "-c", USERS_SCRIPT], env=env, check=True, cwd=ROOT,
                           capture_output=True, text=True, timeout=60).stdout.strip().splitlines()[-1]
    port = free_port()
    log = open(var / "serve.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([*manage, "serve", "--port", str(port)], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{base}/accounts/login/", timeout=1)
                break
            except requests.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("serve did not start: " + (var / "serve.log").read_text()) from None
                time.sleep(0.2)
        api = requests.Session()
        api.headers["Authorization"] = f"Token {token}"
        # Occupy the only worker slot (and the next ones) so the jobs the tests submit stay pending.
        for _ in range(4 if occupy else 0):
            response = api.post(f"{base}/api/jobs/", json={"kind": "simulate", "priority": 100,
                                                           "payload": {"complexity": 600, "failure_rate": 0}})
            assert response.status_code == 201, response.text
        yield {"base": base, "api": api, "env": env}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@contextmanager
def second_worker(server) -> Iterator[subprocess.Popen]:
    """A ``runworker`` process of its own on the server's database (the server's one slot is taken
    by the blocking simulate jobs); a live cap of 1 on local keeps it off those, so only the
    tests' own jobs on other dependencies reach it. Stopped, and local's cap lifted, on exit."""
    cap_local = server["api"].patch(f"{server['base']}/api/breakers/local/", json={"max_concurrency": 1, "reason": "t"})
    assert cap_local.status_code == 200, cap_local.text
    worker = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "runworker", "jobs"], cwd=ROOT,
                              env={**server["env"], "RESILIENT_POLL_INTERVAL": "0.2"},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield worker
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=20)
        server["api"].patch(f"{server['base']}/api/breakers/local/", json={"reset": True, "reason": "t"})


def launch_browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


DESKTOP = {"width": 1400, "height": 1100}
PHONE = {"width": 390, "height": 844}


def login(browser, server, username="operator", *, viewport=None, **context_options):
    context = browser.new_context(viewport=viewport or DESKTOP, **context_options)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server["base"] + "/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORDS[username])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/dashboard/$"))
    page.wait_for_selector(LIVE)
    page.js_errors = errors
    return page


def submit(server, **body) -> dict:
    response = server["api"].post(server["base"] + "/api/jobs/", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def api_job(server, job_id) -> dict:
    return server["api"].get(f"{server['base']}/api/jobs/{job_id}/").json()


def http_job(server, **body) -> dict:
    # Never called while the test holds the breaker open; cancelled before it could run.
    return submit(server, kind="http", dependency="default", payload={"url": "http://127.0.0.1:9/health"}, **body)
