"""Getting a job onto its hosts: the queue, the grant, staging and the launch.

A Starting job waits in the one FIFO over every kind (``scheduler.queue``): only the job
first in line may take resources, and the first that does not fit blocks every later one.
Admitted, it holds its grants (GPUs, CPUs, memory) and moves to Downloading; staging then
writes each host's folder and data (a task: it awaits the object store), and the hosts'
processes are started. Their handles are stored before the move to running (Training), so a stop that
comes meanwhile finds them. After a server restart, :meth:`JobStart.restore` re-registers the
grants a job holds, once per job and process.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sageport.backends.base import HostHandle
from sageport.domain.runtime import JobRuntime
from sageport.errors import S3Error, ValidationException
from sageport.runtime.errors import ContractError
from sageport.scheduler.allocator import fallback_status
from sageport.scheduler.hosts import JobContext
from sageport.scheduler.job_finish import JobFinish
from sageport.scheduler.job_logs import JobLogs
from sageport.scheduler.job_parts import JobParts
from sageport.scheduler.queue import QueuedJob
from sageport.storage.transfer import TransferError
from sageport.store.errors import StatusConflict
from sageport.store.resources import Resource

log = logging.getLogger(__name__)


class JobStart:
    """Admit, stage and launch the jobs of one kind."""

    def __init__(self, parts: JobParts, logs: JobLogs, finish: JobFinish) -> None:
        self.parts = parts
        self.logs = logs
        self.finish = finish
        self._restored: set[str] = set()

    def waiting(self, active: Sequence[Resource] | None = None) -> list[QueuedJob]:
        """This kind's jobs that wait for resources (the queue's source)."""
        p = self.parts
        jobs = p.jobs.active() if active is None else active
        return [
            QueuedJob(j.created_at, p.kind.label, j.name)
            for j in jobs
            if p.jobs.status_of(j) is p.jobs.machine.starting and j.name not in p.tasks
        ]

    def restore(self, job: Resource) -> None:
        """After a restart, re-register what a job held; once per job and process."""
        if job.name in self._restored:
            return
        self._restored.add(job.name)
        p = self.parts
        rt = JobRuntime.from_json(job.state)
        if rt.grants and job.name not in p.allocator.holders():
            lost = p.allocator.restore(job.name, rt.grants)
            if lost:  # kept on the job's books; the log and the status message say so
                p.jobs.update(job.name, lambda r: replace(r, gpu_warnings=r.gpu_warnings + lost))
                for stream in rt.log_streams.values():
                    self.logs.system_log(stream, [f"WARNING: sageport: {n}" for n in lost])

    def admit(self, job: Resource, blocked: bool) -> bool:
        """FIFO over every kind (``scheduler.queue``): only the job first in line may start;
        the first that does not fit blocks every later one. One that could never start here
        (the machine changed since it was accepted) fails instead of blocking the queue.
        Returns whether the queue is blocked for the jobs after this one."""
        p = self.parts
        label = p.kind.label
        try:
            hosts = p.kind.hosts(p.catalog, job.spec)
            never = p.allocator.impossible(hosts)
        except ValidationException as exc:
            never = exc.message
        if never:
            p.queue.leave(label, job.name)
            p.tasks.spawn(job.name, self.finish.fail_early(job, p.jobs.machine.starting, never))
            return blocked
        ahead = p.queue.ahead_of(label, job.name)
        grants = None if ahead else p.allocator.try_allocate(job.name, hosts)
        if grants is None:
            waiting = (
                f"Waiting for {ahead.describe()}, ahead of it in the queue"
                if ahead
                else p.allocator.waiting_for(hosts)
            )
            if JobRuntime.from_json(job.state).queue_message != waiting:
                p.jobs.update(job.name, lambda r: replace(r, queue_message=waiting))
            return True
        p.queue.leave(label, job.name)
        warnings = list(dict.fromkeys(fallback_status(g) for g in grants if g.cpu_fallback))
        p.jobs.move(
            job.name,
            p.jobs.machine.starting,
            p.jobs.machine.downloading,
            runtime=lambda r: replace(
                r,
                grants=[g.to_json() for g in grants],
                sandbox=p.config.sandbox,
                admitted_at=p.now(),
                gpu_warnings=warnings or r.gpu_warnings,
            ),
        )
        self.stage(p.jobs.get(job.name))
        return False

    def stage(self, job: Resource) -> None:
        """Start staging a Downloading job (a task a stop may cancel)."""
        self.parts.tasks.spawn(job.name, self._stage_and_launch(job), staging=True)

    async def _stage_and_launch(self, job: Resource) -> None:
        p = self.parts
        m = p.jobs.machine
        # the job's own key, shared by its hosts (the same one again after a restart)
        ctx = p.context(job, p.config.keys.issue(job.arn))
        hosts = p.kind.host_names(job.spec)
        stream_epoch = int(time.time())
        streams = {h: f"{job.name}/{h}-{stream_epoch}" for h in hosts}
        self.logs.system_log(streams[hosts[0]], self._intro(job, ctx))
        handles: dict[str, Any] = {}
        try:
            files = size = 0
            for host in hosts:
                n, b = await p.kind.stage(ctx, host, p.store)
                files, size = files + n, size + b
            self.logs.system_log(
                streams[hosts[0]], [f"Staged {files} input files ({size / 2**20:.1f} MiB)"]
            )
            if p.jobs.status_of(p.jobs.get(job.name)) is not m.downloading:
                return  # stopped while staging: JobWatch.stopping() finishes it
            grants = p.allocator.grants_from_json(JobRuntime.from_json(job.state).grants)
            for host, grant in zip(hosts, grants, strict=True):
                spec, notes = p.kind.launch(ctx, host, grant)
                self.logs.system_log(streams[host], notes)
                handles[host] = p.backend.start(spec).to_json()
        except Exception as exc:
            for started in handles.values():  # hosts started before one failed to
                p.backend.kill(HostHandle.from_json(started))
            reason = str(exc)
            if isinstance(exc, S3Error) and exc.status < 500:
                # the user's data is not where the job says (NoSuchBucket, NoSuchKey, ...)
                where = f" ({exc.resource})" if exc.resource else ""
                reason = f"ClientError: Data download failed: {exc}{where}"
            elif not isinstance(exc, TransferError | ContractError | OSError | ValueError):
                # a sageport bug: the job fails once, saying so, instead of being retried
                # (and failing the same way) on every tick
                log.error("%s %s: staging failed", p.kind.label, job.name, exc_info=exc)
                reason = (
                    f"InternalServerError: sageport failed while preparing the job "
                    f"({type(exc).__name__}: {exc}); the server's log has the traceback"
                )
            await self.finish.fail_early(job, m.downloading, reason)
            return
        # The handles are stored before the move: a stop that slips in between then finds
        # the processes (``stopping`` terminates them) instead of leaving them unrecorded.
        started_at = p.now()
        p.jobs.update(
            job.name,
            lambda r: replace(
                r, hosts=handles, log_streams=streams, log_offsets={}, started_at=started_at
            ),
        )
        message = m.messages[m.running]
        if not ctx.sandbox:
            _, note = p.kind.no_sandbox_notes(p.config.sandbox_note, ctx.job_dir / hosts[0])
            message += f" ({note})"
        # A stop that came meanwhile wins: JobWatch.stopping() terminates what was started.
        with contextlib.suppress(StatusConflict):
            p.jobs.move(job.name, m.downloading, m.running, message=message)

    def _intro(self, job: Resource, ctx: JobContext) -> list[str]:
        p = self.parts
        grants = JobRuntime.from_json(job.state).grants
        gpus = [g.get("gpus", []) for g in grants]
        lines = [
            f"sageport: {p.kind.label} {job.name} on {len(grants)} host(s); GPUs per host: {gpus}"
        ]
        if ctx.sandbox:
            lines.append(
                "sageport: each host runs in a bubblewrap sandbox with its folder at /opt/ml"
            )
        else:
            host_dir = ctx.job_dir / p.kind.host_names(job.spec)[0]
            lines.append(p.kind.no_sandbox_notes(p.config.sandbox_note, host_dir)[0])
        return lines
