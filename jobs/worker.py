"""The job runner: drains the queue in pop order, one claimed job per slot, until told to stop.

It wakes on a channel-layer hint (``wake()``) or every poll interval, whichever comes first, so a
lost message costs at most one poll. Each job holds a lease the runner renews while it runs; on
shutdown the runner stops claiming, lets running jobs finish within the grace period and hands
back the rest.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import socket
import time
import uuid
from typing import Any

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.utils import timezone

from jobs import breakers, conf, logs, queue, workers
from jobs.exceptions import CircuitOpen, JobFailure
from jobs.handlers import registry
from jobs.handlers.registry import JobContext
from jobs.models import Job

log = logging.getLogger("resilient.worker")

_runners: set[JobRunner] = set()


def wake_all() -> None:
    """Wake every runner of this process (called by the ``jobs`` channel consumer)."""
    for runner in list(_runners):
        runner.wake()


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class JobRunner:
    def __init__(
        self,
        *,
        worker_id: str | None = None,
        concurrency: int | None = None,
        poll_interval: float | None = None,
        shutdown_grace: float | None = None,
    ) -> None:
        self.worker_id = worker_id or new_worker_id()
        self.concurrency = concurrency or conf.get("WORKER_CONCURRENCY")
        self.poll_interval = poll_interval if poll_interval is not None else conf.get("POLL_INTERVAL")
        self.shutdown_grace = shutdown_grace if shutdown_grace is not None else conf.get("SHUTDOWN_GRACE")
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._executions: dict[int, asyncio.Task] = {}
        self.hostname = socket.gethostname()
        self.started_at = timezone.now()

    # --- control ---------------------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    def request_stop(self) -> None:
        """Stop claiming; ``run()`` then finishes running jobs within the grace period and returns."""
        if not self._stopping.is_set():
            log.info("worker %s stopping: no new claims, grace %.1fs", self.worker_id, self.shutdown_grace)
        self._stopping.set()
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    # --- main loops ------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until ``request_stop()``; then drain gracefully and return."""
        _runners.add(self)
        log.info("worker %s started (%d slot(s), poll %.2fs)", self.worker_id, self.concurrency, self.poll_interval)
        slots = [asyncio.create_task(self._slot(i)) for i in range(self.concurrency)]
        housekeeping = asyncio.create_task(self._housekeeping())
        try:
            await self._stopping.wait()
            await self._drain(slots)
        finally:
            housekeeping.cancel()
            for task in slots:
                task.cancel()
            await asyncio.gather(housekeeping, *slots, return_exceptions=True)
            _runners.discard(self)
            try:
                await database_sync_to_async(workers.worker_forget)(worker_id=self.worker_id)
            except Exception:
                log.warning("worker %s: could not delete its heartbeat", self.worker_id, exc_info=True)
            log.info("worker %s stopped", self.worker_id)

    async def _drain(self, slots: list[asyncio.Task]) -> None:
        """Slots finish their current job and exit; past the grace period, running jobs are released."""
        _, unfinished = await asyncio.wait(slots, timeout=self.shutdown_grace)
        if unfinished:
            for execution in list(self._executions.values()):
                execution.cancel()  # _execute hands the job back to pending
            await asyncio.wait(unfinished, timeout=10)

    async def _slot(self, index: int) -> None:
        job: Job | None = None  # a job claimed in the same transaction as the last outcome
        while not self.stopping:
            if job is None:
                try:
                    job = await database_sync_to_async(queue.job_claim_next)(worker_id=self.worker_id)
                except Exception:
                    log.exception("worker %s: claim failed; retrying after the poll interval", self.worker_id)
                    job = None
                if job is None:
                    await self._idle()
                    continue
            seq = job.seq
            execution = asyncio.create_task(self._execute(job))
            self._executions[seq] = execution
            try:
                job = await execution
            except Exception:
                # Recording the outcome failed (database gone? a result it refuses?): the job's
                # lease runs out and housekeeping returns it; the slot goes on instead of dying.
                log.exception("worker %s: recording job %s failed; its lease will expire", self.worker_id, seq)
                job = None
                await self._idle()
            finally:
                self._executions.pop(seq, None)
        if job is not None:  # claimed with the last outcome, then told to stop: never started
            admission = breakers.Admission(
                dependency=job.dependency, owner=self.worker_id, trial=getattr(job, "breaker_trial", False),
                job_seq=job.seq,
            )
            await database_sync_to_async(self._release_on_shutdown)(job, admission)

    async def _idle(self) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=self.poll_interval)
        except TimeoutError:
            pass
        self._wake.clear()

    async def _housekeeping(self) -> None:
        """Every poll interval: say this worker is alive, return jobs whose worker died (expired
        lease) to the queue, and lift breaker overrides whose TTL has passed."""
        while True:
            try:
                await database_sync_to_async(workers.worker_heartbeat)(
                    worker_id=self.worker_id, hostname=self.hostname, pid=os.getpid(), started_at=self.started_at
                )
            except Exception:
                log.exception("worker %s: heartbeat failed", self.worker_id)
            try:
                if await database_sync_to_async(queue.jobs_expire_leases)(actor=self.worker_id):
                    self.wake()
            except Exception:
                log.exception("worker %s: lease expiry sweep failed", self.worker_id)
            try:
                if await database_sync_to_async(breakers.breakers_expire_overrides)(actor=self.worker_id):
                    self.wake()
            except Exception:
                log.exception("worker %s: breaker override expiry sweep failed", self.worker_id)
            await asyncio.sleep(self.poll_interval)

    # --- one job ---------------------------------------------------------------------------

    async def _execute(self, job: Job) -> Job | None:
        """Run ``job`` and record its outcome; return the next job if one was claimed with it."""
        try:
            admission = await database_sync_to_async(breakers.breaker_admit)(
                name=job.dependency, owner=self.worker_id, job_seq=job.seq
            )
        except CircuitOpen as exc:
            # Claimed just before its breaker stopped admitting: back to pending, no attempt spent.
            held = {"dependency": exc.dependency, "why": str(exc), "retry_at": exc.retry_at}
            await database_sync_to_async(queue.job_release)(
                job=job, worker_id=self.worker_id, reason=str(exc), held=held, held_since=exc.held_since
            )
            log.info("job %s held: %s", job.short_id, exc)
            return
        except Exception:
            log.exception("job %s: breaker admission failed; handing the job back", job.short_id)
            try:
                await database_sync_to_async(queue.job_release)(
                    job=job, worker_id=self.worker_id, reason="breaker admission failed"
                )
            except Exception:  # the lease will expire and the sweep will return the job
                log.exception("job %s: could not hand the job back", job.short_id)
            await self._idle()
            return
        renewer = asyncio.create_task(self._renew(job, admission))
        started = time.monotonic()
        try:
            result = await self._call_handler(job)
            outcome: BaseException | None = None
        except asyncio.CancelledError:
            renewer.cancel()
            await database_sync_to_async(self._release_on_shutdown)(job, admission)
            log.info("job %s released on shutdown", job.short_id)
            raise
        except Exception as exc:  # noqa: BLE001 - any handler error is an outcome to record
            outcome = exc
        finally:
            renewer.cancel()
        duration = time.monotonic() - started
        return await self._record(job, result if outcome is None else None, outcome, duration, admission)

    def _release_on_shutdown(self, job: Job, admission: breakers.Admission) -> None:
        queue.job_release(job=job, worker_id=self.worker_id, reason="worker shut down before the job finished")
        try:  # a trial cut short gives no verdict: free its lease for the next trial
            breakers.breaker_record(
                name=job.dependency, outcome=breakers.Outcome.NEUTRAL, admission=admission,
                job_id=str(job.uuid), actor=self.worker_id,
            )
        except Exception:
            log.exception("job %s: freeing the breaker trial failed", job.short_id)

    async def _call_handler(self, job: Job) -> Any:
        kind = registry.get(job.kind)
        context = JobContext(job_id=str(job.uuid), kind=job.kind, dependency=job.dependency, attempt=job.attempts + 1)
        if inspect.iscoroutinefunction(kind.run):
            result = await kind.run(job.payload, context)
        else:
            # thread_sensitive=False: handlers must not queue behind the ORM's one sync thread.
            result = await sync_to_async(kind.run, thread_sensitive=False)(job.payload, context)
        json.dumps(result, allow_nan=False)  # a result no database stores fails the attempt here
        return result

    async def _record(
        self, job: Job, result: Any, outcome: BaseException | None, duration: float, admission: breakers.Admission
    ) -> Job | None:
        """Store the outcome; jobs.queue and jobs.breakers log the transitions.

        Returns the next job when it was claimed in the same transaction as this success.
        """
        kept, _, following = await database_sync_to_async(self._finish)(job, result, outcome, duration, admission)
        if not kept:
            logs.job_transition(
                "outcome_discarded", job, attempt=job.attempts + 1, duration=duration, worker=self.worker_id,
                outcome="succeeded" if outcome is None else "failed", reason="lease lost", level=logging.WARNING,
            )
        return following

    def _finish(
        self, job: Job, result: Any, outcome: BaseException | None, duration: float, admission: breakers.Admission
    ) -> tuple[bool, breakers.Outcome, Job | None]:
        """Record the job's outcome, then its dependency's (a slow success counts as a failure there).

        A success while not stopping also claims the next job in the same transaction: one commit
        and one trip to the database thread fewer per job (make bench: drain).
        """
        following = None
        if outcome is None and not self.stopping:
            kept, following = queue.job_succeed_and_claim_next(
                job=job, worker_id=self.worker_id, result=result, duration=round(duration, 6)
            )
        elif outcome is None:
            kept = queue.job_succeed(job=job, worker_id=self.worker_id, result=result, duration=round(duration, 6))
        else:
            retryable = outcome.retryable if isinstance(outcome, JobFailure) else True
            kept = queue.job_fail(
                job=job, worker_id=self.worker_id, error=_error_text(outcome), retryable=retryable,
                retry_after=getattr(outcome, "retry_after", None), duration=round(duration, 6),
            )
        try:
            counted = breakers.breaker_record(
                name=job.dependency, outcome=breakers.classify(outcome), admission=admission,
                duration=duration, error=_error_text(outcome) if outcome else "", job_id=str(job.uuid),
                retry_after=getattr(outcome, "retry_after", None), actor=self.worker_id,
            )
        except Exception:  # the job's outcome is stored; a breaker hiccup must not kill the slot
            log.exception("job %s: recording the breaker outcome failed", job.short_id)
            counted = breakers.Outcome.NEUTRAL
        return kept, counted, following

    async def _renew(self, job: Job, admission: breakers.Admission) -> None:
        interval = max(0.05, conf.get("LEASE_SECONDS") / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                if admission.trial:
                    await database_sync_to_async(breakers.trial_renew)(name=job.dependency, owner=self.worker_id)
                if not await database_sync_to_async(queue.job_renew_lease)(job=job, worker_id=self.worker_id):
                    log.warning("job %s: lease lost; its outcome will be discarded", job.short_id)
                    return
            except Exception:
                log.exception("job %s: lease renewal failed", job.short_id)


def _error_text(outcome: BaseException) -> str:
    return str(outcome) if isinstance(outcome, JobFailure) else f"{type(outcome).__name__}: {outcome}"
