"""How a job ends: its outputs uploaded, its end judged, what its end writes.

Outputs go up twice: while the job runs, a throttled progress step (``Continuous``
processing outputs, :meth:`Upload.progress`) and, once every host has exited, the kind's
``store_outputs`` (``model.tar.gz``, output folders; :meth:`Upload.outputs`), for failed and
stopped jobs too, as SageMaker does. Then :class:`Judge` says how a job that was not stopped
ends: Failed with a reason (the upload's, else the hosts' exits and error tails) or
Completed; a stopped one ends Stopped, or MaxRuntimeExceeded when the limit stopped it
(:func:`stopped_status`). The runner makes the final move and releases what the job held.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

from sageport.backends.base import ExitInfo
from sageport.domain.jobs import JobMachine
from sageport.domain.runtime import JobRuntime, StopReason, StoredOutputs
from sageport.runtime import metrics
from sageport.scheduler import artifacts
from sageport.scheduler.job_logs import JobLogs
from sageport.scheduler.job_outcomes import Completed, Failed
from sageport.scheduler.job_parts import JobParts
from sageport.storage.transfer import TransferError
from sageport.store.resources import Resource

log = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 1.0


class Upload:
    """Upload the outputs of one kind's jobs: progress while they run, all of it at the end."""

    def __init__(self, parts: JobParts, logs: JobLogs) -> None:
        self.parts = parts
        self.logs = logs
        self._progress_at: dict[str, float] = {}

    def progress(self, job: Resource) -> None:
        """Start a progress step for a running job (a task), the first at once, then at most
        once per ``PROGRESS_INTERVAL_S`` on the clock."""
        now = self.parts.clock.monotonic()
        last = self._progress_at.get(job.name)
        if last is None or now - last >= PROGRESS_INTERVAL_S:
            self._progress_at[job.name] = now
            self.parts.tasks.spawn(job.name, self._progress(job))

    async def _progress(self, job: Resource) -> None:
        p = self.parts
        seen = {k: list(v) for k, v in JobRuntime.from_json(job.state).uploaded.items()}
        before = dict(seen)
        try:
            await p.kind.progress(p.context(job), p.objects, seen)
        except (TransferError, OSError) as exc:
            log.warning("%s %s: progress step failed: %s", p.kind.label, job.name, exc)
        if seen != before:
            p.jobs.update(job.name, lambda r: replace(r, uploaded=seen))

    async def outputs(self, job: Resource) -> EndState:
        """Store the job's artifacts (also for failed and stopped jobs): what its end writes,
        with the upload's failure, if any, as its failure reason, and its final metrics."""
        p = self.parts
        rt = JobRuntime.from_json(job.state)
        end_state = EndState(ended_at=p.now())
        try:
            stored = await p.kind.store_outputs(
                p.context(job), p.objects, p.kind.host_names(job.spec)
            )
            if stored.log_lines and rt.log_streams:  # e.g. symlinks an upload left out
                self.logs.system_log(next(iter(rt.log_streams.values())), stored.log_lines)
            end_state = replace(end_state, outputs=stored)
        except (TransferError, OSError) as exc:
            failed = f"Uploading the job's artifacts failed: {exc}"
            end_state = replace(end_state, failure_reason=failed[: artifacts.FAILURE_LIMIT])
        states = metrics.load_states(rt.metric_states)
        if states:
            end_state = replace(end_state, final_metrics=metrics.final_metrics(states))
        return end_state

    def forget(self, name: str) -> None:
        """Job ``name`` has ended: its progress throttle goes."""
        self._progress_at.pop(name, None)


class Judge:
    """How a job whose hosts have all exited ends, unless it was stopped."""

    def __init__(self, parts: JobParts, logs: JobLogs) -> None:
        self.parts = parts
        self.logs = logs

    def verdict(self, job: Resource, ended: EndState) -> Completed | Failed:
        """Failed when the upload failed (its reason) or a host did (``artifacts``: its exit
        and error tail); else Completed."""
        rt = JobRuntime.from_json(job.state)
        exits = {h: ExitInfo.from_json(e) for h, e in rt.exits.items()}
        # The host that ended first comes first: after one instance failed and the others were
        # stopped, the failure reason is its own, not a stopped one's.
        exits = dict(sorted(exits.items(), key=lambda item: item[1].ended_at))
        ctx = self.parts.context(job)
        reason = ended.failure_reason or artifacts.failure_reason(ctx, exits, self.logs.tails(job))
        if reason:
            return Failed(reason, self.parts.jobs.status_of(job))
        return Completed()


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
