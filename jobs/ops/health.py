"""Liveness and readiness.

``/healthz`` answers as long as the process serves HTTP (no database, no channel layer): restart
the process when it fails. ``/readyz`` checks what serving needs — the database reachable and
migrated, the channel layer carrying a message, a worker seen recently — and names each failing
part with a 503: take the node out of rotation, don't restart it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import timedelta

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from jobs import conf, selectors

log = logging.getLogger(__name__)


class CheckFailed(Exception):
    """A readiness check failed; the message says why (and is safe to show)."""


# Once a process has seen the schema fully migrated it stays so (new migrations come with new
# code, hence a new process): skip reloading the migration graph on every probe.
_migrated = False


def check_database() -> str:
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # any driver error means "not reachable"
        raise CheckFailed(f"database unreachable ({type(exc).__name__})") from None
    return "reachable"


def check_migrations() -> str:
    global _migrated
    if _migrated:
        return "migrated"
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        names = ", ".join(f"{m.app_label}.{m.name}" for m, _ in plan[:5])
        raise CheckFailed(f"{len(plan)} unapplied migration(s): {names}")
    _migrated = True
    return "migrated"


async def _roundtrip(timeout: float) -> None:
    layer = get_channel_layer()
    if layer is None:
        raise CheckFailed("no channel layer configured")
    channel = await layer.new_channel("readyz.")
    nonce = uuid.uuid4().hex
    await layer.send(channel, {"type": "readyz.ping", "nonce": nonce})
    message = await asyncio.wait_for(layer.receive(channel), timeout)
    if message.get("nonce") != nonce:
        raise CheckFailed("channel layer returned a foreign message")


def check_channel_layer() -> str:
    timeout = conf.get("READY_CHANNEL_TIMEOUT")
    try:
        async_to_sync(_roundtrip)(timeout)
    except CheckFailed:
        raise
    except TimeoutError:
        raise CheckFailed(f"no message back within {timeout:g}s") from None
    except Exception as exc:
        raise CheckFailed(f"channel layer unreachable ({type(exc).__name__})") from None
    return "message sent and received"


def check_worker() -> str:
    window = conf.get("READY_WORKER_SECONDS")
    seen = selectors.workers_seen_since(since=timezone.now() - timedelta(seconds=window))
    if not seen:
        raise CheckFailed(f"no worker seen in the last {window:g}s")
    return f"{len(seen)} worker(s) seen in the last {window:g}s"


def _run(check: Callable[[], str]) -> dict:
    try:
        return {"ok": True, "detail": check()}
    except CheckFailed as exc:
        return {"ok": False, "detail": str(exc)}
    except DatabaseError as exc:
        # E.g. the worker table of a database not migrated yet: not ready, and say so (never a 500).
        log.warning("readyz: %s check failed", check.__name__, exc_info=True)
        return {"ok": False, "detail": f"query failed ({type(exc).__name__}; see the log)"}


def readiness() -> dict:
    """Every check's outcome; checks that need the database are skipped when it is down."""
    checks = {"database": _run(check_database)}
    db_checks = {"migrations": check_migrations}
    if conf.get("READY_REQUIRE_WORKER"):
        db_checks["worker"] = check_worker
    for name, check in db_checks.items():
        checks[name] = _run(check) if checks["database"]["ok"] else {"ok": False, "detail": "skipped: database unreachable"}
    checks["channel_layer"] = _run(check_channel_layer)
    return {"ready": all(c["ok"] for c in checks.values()), "checks": checks}


@never_cache
@require_GET
def healthz(request):
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request):
    report = readiness()
    return JsonResponse(report, status=200 if report["ready"] else 503)
