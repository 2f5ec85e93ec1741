"""``serve``: Daphne (HTTP + websockets) and a job worker in ONE process on one event loop.

One loop means the in-memory channel layer carries wake-ups and dashboard updates with no Redis,
and SQLite is the only store. SIGTERM/SIGINT drain the worker, then stop the server.
"""

from __future__ import annotations

import asyncio
import logging

import daphne.server  # noqa: F401  before anything imports twisted.internet.reactor: installs the asyncio reactor
from channels.layers import get_channel_layer
from channels.routing import get_default_application
from django.core.management.base import BaseCommand
from django.db import connection
from twisted.internet import reactor

from jobs.notify import JOBS_CHANNEL
from jobs.worker.service import STOP_SIGNALS, JobsWorker, keep_worker_connections
from resilient import daphne_server

log = logging.getLogger("resilient.serve")


class Command(BaseCommand):
    help = "Serve the API, dashboard and a job worker in one process (the embedded mode)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--workers", type=int, default=None, help="jobs run at once (default: RESILIENT_WORKER_CONCURRENCY or 10)")

    def handle(self, *args, host: str, port: int, workers: int | None, **options):
        if connection.vendor == "sqlite":
            # The embedded shape: a request thread's kept SQLite connection is only a file handle
            # until garbage collection, and the worker's saves a reconnect per call.
            keep_worker_connections()
        application = get_default_application()
        worker = JobsWorker(
            application=application,
            channels=[JOBS_CHANNEL],
            channel_layer=get_channel_layer(),
            concurrency=workers,
            handle_signals=False,
        )

        def stop() -> None:
            if worker.runner.stopping:
                log.warning("second stop signal: stopping now")
                reactor.stop()
                return
            worker.runner.request_stop()

        def ready() -> None:
            loop = asyncio.get_event_loop()
            task = loop.create_task(worker.arun())
            task.add_done_callback(lambda _: reactor.stop())
            for sig in STOP_SIGNALS:
                loop.add_signal_handler(sig, stop)
            base = f"http://{host}:{port}"
            self.stdout.write(
                f"Resilient serving on {base}/ with {worker.runner.concurrency} worker slot(s): "
                f"dashboard {base}/dashboard/, API docs {base}/api/docs/",
                ending="\n",
            )
            self.stdout.flush()

        server = daphne_server.Server(
            application=application,
            endpoints=[f"tcp:port={port}:interface={host}"],
            signal_handlers=False,
            ready_callable=ready,
            verbosity=0,
        )
        server.run()
