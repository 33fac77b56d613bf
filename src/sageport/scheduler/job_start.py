"""Getting a job onto its hosts: the queue, the grant, staging and the launch.

A Starting job waits in the one FIFO over every kind (``scheduler.queue``): only the job
first in line may take resources, and the first that does not fit blocks every later one
(:class:`Admit`). Admitted, it holds its grants (GPUs, CPUs, memory); staging then writes each
host's folder and data (it awaits the object store), and the hosts' processes are started
(:class:`Launch`). After a server restart, :class:`Restore` re-registers the grants a job
holds, once per job and process. Each step returns what it found (``job_outcomes``); the
runner makes the moves.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sageport.backends.base import HostHandle
from sageport.domain.runtime import JobRuntime
from sageport.errors import S3Error, ValidationException
from sageport.runtime.errors import ContractError
from sageport.scheduler.allocator import fallback_status
from sageport.scheduler.hosts import JobContext
from sageport.scheduler.job_logs import JobLogs
from sageport.scheduler.job_outcomes import Admitted, Failed, Launched, Staged, Waiting
from sageport.scheduler.job_parts import JobParts
from sageport.scheduler.queue import QueuedJob
from sageport.storage.transfer import TransferError
from sageport.store.resources import Resource

log = logging.getLogger(__name__)


class Restore:
    """After a restart, re-register what a job held; once per job and process."""

    def __init__(self, parts: JobParts, logs: JobLogs) -> None:
        self.parts = parts
        self.logs = logs
        self._restored: set[str] = set()

    def restore(self, job: Resource) -> None:
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


class Admit:
    """The queue and the grant of the Starting jobs of one kind."""

    def __init__(self, parts: JobParts) -> None:
        self.parts = parts

    def waiting(self, active: Sequence[Resource] | None = None) -> list[QueuedJob]:
        """This kind's jobs that wait for resources (the queue's source)."""
        p = self.parts
        jobs = p.jobs.active() if active is None else active
        return [
            QueuedJob(j.created_at, p.kind.label, j.name)
            for j in jobs
            if p.jobs.status_of(j) is p.jobs.machine.starting and j.name not in p.tasks
        ]

    def admit(self, job: Resource) -> Admitted | Waiting | Failed:
        """Take the job's grants if it is first in line and fits; ``Waiting`` (kept as its queue
        message) if not; ``Failed`` if it could never start here (the machine changed since it
        was accepted), so that it does not block the queue. Admitted or failed, it leaves the
        queue."""
        p = self.parts
        label = p.kind.label
        try:
            hosts = p.kind.hosts(p.catalog, job.spec)
            never = p.allocator.impossible(hosts)
        except ValidationException as exc:
            never = exc.message
        if never:
            p.queue.leave(label, job.name)
            return Failed(never, p.jobs.machine.starting)
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
            return Waiting(waiting)
        p.queue.leave(label, job.name)
        return Admitted(
            grants=grants,
            sandbox=p.config.sandbox,
            admitted_at=p.now(),
            warnings=list(dict.fromkeys(fallback_status(g) for g in grants if g.cpu_fallback)),
        )


class Launch:
    """Stage and launch the admitted (Downloading) jobs of one kind."""

    def __init__(self, parts: JobParts, logs: JobLogs) -> None:
        self.parts = parts
        self.logs = logs

    async def stage(self, job: Resource) -> Staged | Failed:
        """Mint the job's key, name its log streams (``<job>/<host>-<epoch seconds>`` on the
        clock) and write every host's folder and data. A stop may cancel it: it awaits only
        between files, and starts nothing."""
        p = self.parts
        # the job's own key, shared by its hosts (the same one again after a restart)
        ctx = p.context(job, p.config.keys.issue(job.arn))
        hosts = p.kind.host_names(job.spec)
        stream_epoch = int(p.clock.now().timestamp())
        streams = {h: f"{job.name}/{h}-{stream_epoch}" for h in hosts}
        self.logs.system_log(streams[hosts[0]], self._intro(job, ctx))
        try:
            files = size = 0
            for host in hosts:
                n, b = await p.kind.stage(ctx, host, p.objects)
                files, size = files + n, size + b
            self.logs.system_log(
                streams[hosts[0]], [f"Staged {files} input files ({size / 2**20:.1f} MiB)"]
            )
        except Exception as exc:
            return Failed(self._reason(job, exc), p.jobs.machine.downloading)
        return Staged(ctx, hosts, streams)

    def launch(self, job: Resource, staged: Staged) -> Launched | Failed:
        """Start every host's process; if one fails to start, kill those already started."""
        p = self.parts
        handles: dict[str, Any] = {}
        try:
            grants = p.allocator.grants_from_json(JobRuntime.from_json(job.state).grants)
            for host, grant in zip(staged.hosts, grants, strict=True):
                spec, notes = p.kind.launch(staged.context, host, grant)
                self.logs.system_log(staged.streams[host], notes)
                handles[host] = p.backend.start(spec).to_json()
        except Exception as exc:
            for started in handles.values():  # hosts started before one failed to
                p.backend.kill(HostHandle.from_json(started))
            return Failed(self._reason(job, exc), p.jobs.machine.downloading)
        m = p.jobs.machine
        message = m.messages[m.running]
        if not staged.context.sandbox:
            host_dir = staged.context.job_dir / staged.hosts[0]
            _, note = p.kind.no_sandbox_notes(p.config.sandbox_note, host_dir)
            message += f" ({note})"
        return Launched(handles, staged.streams, p.now(), message)

    def _reason(self, job: Resource, exc: Exception) -> str:
        """The FailureReason of a staging or launch that raised ``exc``."""
        if isinstance(exc, S3Error) and exc.status < 500:
            # the user's data is not where the job says (NoSuchBucket, NoSuchKey, ...)
            where = f" ({exc.resource})" if exc.resource else ""
            return f"ClientError: Data download failed: {exc}{where}"
        if isinstance(exc, TransferError | ContractError | OSError | ValueError):
            return str(exc)
        # a sageport bug: the job fails once, saying so, instead of being retried (and
        # failing the same way) on every tick
        p = self.parts
        log.error("%s %s: staging failed", p.kind.label, job.name, exc_info=exc)
        return (
            f"InternalServerError: sageport failed while preparing the job "
            f"({type(exc).__name__}: {exc}); the server's log has the traceback"
        )

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
