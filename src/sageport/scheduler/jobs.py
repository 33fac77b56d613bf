"""A job's life, in one place: queue → stage → run → upload → end.

:class:`JobRunner` is driven by the scheduler loop: ``tick()`` looks at every job that is not
finished, in creation order, and takes the next step of each from its stored status. Read
top to bottom, this module is the life of a job (the statuses are the kind's
:class:`~sageport.domain.jobs.JobMachine` roles; training's names in brackets):

- **starting** (Starting): wait in the queue until admitted (:class:`~.job_start.Admit`),
  then **downloading**; a job that can never fit here fails.
- **downloading** (Downloading): stage every host's data, then start its processes
  (:class:`~.job_start.Launch`, a task), then **running**; staging or a launch that fails
  fails the job.
- **running** (Training): ship logs and watch the hosts (:class:`~.job_watch.Watch`); all
  exited → **uploading**; one failed → the others are terminated (:class:`~.job_watch.Stop`)
  and the job uploads once they exit; past ``MaxRuntimeInSeconds`` → **stopping**.
- **stopping** (Stopping; the API's stop, or the limit): terminate, wait for the exits,
  upload, end **stopped** or **max_runtime_exceeded**; a job with no process yet ends at once
  (a staging in flight is cancelled first).
- **uploading** (Uploading): store the outputs (:class:`~.job_finish.Upload`, a task), then
  **completed** or **failed** (:class:`~.job_finish.Judge`); a stop meanwhile ends it
  stopped once the upload is done.

The steps do the work and return what they found (``job_outcomes``); only this module moves
a status or decides which step comes next, and no step calls another. Slow steps (staging,
uploading) run as tasks (``job_tasks``), started once per job. Everything a step learns is
stored with the job, so after a server restart the same ``tick()`` picks each job up where
it was (:class:`~.job_start.Restore` re-registers its grants; polling the stored handles
finds processes still running). What differs between training and processing jobs (hosts,
staging, the command, what is stored at the end) is a :class:`JobKind`
(``scheduler.training``, ``scheduler.processing``); the life here is the same for both.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import shutil
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sageport.backends.base import Backend
from sageport.catalog import Catalog
from sageport.clock import Clock
from sageport.domain.runtime import StopReason
from sageport.scheduler import artifacts
from sageport.scheduler.allocator import Allocator
from sageport.scheduler.job_finish import EndState, Judge, Upload, stopped_status
from sageport.scheduler.job_logs import JobLogs
from sageport.scheduler.job_outcomes import AllExited, Failed, HostFailed, Waiting
from sageport.scheduler.job_parts import JobKind, JobParts, RunnerConfig, job_dir
from sageport.scheduler.job_start import Admit, Launch, Restore
from sageport.scheduler.job_tasks import JobTasks
from sageport.scheduler.job_watch import MAX_RUNTIME_MESSAGE, Stop, Watch
from sageport.scheduler.ports import PortBook
from sageport.scheduler.queue import JobQueue, QueuedJob
from sageport.scheduler.records import JobRecords, LogSink
from sageport.storage.objectstore import ObjectStore
from sageport.store.errors import StatusConflict
from sageport.store.resources import Resource

__all__ = ["JobKind", "JobRunner", "RunnerConfig", "remove_job_dir"]

log = logging.getLogger(__name__)


class JobRunner:
    def __init__(
        self,
        kind: JobKind,
        jobs: JobRecords[Any],
        objects: ObjectStore,
        logs: LogSink,
        backend: Backend,
        allocator: Allocator,
        catalog: Catalog,
        clock: Clock,
        config: RunnerConfig,
        queue: JobQueue | None = None,
        ports: PortBook | None = None,
    ) -> None:
        self.kind = kind
        self.jobs = jobs
        self.allocator = allocator
        # One FIFO over every kind of job that waits (training and processing share it).
        self.queue = queue or JobQueue()
        # Every task in flight, per job: a job with any is skipped by tick() (its step is
        # under way).
        self.tasks = JobTasks(kind.label)
        self.parts = parts = JobParts(
            kind=kind,
            jobs=jobs,
            objects=objects,
            logs=logs,
            backend=backend,
            allocator=allocator,
            catalog=catalog,
            clock=clock,
            config=config,
            queue=self.queue,
            tasks=self.tasks,
            # one book for every runner the wiring builds: no two jobs share a port
            ports=ports or PortBook(),
        )
        # The steps, each over the shared parts; the log shipping is their one collaborator.
        self.logs = JobLogs(parts)
        self.restore = Restore(parts, self.logs)
        self.admit = Admit(parts)
        self.launch = Launch(parts, self.logs)
        self.watch = Watch(parts, self.logs)
        self.stop = Stop(parts, self.logs)
        self.upload = Upload(parts, self.logs)
        self.judge = Judge(parts, self.logs)
        self.queue.register(kind.label, self._waiting)

    async def tick(self) -> bool:
        """Next step of every unfinished job; True while any is past the queue."""
        busy = False
        active = self.jobs.active()
        waiting = self._waiting(active)
        if waiting:
            self.queue.refresh(self.kind.label, waiting)
        m = self.jobs.machine  # the kind's statuses for each step
        for job in active:
            status = self.jobs.status_of(job)
            busy = busy or status is not m.starting
            if job.name in self.tasks:  # its step is under way
                with contextlib.suppress(StatusConflict):  # the API moved it meanwhile
                    self._interrupt_staging(job, status)
                continue
            try:
                self.restore.restore(job)
                if status is m.starting:
                    self._starting(job)
                elif status is m.downloading:
                    self._start_staging(job)  # after a restart: staging again
                elif status is m.running:
                    self._running(job)
                elif status is m.stopping:
                    self._stopping(job)
                elif status is m.uploading:
                    self.tasks.spawn(job.name, self._finish(job))  # after a restart
            except StatusConflict:
                continue  # an API call moved it meanwhile; next tick sees the new state
            except Exception:
                log.exception("scheduler step for %s %s failed", self.kind.label, job.name)
        return busy or bool(self.tasks)

    # -- starting: the queue -------------------------------------------------------------

    def _starting(self, job: Resource) -> None:
        m = self.jobs.machine
        admitted = self.admit.admit(job)
        if isinstance(admitted, Failed):  # it could never start here
            self.tasks.spawn(job.name, self._fail_early(job, admitted))
        elif isinstance(admitted, Waiting):
            return  # next tick asks again; its status message says for what
        else:
            self.jobs.move(job.name, m.starting, m.downloading, runtime=admitted.apply)
            self._start_staging(self.jobs.get(job.name))

    # -- downloading: staging and launch -------------------------------------------------

    def _start_staging(self, job: Resource) -> None:
        """Staging is a task a stop (or the limit) may cancel: ``_interrupt_staging``."""
        self.tasks.spawn(job.name, self._stage_and_launch(job), staging=True)

    async def _stage_and_launch(self, job: Resource) -> None:
        m = self.jobs.machine
        staged = await self.launch.stage(job)
        if isinstance(staged, Failed):
            await self._fail_early(job, staged)
            return
        if self.jobs.status_of(self.jobs.get(job.name)) is not m.downloading:
            return  # stopped while staging: _stopping ends it, nothing was started
        launched = self.launch.launch(job, staged)
        if isinstance(launched, Failed):
            await self._fail_early(job, launched)
            return
        # The handles are stored before the move: a stop that slips in between then finds
        # the processes (``_stopping`` terminates them) instead of leaving them unrecorded.
        self.jobs.update(job.name, launched.apply)
        with contextlib.suppress(StatusConflict):  # a stop meanwhile wins
            self.jobs.move(job.name, m.downloading, m.running, message=launched.message)

    def _interrupt_staging(self, job: Resource, status: enum.StrEnum) -> None:
        """A stop, or the runtime limit, while staging: cancel it; ``_stopping`` ends the job.
        Staging only awaits between files and starts nothing, so no process is left behind."""
        task = self.tasks.staging(job.name)
        if task is None:
            return
        m = self.jobs.machine
        if status is m.downloading and self.watch.past_deadline(job):
            self._stop_at_limit(job, m.downloading)
            status = m.stopping
        if status is m.stopping:
            task.cancel()

    # -- running: watch the hosts --------------------------------------------------------

    def _running(self, job: Resource) -> None:
        m = self.jobs.machine
        seen = self.watch.look(job)
        self.upload.progress(job)  # Continuous outputs, throttled
        if isinstance(seen, AllExited):
            self.jobs.move(job.name, m.running, m.uploading, runtime=seen.apply)
            self.tasks.spawn(job.name, self._finish(self.jobs.get(job.name)))
        elif isinstance(seen, HostFailed):
            # one failed instance ends the job: the others are terminated, and once all
            # have exited the job uploads and fails with the first one's reason
            self.stop.host_failed(job, seen)
        elif self.watch.past_deadline(job):
            self._stop_at_limit(job, m.running)
            self.stop.terminate(self.jobs.get(job.name))

    def _stop_at_limit(self, job: Resource, at: enum.StrEnum) -> None:
        """Past ``MaxRuntimeInSeconds``: to Stopping, to end MaxRuntimeExceeded."""
        self.jobs.move(
            job.name,
            at,
            self.jobs.machine.stopping,
            message=MAX_RUNTIME_MESSAGE,
            runtime=lambda r: replace(r, stop_reason=StopReason.MAX_RUNTIME),
        )

    # -- stopping: the API's stop or the limit -------------------------------------------

    def _stopping(self, job: Resource) -> None:
        if not self.parts.handles(job):  # queued, or staging interrupted: nothing runs
            self._end_stopped(job)
            return
        if not self.stop.terminated(job):
            self.stop.terminate(job)
        seen = self.watch.look(job)
        if isinstance(seen, AllExited):
            self.jobs.update(job.name, seen.apply)
            self.tasks.spawn(job.name, self._finish(self.jobs.get(job.name)))

    # -- the end: upload, judge, release -------------------------------------------------

    async def _finish(self, job: Resource) -> None:
        """Store the outputs (also for failed and stopped jobs), then end the job."""
        m = self.jobs.machine
        ended = await self.upload.outputs(job)
        status = self.jobs.status_of(job)
        if status is not m.stopping:
            verdict = self.judge.verdict(job, ended)
            try:
                if isinstance(verdict, Failed):
                    failed = replace(ended, failure_reason=verdict.reason)
                    self.jobs.move(
                        job.name, status, m.failed, message=verdict.reason, runtime=failed.apply
                    )
                else:
                    self.jobs.move(job.name, status, m.completed, runtime=ended.apply)
            except StatusConflict:
                # stopped while uploading (the one other move from Uploading): the upload
                # is done, so the job ends as a stopped one does, the exits not judged
                status = self.jobs.status_of(job := self.jobs.get(job.name))
                if status is not m.stopping:
                    raise
        if status is m.stopping:
            self.jobs.move(job.name, m.stopping, stopped_status(job, m), runtime=ended.apply)
        self._release(job)

    async def _fail_early(self, job: Resource, failed: Failed) -> None:
        """End a job that failed before any of its processes ran (a stop that came first
        wins: it ends Stopped)."""
        m = self.jobs.machine
        log.info("%s %s failed before running: %s", self.kind.label, job.name, failed.reason)
        reason = failed.reason[: artifacts.FAILURE_LIMIT]
        end = EndState(ended_at=self.parts.now(), failure_reason=reason)
        try:
            self.jobs.move(job.name, failed.at, m.failed, message=reason, runtime=end.apply)
        except StatusConflict:
            if self.jobs.status_of(self.jobs.get(job.name)) is m.stopping:
                stopped = EndState(ended_at=self.parts.now())
                self.jobs.move(job.name, m.stopping, m.stopped, runtime=stopped.apply)
        self._release(job)

    def _end_stopped(self, job: Resource) -> None:
        """End a job stopped before any process started (queued, or staging interrupted)."""
        m = self.jobs.machine
        self._release(job)
        stopped = EndState(ended_at=self.parts.now())
        self.jobs.move(job.name, m.stopping, stopped_status(job, m), runtime=stopped.apply)

    def _release(self, job: Resource) -> None:
        """Every end gives back what the job held (``JobParts.release``: grants, launcher
        ports, its key) and forgets its log scanner and progress throttle; nothing else does."""
        self.parts.release(job)
        self.logs.forget(job.name)
        self.upload.forget(job.name)

    # -- the runner's own ----------------------------------------------------------------

    async def cancel(self) -> None:
        await self.tasks.cancel()

    def forget(self, name: str) -> None:
        """:func:`remove_job_dir` for this runner's kind."""
        remove_job_dir(self.parts.config, self.kind, name)

    def _waiting(self, active: Sequence[Resource] | None = None) -> list[QueuedJob]:
        return self.admit.waiting(active)


def remove_job_dir(config: RunnerConfig, kind: JobKind, name: str) -> None:
    """Remove a deleted job's host folders (staged inputs, model copies, launcher files);
    its logs and artifacts are elsewhere and stay. Only finished jobs can be deleted, so no
    step of a runner still uses them. The job service calls it on delete (``forget``); it
    needs no runner, so the service can be given it before the runner exists."""
    shutil.rmtree(job_dir(config, kind, name), ignore_errors=True)
