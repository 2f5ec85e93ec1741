"""The job runner: drains the queue in pop order, up to ``concurrency`` jobs at once, until told to stop.

One dispatcher owns the database side. Each trip records every attempt that finished since the
last one and claims jobs for the free slots, in one transaction (``outcomes.record_and_claim``):
a busy runner commits once per batch, not twice per job. The claim is the breaker admission (it
reads every breaker in the same transaction), and a claimed job starts at once: the runner never
holds jobs it has no slot for, so other workers see them.

It wakes on a channel-layer hint (``wake()``) or every poll interval, whichever comes first, so a
lost message costs at most one poll. One renewal loop pushes the leases of all running jobs
forward; on shutdown the runner stops claiming, lets running jobs finish within the grace period
and hands back the rest.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django import db
from django.utils import timezone

from jobs import breakers, conf, notify, queue, services
from jobs.handlers import registry
from jobs.handlers.registry import JobContext
from jobs.models import Job
from jobs.worker import heartbeats, outcomes
from jobs.worker.outcomes import Attempt

log = logging.getLogger("resilient.worker")

_runners: set[JobRunner] = set()


def wake_all() -> None:
    """Wake every runner of this process (called by the ``jobs`` channel consumer)."""
    for runner in list(_runners):
        runner.wake()


def new_worker_id() -> str:
    """``host:pid:random``: unique per runner, and says where it runs."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class JobRunner:
    """Runs claimed jobs, up to ``concurrency`` at once, until ``request_stop()``."""

    def __init__(
        self,
        *,
        worker_id: str | None = None,
        concurrency: int | None = None,
        poll_interval: float | None = None,
        shutdown_grace: float | None = None,
    ) -> None:
        self.worker_id = worker_id or new_worker_id()
        self.concurrency = max(1, concurrency or conf.get("WORKER_CONCURRENCY"))
        self.poll_interval = poll_interval if poll_interval is not None else conf.get("POLL_INTERVAL")
        self.shutdown_grace = shutdown_grace if shutdown_grace is not None else conf.get("SHUTDOWN_GRACE")
        self._kick = asyncio.Event()  # an attempt finished, a wake-up came, or stop was requested
        self._woken = True  # look for work (the first pass always does)
        self._wakes = 0  # wake-ups so far: one that arrives during a trip must not be forgotten
        self._next_poll = 0.0  # loop time of the next poll, however often attempts finish
        self._grace_over = False
        self._releases: set[asyncio.Task] = set()  # hand-backs of jobs cancelled before they ran
        self._stopping = asyncio.Event()
        self._running: dict[int, tuple[queue.Claim, asyncio.Task]] = {}
        self._handed_back: set[int] = set()  # seqs whose cancelled attempt already released the job
        self._finished: list[Attempt] = []
        self._hint: asyncio.Task | None = None  # the dashboard hint being sent
        self._hint_again = False  # a trip committed while it was being sent
        # Sync handlers (``requests``) run here, one thread per slot, never on the ORM's thread.
        self._threads = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="job")
        # Pruning runs on its own thread and connection: a prune in progress never waits in line
        # with this runner's trips on the ORM's one thread (and so never holds up its claims).
        self._pruner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prune")
        self._pruning: asyncio.Task | None = None
        self._next_prune = 0.0  # monotonic time this runner next asks for the pruning lease
        self.hostname = socket.gethostname()
        self.started_at = timezone.now()

    # --- control ---------------------------------------------------------------------------

    def wake(self) -> None:
        self._woken = True
        self._wakes += 1
        self._kick.set()

    def request_stop(self) -> None:
        """Stop claiming; ``run()`` then finishes running jobs within the grace period and returns."""
        if not self._stopping.is_set():
            log.info("worker %s stopping: no new claims, grace %.1fs", self.worker_id, self.shutdown_grace)
        self._stopping.set()
        self._kick.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    # --- main loops ------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until ``request_stop()``; then drain gracefully and return."""
        _runners.add(self)
        log.info("worker %s started (%d slot(s), poll %.2fs)", self.worker_id, self.concurrency, self.poll_interval)
        dispatcher = asyncio.create_task(self._dispatch())
        dispatcher.add_done_callback(self._dispatcher_done)
        helpers = [asyncio.create_task(self._housekeeping()), asyncio.create_task(self._renew())]
        try:
            await self._stopping.wait()
            await self._drain(dispatcher)
        finally:
            pruning = [self._pruning] if self._pruning is not None else []
            for task in (dispatcher, *helpers, *pruning):
                task.cancel()
            await asyncio.gather(dispatcher, *helpers, *pruning, return_exceptions=True)
            leftover = [task for _, task in self._running.values()]
            for task in leftover:  # only if the drain itself timed out: they hand their jobs back
                task.cancel()
            await asyncio.gather(*leftover, *self._releases, return_exceptions=True)
            if self._hint is not None:  # the last trip's hint goes out before the worker stops
                await asyncio.gather(self._hint, return_exceptions=True)
            self._threads.shutdown(wait=False, cancel_futures=True)
            self._pruner.shutdown(wait=False, cancel_futures=True)
            _runners.discard(self)
            try:
                await database_sync_to_async(heartbeats.worker_forget)(worker_id=self.worker_id)
            except Exception:
                log.warning("worker %s: could not delete its heartbeat", self.worker_id, exc_info=True)
            log.info("worker %s stopped", self.worker_id)

    async def _drain(self, dispatcher: asyncio.Task) -> None:
        """Running jobs finish and are recorded; past the grace period, the rest are released.

        Past the grace period every running job is cancelled (and handed back), again and again
        until the dispatcher is done: a trip in flight when the grace ran out may still start
        the jobs it claimed."""
        done, _ = await asyncio.wait([dispatcher], timeout=self.shutdown_grace)
        if done:
            return
        self._grace_over = True
        loop = asyncio.get_running_loop()
        give_up = loop.time() + 10
        while not dispatcher.done() and loop.time() < give_up:
            for _, execution in list(self._running.values()):
                execution.cancel()  # _attempt (or _attempt_done) hands the job back to pending
            await asyncio.wait([dispatcher], timeout=0.1)

    def _dispatcher_done(self, dispatcher: asyncio.Task) -> None:
        """A dispatcher that dies would leave a worker that heartbeats but runs nothing: stop."""
        if not dispatcher.cancelled() and dispatcher.exception() is not None:
            log.error("worker %s: dispatcher failed; stopping", self.worker_id, exc_info=dispatcher.exception())
            self.request_stop()

    async def _dispatch(self) -> None:
        """Record finished attempts and fill free slots, one transaction per trip, until stopped
        and every running job is recorded."""
        while True:
            finished, self._finished = self._finished, []
            self._poll_if_due()
            free = 0 if self.stopping or not self._woken else self.concurrency - len(self._running)
            if finished or free:
                wakes = self._wakes
                claimed = await self._trip(finished, free)
                if free and not claimed and self._wakes == wakes:
                    self._woken = False  # the queue had no more for us: wait for a wake-up or the poll
                # A claim cut short is asked again at once: a limit that held it back (a rate
                # limit starts a few calls per claim at most) may admit more now; an empty answer waits.
                for claim in claimed:
                    self._start(claim)
            if self.stopping and not self._running and not self._finished:
                return
            if self._finished or (self._woken and not self.stopping and len(self._running) < self.concurrency):
                continue
            await self._wait()

    async def _wait(self) -> None:
        """Until an attempt finishes, a wake-up comes or stop is requested; or the next poll."""
        timeout = max(0.0, self._next_poll - asyncio.get_running_loop().time())
        try:
            await asyncio.wait_for(self._kick.wait(), timeout=timeout)
        except TimeoutError:
            pass
        self._kick.clear()

    def _poll_if_due(self) -> None:
        """Every poll interval, look for work whatever happened meanwhile: scheduled retries,
        returned leases and lost wake-ups are found this way (a steady stream of finishing
        attempts does not postpone it)."""
        now = asyncio.get_running_loop().time()
        if now >= self._next_poll:
            self._woken = True
            self._next_poll = now + self.poll_interval

    async def _trip(self, finished: list[Attempt], free: int) -> list[queue.Claim]:
        """One transaction: record ``finished``, claim up to ``free`` jobs. Never raises."""
        try:
            claimed, hinted = await database_sync_to_async(self._record_and_claim)(finished, free)
            if hinted:
                self._hint_dashboards()
            return claimed
        except Exception:
            log.exception("worker %s: recording %d outcome(s) and claiming failed; recording one by one",
                          self.worker_id, len(finished))
        if finished:
            try:
                await database_sync_to_async(outcomes.record_each)(worker_id=self.worker_id, finished=finished)
            except Exception:  # the database is gone: the leases expire and the sweep returns the jobs
                log.exception("worker %s: recording outcomes failed", self.worker_id)
        self._woken = False  # back off until the next poll
        return []

    def _record_and_claim(self, finished: list[Attempt], free: int) -> tuple[list[queue.Claim], bool]:
        with notify.dashboard_hints_collected() as hints:
            _, claimed = outcomes.record_and_claim(worker_id=self.worker_id, finished=finished, want=free)
        return claimed, bool(hints)

    def _hint_dashboards(self) -> None:
        """Tell dashboards jobs changed, from the loop: the database thread never waits for it.
        Hints coalesce: while one is being sent, later trips only ask for one more after it."""
        if self._hint is None or self._hint.done():
            self._hint = asyncio.create_task(self._send_hints())
        else:
            self._hint_again = True

    async def _send_hints(self) -> None:
        while True:
            self._hint_again = False
            await notify.asend_dashboard_changed()
            if not self._hint_again:
                return

    def _start(self, claim: queue.Claim) -> None:
        execution = asyncio.create_task(self._attempt(claim))
        execution.add_done_callback(lambda task, claim=claim: self._attempt_done(claim, task))
        self._running[claim.job.seq] = (claim, execution)
        if self._grace_over:  # claimed by a trip that was in flight when the grace ran out
            execution.cancel()

    def _attempt_done(self, claim: queue.Claim, execution: asyncio.Task) -> None:
        self._running.pop(claim.job.seq, None)
        self._kick.set()
        handed_back = claim.job.seq in self._handed_back
        self._handed_back.discard(claim.job.seq)
        if execution.cancelled() and not handed_back:
            # Cancelled before its first step: _attempt never ran, so hand the job back here.
            release = asyncio.create_task(database_sync_to_async(self._release_on_shutdown)(claim))
            self._releases.add(release)
            release.add_done_callback(self._releases.discard)

    async def _housekeeping(self) -> None:
        """Every poll interval: say this worker is alive, return jobs whose worker died (expired
        lease) to the queue, and lift breaker overrides whose TTL has passed."""
        while True:
            try:
                await database_sync_to_async(heartbeats.worker_heartbeat)(
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
            # Each runner asks for the pruning lease once per interval; the first that finds it
            # due prunes for everyone.
            if (self._pruning is None or self._pruning.done()) and time.monotonic() >= self._next_prune:
                self._next_prune = time.monotonic() + conf.get("PRUNE_INTERVAL")
                self._pruning = asyncio.create_task(self._prune())
            await asyncio.sleep(self.poll_interval)

    async def _prune(self) -> None:
        """Retention, if due (jobs.services.retention: one worker at a time, once per interval)."""
        try:
            due = await database_sync_to_async(services.prune_lease_acquire)(
                owner=self.worker_id, due_after=conf.get("PRUNE_INTERVAL")
            )
            if not due:
                return
            try:
                await database_sync_to_async(self._prune_now, thread_sensitive=False, executor=self._pruner)()
            finally:
                await database_sync_to_async(services.prune_lease_release)(owner=self.worker_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("worker %s: pruning failed", self.worker_id)

    def _prune_now(self) -> None:
        """On the pruning thread: prune, then close its connection (one is open only while pruning)."""
        try:
            services.prune(owner=self.worker_id, stop=self._stopping.is_set)
        finally:
            db.connection.close()

    async def _renew(self) -> None:
        """Every third of the lease: push forward the leases of every job this runner holds (one
        UPDATE), and of the half-open trials among them."""
        interval = max(0.05, conf.get("LEASE_SECONDS") / 3)
        warned: set[int] = set()
        while True:
            await asyncio.sleep(interval)
            held = {seq: (claim.job, claim.trial) for seq, (claim, _) in self._running.items()}
            held.update({a.job.seq: (a.job, a.trial) for a in self._finished})  # finished, not yet recorded
            try:
                lost = await database_sync_to_async(queue.jobs_renew_leases)(seqs=list(held), worker_id=self.worker_id)
                for job, trial in held.values():
                    if trial:
                        await database_sync_to_async(breakers.trial_renew)(name=job.dependency, owner=self.worker_id)
            except Exception:
                log.exception("worker %s: lease renewal failed", self.worker_id)
                continue
            for seq in lost - warned:
                log.warning("job %s: lease lost; its outcome will be discarded", held[seq][0].short_id)
            warned = (warned | lost) & set(held)

    # --- one job ---------------------------------------------------------------------------

    async def _attempt(self, claim: queue.Claim) -> None:
        """Run the claimed job's handler and queue its outcome for the dispatcher to record."""
        job = claim.job
        started = time.monotonic()
        try:
            result, error = await self._call_handler(job), None
        except asyncio.CancelledError:
            self._handed_back.add(job.seq)
            await database_sync_to_async(self._release_on_shutdown)(claim)
            raise
        except Exception as exc:  # noqa: BLE001 - any handler error is an outcome to record
            result, error = None, exc
        self._running.pop(job.seq, None)  # before the outcome is queued: its slot is free for the trip
        self._finished.append(
            Attempt(job=job, result=result, error=error, duration=time.monotonic() - started, trial=claim.trial)
        )

    def _release_on_shutdown(self, claim: queue.Claim) -> None:
        job = claim.job
        queue.job_release(job=job, worker_id=self.worker_id, reason="worker shut down before the job finished")
        log.info("job %s released on shutdown", job.short_id)
        if not claim.trial:
            return
        try:  # a trial cut short gives no verdict: free its lease for the next trial
            admission = breakers.Admission(dependency=job.dependency, owner=self.worker_id, trial=True, job_seq=job.seq)
            breakers.breaker_record(
                name=job.dependency, outcome=breakers.Outcome.NEUTRAL, admission=admission,
                job_id=str(job.uuid), actor=self.worker_id,
            )
        except Exception:
            log.exception("job %s: freeing the breaker trial failed", job.short_id)

    async def _call_handler(self, job: Job) -> Any:
        kind = registry.get(job.kind)
        context = JobContext(job_id=str(job.uuid), kind=job.kind, dependency=job.dependency, attempt=job.attempts + 1)
        if kind.is_async:
            result = await kind.run(job.payload, context)
        else:
            result = await sync_to_async(kind.run, thread_sensitive=False, executor=self._threads)(job.payload, context)
        json.dumps(result, allow_nan=False)  # a result no database stores fails the attempt here
        return result
