"""Carrying jobs through their steps: queue → stage → run → upload → end.

:class:`JobRunner` is driven by the scheduler loop: ``tick()`` looks at every job that
is not finished, in creation order, and does the next step of each. Slow steps (staging
data, packing and uploading artifacts) run as tasks; the loop only starts them once per
job. Everything a step learns is stored with the job, so after a server restart the same
``tick()`` picks each job up where it was (re-adopting running processes).

What differs between training and processing jobs — hosts, staging, the command, what is
stored at the end — is a :class:`JobKind` (``scheduler.training``, ``scheduler.processing``);
the life cycle here is the same for both. The steps live in modules of their own, over the
runner's shared :class:`~sageport.scheduler.job_parts.JobParts`: ``job_start`` (queue,
staging, launch), ``job_watch`` (exits, stops, ``MaxRuntimeInSeconds``), ``job_logs`` (log
shipping, error tails, metrics), ``job_finish`` (uploads, final status, release) and
``job_tasks`` (the tasks in flight). This module is the dispatch from status to step.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Sequence
from typing import Any

from sageport.backends.base import Backend
from sageport.catalog import Catalog
from sageport.clock import Clock
from sageport.scheduler.allocator import Allocator
from sageport.scheduler.job_finish import JobFinish
from sageport.scheduler.job_logs import JobLogs
from sageport.scheduler.job_parts import JobKind, JobParts, RunnerConfig, job_dir
from sageport.scheduler.job_start import JobStart
from sageport.scheduler.job_tasks import JobTasks
from sageport.scheduler.job_watch import JobWatch
from sageport.scheduler.ports import PortBook
from sageport.scheduler.queue import JobQueue, QueuedJob
from sageport.services.jobs import JobService
from sageport.services.logs import LogService
from sageport.storage.objectstore import ObjectStore
from sageport.store.errors import StatusConflict
from sageport.store.resources import Resource

__all__ = ["JobKind", "JobRunner", "RunnerConfig", "remove_job_dir"]

log = logging.getLogger(__name__)


class JobRunner:
    def __init__(
        self,
        kind: JobKind,
        jobs: JobService[Any],
        store: ObjectStore,
        logs: LogService,
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
            store=store,
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
        job_logs = JobLogs(parts)
        self.finish = JobFinish(parts, job_logs)
        self.start = JobStart(parts, job_logs, self.finish)
        self.watch = JobWatch(parts, job_logs, self.finish)
        self.queue.register(kind.label, self._waiting)

    async def tick(self) -> bool:
        """Next step of every unfinished job; True while any is past the queue."""
        queue_blocked = False
        busy = False
        active = self.jobs.active()
        waiting = self._waiting(active)
        if waiting:
            self.queue.refresh(self.kind.label, waiting)
        m = self.jobs.machine  # the kind's statuses for each step
        for job in active:
            status = self.jobs.status_of(job)
            busy = busy or status is not m.starting
            if job.name in self.tasks:
                with contextlib.suppress(StatusConflict):  # the API moved it meanwhile
                    self.watch.interrupt_staging(job, status)
                continue
            try:
                self.start.restore(job)
                if status is m.starting:
                    queue_blocked = self.start.admit(job, queue_blocked)
                elif status is m.downloading:
                    self.start.stage(job)
                elif status is m.running:
                    self.watch.watch(job)
                elif status is m.stopping:
                    self.watch.stopping(job)
                elif status is m.uploading:
                    self.tasks.spawn(job.name, self.finish.finish(job))
            except StatusConflict:
                continue  # an API call moved it meanwhile; next tick sees the new state
            except Exception:
                log.exception("scheduler step for %s %s failed", self.kind.label, job.name)
        return busy or bool(self.tasks)

    async def cancel(self) -> None:
        await self.tasks.cancel()

    def forget(self, name: str) -> None:
        """:func:`remove_job_dir` for this runner's kind."""
        remove_job_dir(self.parts.config, self.kind, name)

    def _waiting(self, active: Sequence[Resource] | None = None) -> list[QueuedJob]:
        return self.start.waiting(active)


def remove_job_dir(config: RunnerConfig, kind: JobKind, name: str) -> None:
    """Remove a deleted job's host folders (staged inputs, model copies, launcher files);
    its logs and artifacts are elsewhere and stay. Only finished jobs can be deleted, so no
    step of a runner still uses them. The job service calls it on delete (``forget``); it
    needs no runner, so the service can be given it before the runner exists."""
    shutil.rmtree(job_dir(config, kind, name), ignore_errors=True)
