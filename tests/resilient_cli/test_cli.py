"""The ``resilient`` command end to end: the installed console script against a real ``serve``."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from jobs.models import Job, JobStatus
from tests.support.processes import free_port, start_serve

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

SCRIPT = Path(sys.executable).parent / "resilient"


@pytest.fixture
def site(tmp_path) -> Iterator[tuple[str, str, str]]:
    """A running ``serve``, a user's token and an operator's token."""
    users = get_user_model().objects
    token = Token.objects.create(user=users.create_user("cli-user", password="cli-user-pass-1")).key
    admin = Token.objects.create(user=users.create_superuser("cli-admin", password="cli-admin-pass-1")).key
    port = free_port()
    proc = start_serve(tmp_path, port, RESILIENT_POLL_INTERVAL="0.2")
    try:
        yield f"http://127.0.0.1:{port}", token, admin
    finally:
        assert proc.stop() == 0


def cli(site, *args: str, token: str | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    url, user_token, _ = site
    env = {"PATH": "/usr/bin:/bin", "RESILIENT_URL": url, "RESILIENT_TOKEN": token or user_token}
    return subprocess.run([str(SCRIPT), *args], input=stdin, capture_output=True, text=True, env=env, timeout=120)


def test_the_console_script_is_installed_and_its_help_teaches():
    assert SCRIPT.exists(), "pip install -e . installs the resilient console script"
    out = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    for word in ("RESILIENT_URL", "RESILIENT_TOKEN", "submit", "force-open", "examples:", "resumable"):
        assert word in out.stdout
    sub = subprocess.run([str(SCRIPT), "submit", "--help"], capture_output=True, text=True, timeout=30)
    assert "--run-after" in sub.stdout and "--file" in sub.stdout and "JSON Lines" in sub.stdout


def test_submit_show_list_cancel_retry(site):
    out = cli(site, "--json", "submit", "noop", "--priority", "3", "--delay", "600", "--key", "k1")
    assert out.returncode == 0, out.stderr
    job = json.loads(out.stdout)
    assert job["priority"] == 3 and job["status"] == "pending"
    again = cli(site, "submit", "noop", "--priority", "3", "--delay", "600", "--key", "k1")
    assert again.returncode == 0 and "already stored" in again.stdout and job["id"] in again.stdout

    shown = cli(site, "show", job["id"])
    assert shown.returncode == 0, shown.stderr
    assert "scheduled for" in shown.stdout and "timeline:" in shown.stdout and "submitted" in shown.stdout

    listed = cli(site, "--json", "list", "--status", "pending")
    assert [row["id"] for row in json.loads(listed.stdout)] == [job["id"]]
    table = cli(site, "list")
    assert table.stdout.splitlines()[0].split()[:3] == ["ID", "KIND", "DEPENDENCY"]
    assert job["id"][:8] in table.stdout

    cancelled = cli(site, "cancel", job["id"])
    assert cancelled.returncode == 0 and "cancelled" in cancelled.stdout
    refused = cli(site, "cancel", job["id"])
    assert refused.returncode == 1 and "409" in refused.stderr and "cancelled" in refused.stderr
    retried = cli(site, "--json", "retry", job["id"], token=site[2])
    assert retried.returncode == 0, retried.stderr
    assert json.loads(retried.stdout)["status"] == "pending"


def test_errors_print_the_servers_message_and_exit_non_zero(site):
    bad = cli(site, "submit", "nope")
    assert bad.returncode == 1 and "400" in bad.stderr and "unknown job kind 'nope'" in bad.stderr
    naive = cli(site, "submit", "noop", "--run-after", "2030-01-01T00:00:00")
    assert naive.returncode == 1 and "run_after" in naive.stderr and "time zone" in naive.stderr
    missing = cli(site, "show", "00000000-0000-0000-0000-000000000000")
    assert missing.returncode == 1 and "404" in missing.stderr
    anonymous = cli(site, "list", token="wrong-token")
    assert anonymous.returncode == 1 and "401" in anonymous.stderr
    usage = cli(site, "submit")
    assert usage.returncode == 2 and "KIND" in usage.stderr
    not_allowed = cli(site, "force-open", "default")
    assert not_allowed.returncode == 1 and "403" in not_allowed.stderr
    assert not Job.objects.exists()


def test_breakers_and_overrides(site):
    listed = cli(site, "--json", "breakers")
    assert {"default", "local"} <= {row["name"] for row in json.loads(listed.stdout)}
    opened = cli(site, "force-open", "default", "--reason", "db upgrade", "--ttl", "600", token=site[2])
    assert opened.returncode == 0, opened.stderr
    assert "default is open (forced open: db upgrade)" in opened.stdout
    table = cli(site, "breakers")
    assert "forced open until" in table.stdout
    closed = cli(site, "--json", "force-closed", "default", token=site[2])
    assert json.loads(closed.stdout)["override"]["state"] == "closed"
    released = cli(site, "release", "default", token=site[2])
    assert released.returncode == 0 and "default is closed" in released.stdout
    detail = cli(site, "breakers", "default")
    history = detail.stdout.split("history:")[1]
    assert [line.split()[1] for line in history.strip().splitlines()][:3] == ["released", "forced_closed", "forced_open"]
    assert "db upgrade" in history


def test_a_file_loads_in_batches_with_progress_and_resumes(site, tmp_path):
    lines = [json.dumps({"kind": "noop", "payload": {"n": n}, "delay_seconds": 600}) for n in range(1200)]
    path = tmp_path / "jobs.jsonl"
    path.write_text("\n".join(lines[:700]) + "\n")
    first = cli(site, "submit", "--file", str(path), "--batch-size", "250")
    assert first.returncode == 0, first.stderr
    assert "700 jobs sent: 700 new" in first.stdout
    assert "700/700 jobs" in first.stderr and "[" in first.stderr  # the progress bar
    # The full file again: the first 700 lines are already stored, the rest is new.
    path.write_text("\n".join(lines) + "\n")
    second = cli(site, "--json", "submit", "--file", str(path), "--batch-size", "500", "--quiet")
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout) | {"seconds": 0, "jobs_per_second": 0} == {
        "sent": 1200, "created": 500, "existing": 700, "seconds": 0, "jobs_per_second": 0}
    assert second.stderr == ""
    ns = list(Job.objects.order_by("seq").values_list("payload__n", flat=True))
    assert ns == list(range(1200))  # in file order, nothing twice


def test_a_bad_line_stops_the_load_naming_the_line(site, tmp_path):
    good = [json.dumps({"kind": "noop", "delay_seconds": 600}) for _ in range(5)]
    path = tmp_path / "jobs.jsonl"
    path.write_text("\n".join([*good, json.dumps({"kind": "nope"}), *good]) + "\n")
    out = cli(site, "submit", "--file", str(path), "--batch-size", "4", "--quiet")
    assert out.returncode == 1
    assert "line 6: kind: unknown job kind 'nope'" in out.stderr and "4 jobs before it were stored" in out.stderr
    assert Job.objects.count() == 4  # the first batch; the refused one stored nothing
    path.write_text("not json\n")
    broken = cli(site, "submit", "--file", str(path))
    assert broken.returncode == 1 and "line 1: not JSON" in broken.stderr


def test_stdin_loads_too(site):
    data = "\n".join(json.dumps({"kind": "noop", "delay_seconds": 600}) for _ in range(30)) + "\n"
    out = cli(site, "submit", "--file", "-", "--batch-size", "7", "--key-prefix", "stdin-run", stdin=data)
    assert out.returncode == 0, out.stderr
    assert "30 jobs sent: 30 new" in out.stdout
    assert Job.objects.filter(status=JobStatus.PENDING).count() == 30
