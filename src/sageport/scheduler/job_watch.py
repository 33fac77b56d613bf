"""A started job until its hosts have exited: exits, a failed instance, stops and the limit.

Each tick a running job's logs are shipped (``job_logs``) and its hosts polled. When every
host has exited the job moves to Uploading and ``job_finish`` takes over. Before that, three
things end it early, by terminating its processes (SIGTERM, then SIGKILL after the grace
time): one host that failed (as on SageMaker, one failed instance ends the job), a
``StopTrainingJob``/``StopProcessingJob`` (the API moved it to Stopping), and
``MaxRuntimeInSeconds``, counted from admission so that staging counts too. A stop or the
limit during staging cancels the staging task instead: nothing has started yet.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from sageport.backends.base import ExitInfo
from sageport.domain.runtime import JobRuntime, StopReason
from sageport.domain.times import to_datetime
from sageport.scheduler.job_finish import JobFinish
from sageport.scheduler.job_logs import JobLogs
from sageport.scheduler.job_parts import JobParts
from sageport.store.resources import Resource

MAX_RUNTIME_MESSAGE = "Stopping: MaxRuntimeInSeconds exceeded"


class JobWatch:
    """Watch, stop and time-limit the started jobs of one kind."""

    def __init__(self, parts: JobParts, logs: JobLogs, finish: JobFinish) -> None:
        self.parts = parts
        self.logs = logs
        self.finish = finish

    def watch(self, job: Resource) -> None:
        """One tick of a running job: ship, poll, and move on when its hosts are done."""
        p = self.parts
        m = p.jobs.machine
        exits = self.logs.poll_and_ship(job)
        self.finish.upload_progress(job)
        if all(e is not None for e in exits.values()):
            p.jobs.move(
                job.name,
                m.running,
                m.uploading,
                runtime=lambda r: replace(r, exits=_exits_json(exits)),
            )
            p.tasks.spawn(job.name, self.finish.finish(p.jobs.get(job.name)))
            return
        failed = [(h, e) for h, e in exits.items() if e is not None and e.returncode != 0]
        if failed and not JobRuntime.from_json(job.state).terminated_at:
            # As on SageMaker, one failed instance ends the job: the others would otherwise
            # wait for it (a distributed job's ranks block in their next collective).
            host, info = failed[0]
            streams = JobRuntime.from_json(job.state).log_streams
            for other, stream in streams.items():
                if exits.get(other) is None:
                    self.logs.system_log(
                        stream,
                        [
                            f"sageport: {host} failed (exit {info.returncode}); stopping "
                            f"{other}, as SageMaker ends a job when one of its instances fails"
                        ],
                    )
            self._terminate(job)
            return
        if self._stop_past_deadline(job, m.running):
            self._terminate(p.jobs.get(job.name))

    def stopping(self, job: Resource) -> None:
        """One tick of a Stopping job: terminate once, then finish when its hosts are done."""
        p = self.parts
        if not p.handles(job):
            self.finish.end_stopped(job)
            return
        if not JobRuntime.from_json(job.state).terminated_at:
            self._terminate(job)
        exits = self.logs.poll_and_ship(job)
        if all(e is not None for e in exits.values()):
            p.jobs.update(job.name, lambda r: replace(r, exits=_exits_json(exits)))
            p.tasks.spawn(job.name, self.finish.finish(p.jobs.get(job.name)))

    def interrupt_staging(self, job: Resource, status: enum.StrEnum) -> None:
        """A stop, or the runtime limit, while staging: cancel it; ``stopping`` ends the job.

        Staging only awaits between files, and nothing has started before it is done, so a
        cancelled staging leaves no process behind.
        """
        task = self.parts.tasks.staging(job.name)
        if task is None:
            return
        m = self.parts.jobs.machine
        if status is m.downloading and self._stop_past_deadline(job, m.downloading):
            status = m.stopping
        if status is m.stopping:
            task.cancel()

    def _stop_past_deadline(self, job: Resource, at: enum.StrEnum) -> bool:
        """Move a job past ``MaxRuntimeInSeconds`` (counted from its start on its hosts,
        staging too) from ``at`` to Stopping, to end MaxRuntimeExceeded; whether it was."""
        limit = (job.spec.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds")
        since = JobRuntime.from_json(job.state).since
        if not limit or not since:
            return False
        if (self.parts.clock.now() - to_datetime(since)).total_seconds() <= float(limit):
            return False
        self.parts.jobs.move(
            job.name,
            at,
            self.parts.jobs.machine.stopping,
            message=MAX_RUNTIME_MESSAGE,
            runtime=lambda r: replace(r, stop_reason=StopReason.MAX_RUNTIME),
        )
        return True

    def _terminate(self, job: Resource) -> None:
        for handle in self.parts.handles(job).values():
            self.parts.backend.terminate(handle)
        at = self.parts.now()
        self.parts.jobs.update(job.name, lambda r: replace(r, terminated_at=at))


def _exits_json(exits: Mapping[str, ExitInfo | None]) -> dict[str, dict[str, Any]]:
    return {h: e.to_json() for h, e in exits.items() if e}
