"""/healthz answers without the database; /readyz names every part that is not ready."""

from __future__ import annotations

import asyncio
import json
import socket
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.db.migrations.recorder import MigrationRecorder
from django.test import override_settings
from django.utils import timezone

from jobs.models import WorkerHeartbeat
from jobs.ops import health
from jobs.worker import JobRunner, heartbeats
from tests.support import processes


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def forget_migrated_flag():
    health._migrated = False
    yield
    health._migrated = False


def beat(worker_id: str = "w1", *, ago: float = 0) -> None:
    now = timezone.now() - timedelta(seconds=ago)
    heartbeats.worker_heartbeat(worker_id=worker_id, hostname="h", pid=1, started_at=now, now=now)


def test_healthz_answers_without_touching_the_database(client):
    # No django_db mark: any query here would raise.
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Cache-Control"].startswith("max-age=0")


@pytest.mark.django_db
def test_readyz_is_503_and_names_the_missing_worker(client):
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["ready"] is False
    assert body["checks"]["worker"] == {"ok": False, "detail": "no worker seen in the last 60s"}
    assert all(body["checks"][name]["ok"] for name in ("database", "migrations", "channel_layer"))


@pytest.mark.django_db
def test_readyz_is_200_with_a_recent_worker(client):
    beat()
    response = client.get("/readyz")
    assert response.status_code == 200, response.json()
    assert response.json()["ready"] is True
    assert response.json()["checks"]["worker"]["detail"] == "1 worker(s) seen in the last 60s"


@pytest.mark.django_db
def test_a_stale_heartbeat_is_not_a_live_worker(client):
    beat(ago=61)
    assert client.get("/readyz").json()["checks"]["worker"]["ok"] is False
    with override_settings(RESILIENT={"READY_WORKER_SECONDS": 120}):
        assert client.get("/readyz").status_code == 200


@pytest.mark.django_db
def test_the_worker_check_can_be_turned_off_for_web_only_nodes(client):
    with override_settings(RESILIENT={"READY_REQUIRE_WORKER": "0"}):
        response = client.get("/readyz")
    assert response.status_code == 200
    assert "worker" not in response.json()["checks"]


@pytest.mark.django_db
def test_readyz_reports_unapplied_migrations(client):
    beat()
    latest = MigrationRecorder.Migration.objects.filter(app="jobs").order_by("-name").first().name
    MigrationRecorder.Migration.objects.filter(app="jobs", name=latest).delete()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["migrations"] == {
        "ok": False,
        "detail": f"1 unapplied migration(s): jobs.{latest}",
    }


@pytest.mark.django_db
def test_heartbeat_upserts_one_row_and_prunes_long_dead_workers():
    beat("dead", ago=2 * 3600)
    beat("w1")
    beat("w1")
    assert list(WorkerHeartbeat.objects.values_list("worker_id", flat=True)) == ["w1"]
    heartbeats.worker_forget(worker_id="w1")
    assert not WorkerHeartbeat.objects.exists()


def _heartbeat_row(worker_id: str) -> WorkerHeartbeat | None:
    return WorkerHeartbeat.objects.filter(worker_id=worker_id).first()


@pytest.mark.django_db(transaction=True)
async def test_a_running_worker_beats_and_forgets_itself_on_clean_shutdown():
    # database_sync_to_async closes its connection afterwards (no session left for teardown).
    row_of = database_sync_to_async(_heartbeat_row)
    runner = JobRunner(worker_id="beating-worker", poll_interval=0.05, shutdown_grace=1)
    task = asyncio.create_task(runner.run())
    try:
        for _ in range(100):
            if (first := await row_of("beating-worker")) is not None:
                break
            await asyncio.sleep(0.05)
        assert first is not None and first.hostname == socket.gethostname()
        await asyncio.sleep(0.3)
        assert (await row_of("beating-worker")).last_seen > first.last_seen
    finally:
        runner.request_stop()
        await asyncio.wait_for(task, 10)
    assert await row_of("beating-worker") is None


READYZ = """
from django.test import Client
response = Client(HTTP_HOST="localhost").get("/readyz")
print(response.status_code)
print(response.content.decode())
"""


def readyz_in_a_process(database_url: str) -> tuple[str, dict]:
    """/readyz answered by a fresh process on ``database_url`` (no Redis): (status, report)."""
    env = processes.subprocess_env(DATABASE_URL=database_url, LOG_LEVEL="CRITICAL")
    env.pop("REDIS_URL", None)
    done = processes.run_python(READYZ, environ=env)
    assert done.returncode == 0, done.stderr
    status, body = done.stdout.splitlines()[-2:]
    return status, json.loads(body)


def test_readyz_names_the_database_when_it_is_down():
    status, report = readyz_in_a_process(f"postgres://postgres@127.0.0.1:{closed_port()}/resilient")
    assert status == "503"
    assert report["ready"] is False
    assert report["checks"]["database"] == {"ok": False, "detail": "database unreachable (OperationalError)"}
    assert report["checks"]["migrations"] == {"ok": False, "detail": "skipped: database unreachable"}
    assert report["checks"]["worker"]["ok"] is False
    assert report["checks"]["channel_layer"]["ok"] is True


def test_readyz_on_a_database_never_migrated_is_503_not_500(tmp_path):
    """The worker table does not exist yet: the worker check fails with a message, no 500."""
    status, report = readyz_in_a_process(f"sqlite:///{tmp_path / 'fresh.sqlite3'}")
    assert status == "503"
    assert report["checks"]["database"]["ok"] is True
    assert report["checks"]["migrations"]["ok"] is False
    assert "unapplied migration(s)" in report["checks"]["migrations"]["detail"]
    assert report["checks"]["worker"] == {"ok": False, "detail": "query failed (OperationalError; see the log)"}


@pytest.mark.django_db(transaction=True)
def test_readyz_names_the_channel_layer_when_redis_is_down():
    beat()
    port = closed_port()
    env = processes.subprocess_env(REDIS_URL=f"redis://127.0.0.1:{port}/0", LOG_LEVEL="CRITICAL")
    done = processes.run_python(READYZ, environ=env)
    assert done.returncode == 0, done.stderr
    status, body = done.stdout.splitlines()[-2:]
    report = json.loads(body)
    assert status == "503"
    assert report["checks"]["channel_layer"]["ok"] is False
    assert report["checks"]["channel_layer"]["detail"].startswith("channel layer unreachable")
    assert all(report["checks"][name]["ok"] for name in ("database", "migrations", "worker"))
