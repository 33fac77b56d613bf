"""How a job ends: its outputs uploaded, its final status chosen, what it held given back.

Outputs go up twice: while the job runs, a throttled progress step (``Continuous``
processing outputs) and, once every host has exited, the kind's ``store_outputs``
(``model.tar.gz``, output folders), for failed and stopped jobs too, as SageMaker does. The
final status follows: Stopped (or MaxRuntimeExceeded) for a stopped job — one stopped while
its outputs upload too: the upload finishes first — else Failed with a reason (the upload's,
else the hosts' exits and error tails) or Completed. A job that fails
before any process started (it can never fit here, staging failed) ends here as well. Every
end releases the job's resources and launcher ports and revokes its access key; nothing
else does.
"""

from __future__ import annotations

import enum
import logging
import time
from dataclasses import dataclass, replace
from typing import Any

from sageport.backends.base import ExitInfo
from sageport.domain.jobs import JobMachine
from sageport.domain.runtime import JobRuntime, StopReason, StoredOutputs
from sageport.scheduler import artifacts, metrics
from sageport.scheduler.job_logs import JobLogs
from sageport.scheduler.job_parts import JobParts
from sageport.storage.transfer import TransferError
from sageport.store.errors import StatusConflict
from sageport.store.resources import Resource

log = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 1.0


class JobFinish:
    """Upload, end and release the jobs of one kind."""

    def __init__(self, parts: JobParts, logs: JobLogs) -> None:
        self.parts = parts
        self.logs = logs
        self._progress_at: dict[str, float] = {}

    def upload_progress(self, job: Resource) -> None:
        """Start a progress step for a running job, at most once per ``PROGRESS_INTERVAL_S``."""
        now = time.monotonic()
        if now - self._progress_at.get(job.name, 0.0) >= PROGRESS_INTERVAL_S:
            self._progress_at[job.name] = now
            self.parts.tasks.spawn(job.name, self._progress(job))

    async def _progress(self, job: Resource) -> None:
        p = self.parts
        seen = {k: list(v) for k, v in JobRuntime.from_json(job.state).uploaded.items()}
        before = dict(seen)
        try:
            await p.kind.progress(p.context(job), p.store, seen)
        except (TransferError, OSError) as exc:
            log.warning("%s %s: progress step failed: %s", p.kind.label, job.name, exc)
        if seen != before:
            p.jobs.update(job.name, lambda r: replace(r, uploaded=seen))

    async def finish(self, job: Resource) -> None:
        """Store artifacts (also for failed and stopped jobs), then end the job."""
        p = self.parts
        m = p.jobs.machine
        ctx = p.context(job)
        rt = JobRuntime.from_json(job.state)
        exits = {h: ExitInfo.from_json(e) for h, e in rt.exits.items()}
        # The host that ended first comes first: after one instance failed and the others were
        # stopped, the failure reason is its own, not a stopped one's.
        exits = dict(sorted(exits.items(), key=lambda item: item[1].ended_at))
        status = p.jobs.status_of(job)
        end_state = EndState(ended_at=p.now())
        try:
            stored = await p.kind.store_outputs(ctx, p.store, p.kind.host_names(job.spec))
            if stored.log_lines and rt.log_streams:  # e.g. symlinks an upload left out
                self.logs.system_log(next(iter(rt.log_streams.values())), stored.log_lines)
            end_state = replace(end_state, outputs=stored)
        except (TransferError, OSError) as exc:
            failed = f"Uploading the job's artifacts failed: {exc}"
            end_state = replace(end_state, failure_reason=failed[: artifacts.FAILURE_LIMIT])
        states = metrics.load_states(rt.metric_states)
        if states:
            end_state = replace(end_state, final_metrics=metrics.final_metrics(states))
        upload_failed = end_state.failure_reason
        if status is not m.stopping:
            reason = upload_failed or artifacts.failure_reason(ctx, exits, self.logs.tails(job))
            end = m.failed if reason else m.completed
            if reason:
                end_state = replace(end_state, failure_reason=reason)
            try:
                p.jobs.move(
                    job.name,
                    status,
                    end,
                    message=end_state.failure_reason if end is m.failed else None,
                    runtime=end_state.apply,
                )
            except StatusConflict:
                # stopped while uploading (the one other move from Uploading): the upload
                # is done, so the job ends as a stopped one does, the exits not judged
                status = p.jobs.status_of(job := p.jobs.get(job.name))
                if status is not m.stopping:
                    raise
                end_state = replace(end_state, failure_reason=upload_failed)
        if status is m.stopping:
            p.jobs.move(job.name, m.stopping, stopped_status(job, m), runtime=end_state.apply)
        p.release(job)
        self.logs.forget(job.name)
        self._progress_at.pop(job.name, None)

    async def fail_early(self, job: Resource, at: enum.StrEnum, reason: str) -> None:
        """End a job that failed before any of its processes ran (a stop that came first
        wins: it ends Stopped)."""
        p = self.parts
        m = p.jobs.machine
        log.info("%s %s failed before running: %s", p.kind.label, job.name, reason)
        failed = EndState(ended_at=p.now(), failure_reason=reason[: artifacts.FAILURE_LIMIT])
        try:
            p.jobs.move(job.name, at, m.failed, message=failed.failure_reason, runtime=failed.apply)
        except StatusConflict:
            current = p.jobs.status_of(p.jobs.get(job.name))
            if current is m.stopping:
                stopped = EndState(ended_at=p.now())
                p.jobs.move(job.name, m.stopping, m.stopped, runtime=stopped.apply)
        p.release(job)

    def end_stopped(self, job: Resource) -> None:
        """End a job stopped before any process started (queued, or staging interrupted)."""
        p = self.parts
        m = p.jobs.machine
        p.release(job)
        stopped = EndState(ended_at=p.now())
        p.jobs.move(job.name, m.stopping, stopped_status(job, m), runtime=stopped.apply)


def stopped_status(job: Resource, m: JobMachine[Any]) -> Any:
    """How a stopped job ends: MaxRuntimeExceeded when the runtime limit stopped it."""
    stop_reason = JobRuntime.from_json(job.state).stop_reason
    return m.max_runtime_exceeded if stop_reason is StopReason.MAX_RUNTIME else m.stopped


@dataclass(frozen=True)
class EndState:
    """What a job's end writes into its runtime state, with the move to its final status.

    A field left None keeps what is stored (the end merges, it does not clear).
    """

    ended_at: str
    failure_reason: str | None = None
    final_metrics: list[dict[str, Any]] | None = None
    outputs: StoredOutputs | None = None

    def apply(self, r: JobRuntime) -> JobRuntime:
        out = self.outputs or StoredOutputs()
        return replace(
            r,
            ended_at=self.ended_at,
            failure_reason=self.failure_reason or r.failure_reason,
            final_metrics=self.final_metrics or r.final_metrics,
            model_artifacts=out.model_artifacts or r.model_artifacts,
            output_artifacts=out.output_artifacts or r.output_artifacts,
            exit_message=out.exit_message or r.exit_message,
        )
