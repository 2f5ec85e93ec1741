"""``prune``: delete old finished jobs (with their events) and old breaker events now.

The same retention the workers apply every RESILIENT_PRUNE_INTERVAL (jobs.services.retention),
on demand: ``--dry-run`` says how many rows of each kind would go and deletes nothing.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from jobs import services

OWNER = "manage.py prune"


class Command(BaseCommand):
    help = "Delete finished jobs, their events and breaker events older than their retention."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="count what would be deleted; delete nothing")
        parser.add_argument("--batch", type=int, default=None, help="rows per transaction (RESILIENT_PRUNE_BATCH)")

    def handle(self, *args, dry_run: bool = False, batch: int | None = None, **options):
        if batch is not None and batch < 1:
            raise CommandError("--batch must be at least 1")
        if dry_run:
            self._report(services.prune_count(), "would delete")
            return
        if not services.prune_lease_acquire(owner=OWNER):
            raise CommandError(f"{services.prune_lease_holder() or 'another process'} is pruning now; try again later")
        try:
            pruned = services.prune(batch=batch, owner=OWNER)
        finally:
            services.prune_lease_release(owner=OWNER)
        self._report(pruned, "deleted")

    def _report(self, counts: services.Pruned, verb: str) -> None:
        jobs = ", ".join(f"{n} {status}" for status, n in counts.jobs.items())
        self.stdout.write(
            f"{verb} {sum(counts.jobs.values())} jobs ({jobs}), {counts.job_events} job events, "
            f"{counts.breaker_events} breaker events"
        )
