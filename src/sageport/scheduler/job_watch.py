"""A started job until its hosts have exited: exits, a failed instance, the limit, stops.

Each tick a started job's logs are shipped (``job_logs``) and its hosts polled
(:meth:`Watch.look`): every host exited (the job goes on to Uploading), one failed while the
others run, or still running. Three things end a job early, by terminating its processes
(:class:`Stop`: SIGTERM, then SIGKILL after the grace time): one host that failed (as on
SageMaker, one failed instance ends the job), a ``StopTrainingJob``/``StopProcessingJob``
(the API moved it to Stopping), and ``MaxRuntimeInSeconds`` (:meth:`Watch.past_deadline`),
counted from admission so that staging counts too. The runner decides which applies.
"""

from __future__ import annotations

from dataclasses import replace

from sageport.backends.base import ExitInfo
from sageport.domain.runtime import JobRuntime
from sageport.domain.times import to_datetime
from sageport.scheduler.job_logs import JobLogs
from sageport.scheduler.job_outcomes import AllExited, HostFailed, StillRunning, Watched
from sageport.scheduler.job_parts import JobParts
from sageport.store.resources import Resource

MAX_RUNTIME_MESSAGE = "Stopping: MaxRuntimeInSeconds exceeded"


class Watch:
    """Look at the started jobs of one kind: their exits and their runtime limit."""

    def __init__(self, parts: JobParts, logs: JobLogs) -> None:
        self.parts = parts
        self.logs = logs

    def look(self, job: Resource) -> Watched:
        """Ship the job's new log records, then what its hosts' exits say. A failed host is
        news only until its job's processes were told to stop (``terminated_at``)."""
        exits = self.logs.poll_and_ship(job)
        if all(e is not None for e in exits.values()):
            return AllExited({h: e for h, e in exits.items() if e is not None})
        failed = [(h, e) for h, e in exits.items() if e is not None and e.returncode != 0]
        if failed and not JobRuntime.from_json(job.state).terminated_at:
            host, info = failed[0]
            return HostFailed(host, info, exits)
        return StillRunning()

    def past_deadline(self, job: Resource) -> bool:
        """Whether the job has run past ``MaxRuntimeInSeconds`` on the clock, counted from
        its admission (staging counts)."""
        limit = (job.spec.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds")
        since = JobRuntime.from_json(job.state).since
        if not limit or not since:
            return False
        elapsed = (self.parts.clock.now() - to_datetime(since)).total_seconds()
        return elapsed > float(limit)


class Stop:
    """End the processes of a started job: SIGTERM now, SIGKILL after the grace (backend)."""

    def __init__(self, parts: JobParts, logs: JobLogs) -> None:
        self.parts = parts
        self.logs = logs

    def terminated(self, job: Resource) -> bool:
        """Whether the job's processes were told to stop already."""
        return bool(JobRuntime.from_json(job.state).terminated_at)

    def terminate(self, job: Resource) -> None:
        """Terminate every host's process, once: ``terminated_at`` says it was done."""
        for handle in self.parts.handles(job).values():
            self.parts.backend.terminate(handle)
        at = self.parts.now()
        self.parts.jobs.update(job.name, lambda r: replace(r, terminated_at=at))

    def host_failed(self, job: Resource, failed: HostFailed) -> None:
        """As on SageMaker, one failed instance ends the job: the others would otherwise wait
        for it (a distributed job's ranks block in their next collective). Each host still
        running is told why in its log, then every process is terminated."""
        streams = JobRuntime.from_json(job.state).log_streams
        info: ExitInfo = failed.exit
        for other, stream in streams.items():
            if failed.exits.get(other) is None:
                self.logs.system_log(
                    stream,
                    [
                        f"sageport: {failed.host} failed (exit {info.returncode}); stopping "
                        f"{other}, as SageMaker ends a job when one of its instances fails"
                    ],
                )
        self.terminate(job)
