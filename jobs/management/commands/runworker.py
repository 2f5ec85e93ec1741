"""``runworker jobs``: channels' runworker with our worker, which runs jobs and drains on SIGTERM."""

from channels.management.commands import runworker

from jobs.worker.service import JobsWorker, keep_worker_connections


class Command(runworker.Command):
    help = "Run a worker: listens on the given channels (use `jobs`) and runs jobs in pop order."
    worker_class = JobsWorker

    def handle(self, *args, **options):
        keep_worker_connections()  # a worker-only process: nothing but the worker uses them
        return super().handle(*args, **options)
