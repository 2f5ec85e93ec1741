"""Worker liveness: each runner upserts its heartbeat row every poll interval and deletes it on a
clean shutdown. Readiness (``/readyz``) asks whether any worker was seen recently."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from jobs.models import WorkerHeartbeat

# Rows of workers that died without a clean shutdown are pruned after this long.
FORGET_AFTER = timedelta(hours=1)


def worker_heartbeat(
    *, worker_id: str, hostname: str, pid: int, started_at: datetime, now: datetime | None = None
) -> None:
    """Record that ``worker_id`` is alive now; prune rows of long-dead workers."""
    now = now or timezone.now()
    updated = WorkerHeartbeat.objects.filter(worker_id=worker_id).update(last_seen=now)
    if not updated:
        WorkerHeartbeat.objects.update_or_create(
            worker_id=worker_id,
            defaults={"hostname": hostname, "pid": pid, "started_at": started_at, "last_seen": now},
        )
        # Only on a worker's first beat: cheap, and enough to keep the table small.
        WorkerHeartbeat.objects.filter(last_seen__lt=now - FORGET_AFTER).delete()


def worker_forget(*, worker_id: str) -> None:
    """Remove a worker's heartbeat (clean shutdown)."""
    WorkerHeartbeat.objects.filter(worker_id=worker_id).delete()

