"""Processing jobs: what the API adds to the shared job life cycle (``services.jobs``).

A processing job shows only ``ProcessingJobStatus``; its finer steps (queued, staging,
running, uploading) are stored as its own statuses (``domain.processing``).
``DescribeProcessingJob`` must carry ``ProcessingResources`` (the SDK's ``wait`` reads
``ClusterConfig.InstanceCount``), which it does because the spec is echoed. It has no status
message, so while a job is in progress ``ExitMessage`` says what it waits for and any GPU
warning (:func:`status_note`).
"""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Any

from sageport.domain import processing as P
from sageport.domain.runtime import JobRuntime
from sageport.services import isolation, quotas
from sageport.services.jobs import JobService
from sageport.store.resources import HistoryEntry, Resource


class ProcessingJobService(JobService[P.ProcessingStep]):
    kind = "ProcessingJob"
    arn_type = "processing-job"
    name_field = "ProcessingJobName"
    arn_field = "ProcessingJobArn"
    summaries_field = "ProcessingJobSummaries"
    label = "processing job"
    machine = P.MACHINE

    def check(self, params: dict[str, Any]) -> None:
        quotas.check_processing_job(self._settings, params)  # first: the rest builds per host
        self._admission.check_processing(params)
        isolation.check_processing(self._settings, params)

    def summary(self, job: Resource) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ProcessingJobName": job.name,
            "ProcessingJobArn": job.arn,
            "CreationTime": job.created_at,
            "LastModifiedTime": job.modified_at,
            "ProcessingJobStatus": P.PUBLIC[P.MACHINE.of(job.status)].value,
        }
        rt = JobRuntime.from_json(job.state)
        for value, field in (
            (rt.ended_at, "ProcessingEndTime"),
            (rt.failure_reason, "FailureReason"),
            (rt.exit_message, "ExitMessage"),
        ):
            if value:
                out[field] = value
        return out

    def describe_job(
        self, job: Resource, hist: builtins.list[HistoryEntry], now: datetime
    ) -> dict[str, Any]:
        out: dict[str, Any] = {**with_aws_defaults(job.spec), **self.summary(job)}
        started_at = JobRuntime.from_json(job.state).started_at
        if started_at:
            out["ProcessingStartTime"] = started_at
        note = status_note(job)
        if note and "ExitMessage" not in out:
            out["ExitMessage"] = note[:1024]
        return out


def with_aws_defaults(spec: dict[str, Any]) -> dict[str, Any]:
    """The input and output members real SageMaker fills in when a request leaves them out
    (the SDK's ``ProcessingJob.from_processing_name`` rebuilds its inputs from them)."""
    out = dict(spec)
    inputs = []
    for given in out.get("ProcessingInputs") or []:
        item = {"AppManaged": False, **given}
        if item.get("S3Input"):
            item["S3Input"] = {
                "S3InputMode": "File",
                "S3DataDistributionType": "FullyReplicated",
                "S3CompressionType": "None",
                **item["S3Input"],
            }
        inputs.append(item)
    if inputs:
        out["ProcessingInputs"] = inputs
    if out.get("ProcessingOutputConfig"):
        config = dict(out["ProcessingOutputConfig"])
        config["Outputs"] = [{"AppManaged": False, **o} for o in config.get("Outputs") or []]
        out["ProcessingOutputConfig"] = config
    return out


def status_note(job: Resource) -> str:
    """While a job is not finished: what it waits for, and GPU warnings (CPU fallback, GPUs
    gone, idle GPUs). DescribeProcessingJob has no status message; ``ExitMessage`` carries
    this until the job ends, when only the container's own message is shown there."""
    step = P.MACHINE.of(job.status)
    if P.TRANSITIONS.is_terminal(step):
        return ""
    rt = JobRuntime.from_json(job.state)
    parts = []
    if step is P.ProcessingStep.STARTING and rt.queue_message:
        parts.append(rt.queue_message)
    parts += [f"WARNING: {w}" for w in rt.gpu_warnings]
    if rt.gpu_idle_warning:
        parts.append(f"WARNING: {rt.gpu_idle_warning}")
    return " ".join(parts)
