"""Training jobs: what the API adds to the shared job life cycle (``services.jobs``).

Describe is assembled here and only here: the spec, plus what the job's runtime state
(``domain.runtime.JobRuntime``) and status history say, including ``SecondaryStatusTransitions``.
"""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Any

from sageport.domain import training as T
from sageport.domain.runtime import JobRuntime
from sageport.domain.times import to_datetime
from sageport.runtime import metrics
from sageport.services import isolation, quotas, unsupported
from sageport.services.jobs import JobService, not_found, secondary_of
from sageport.store.resources import HistoryEntry, Resource

__all__ = ["TrainingJobService", "not_found", "secondary_of"]


class TrainingJobService(JobService[T.Secondary]):
    kind = "TrainingJob"
    arn_type = "training-job"
    name_field = "TrainingJobName"
    arn_field = "TrainingJobArn"
    summaries_field = "TrainingJobSummaries"
    label = "training job"
    machine = T.MACHINE

    def check(self, params: dict[str, Any]) -> None:
        quotas.check_training_job(self._settings, params)  # first: the rest builds per host
        self._admission.check_training(params)
        unsupported.check_training_job(params)
        isolation.check_training(self._settings, params)

    def summary(self, job: Resource) -> dict[str, Any]:
        return training_summary(job)

    def describe_job(
        self, job: Resource, hist: builtins.list[HistoryEntry], now: datetime
    ) -> dict[str, Any]:
        return describe_job(job, hist, now)


def training_summary(job: Resource) -> dict[str, Any]:
    secondary = secondary_of(job)
    out: dict[str, Any] = {
        "TrainingJobName": job.name,
        "TrainingJobArn": job.arn,
        "CreationTime": job.created_at,
        "LastModifiedTime": job.modified_at,
        "TrainingJobStatus": T.primary(secondary).value,
        "SecondaryStatus": secondary.value,
    }
    ended_at = JobRuntime.from_json(job.state).ended_at
    if ended_at:
        out["TrainingEndTime"] = ended_at
    return out


def transitions(hist: list[HistoryEntry], now: datetime) -> list[dict[str, Any]]:
    """``SecondaryStatusTransitions``: each status from its start to the next one's start."""
    out: list[dict[str, Any]] = []
    for i, entry in enumerate(hist):
        item: dict[str, Any] = {
            "Status": entry.secondary_status or entry.status,
            "StartTime": entry.at,
            "StatusMessage": entry.message or "",
        }
        if i + 1 < len(hist):
            item["EndTime"] = hist[i + 1].at
        elif T.TRANSITIONS.is_terminal(T.Secondary(item["Status"])):
            item["EndTime"] = entry.at
        out.append(item)
    return out


DEFAULT_FALSE = (
    "EnableNetworkIsolation",
    "EnableInterContainerTrafficEncryption",
    "EnableManagedSpotTraining",
)
"""Flags DescribeTrainingJob always answers, false when the request left them out."""

DEFAULT_VOLUME_GB = 30
"""``ResourceConfig.VolumeSizeInGB`` when the request left it out (the SDK's own default)."""


def with_aws_defaults(spec: dict[str, Any]) -> dict[str, Any]:
    """The members real SageMaker fills in when a request leaves them out.

    The SDK's ``Estimator.attach`` (and so ``HyperparameterTuner.best_estimator``) reads
    them by key: ``OutputDataConfig.KmsKeyId`` (AWS answers ``""``), ``ResourceConfig.
    VolumeSizeInGB``, ``StoppingCondition.MaxRuntimeInSeconds``. Members the request did not
    give and AWS does not default (``VpcConfig``, ``CheckpointConfig``, ...) stay absent.
    """
    out = dict(spec)
    output = dict(out.get("OutputDataConfig") or {})
    output.setdefault("KmsKeyId", "")
    output.setdefault("CompressionType", "GZIP")
    out["OutputDataConfig"] = output
    resources = dict(out.get("ResourceConfig") or {})
    if not resources.get("InstanceGroups"):
        resources.setdefault("VolumeSizeInGB", DEFAULT_VOLUME_GB)
    out["ResourceConfig"] = resources
    stopping = dict(out.get("StoppingCondition") or {})
    stopping.setdefault("MaxRuntimeInSeconds", 86400)
    out["StoppingCondition"] = stopping
    if "AlgorithmSpecification" in out:
        algo = dict(out["AlgorithmSpecification"])
        algo.setdefault("EnableSageMakerMetricsTimeSeries", False)
        out["AlgorithmSpecification"] = algo
    for flag in DEFAULT_FALSE:
        out.setdefault(flag, False)
    return out


def log_truncation_note(hosts: dict[str, str]) -> str:
    """What the status message says when hosts' logs reached the per-host cap."""
    names = ", ".join(sorted(hosts))
    return (
        f"the log of {names} reached the per-host limit (max_log_bytes_per_host) and was "
        "truncated; the job kept running, further output was discarded"
    )


def describe_job(job: Resource, hist: list[HistoryEntry], now: datetime) -> dict[str, Any]:
    """The DescribeTrainingJob answer: the spec, then runtime state on top."""
    secondary = secondary_of(job)
    rt = JobRuntime.from_json(job.state)
    out: dict[str, Any] = with_aws_defaults(job.spec)
    out.update(
        {
            "TrainingJobName": job.name,
            "TrainingJobArn": job.arn,
            "TrainingJobStatus": T.primary(secondary).value,
            "SecondaryStatus": secondary.value,
            "CreationTime": job.created_at,
            "LastModifiedTime": job.modified_at,
            "SecondaryStatusTransitions": transitions(hist, now),
        }
    )
    if rt.model_artifacts:
        out["ModelArtifacts"] = {"S3ModelArtifacts": rt.model_artifacts}
    transitions_ = out["SecondaryStatusTransitions"]
    if transitions_ and secondary is T.Secondary.STARTING and rt.queue_message:
        transitions_[-1]["StatusMessage"] = rt.queue_message  # what the queue waits for
    if transitions_ and rt.gpu_idle_warning and not T.TRANSITIONS.is_terminal(secondary):
        transitions_[-1]["StatusMessage"] += f" WARNING: {rt.gpu_idle_warning}"
    if transitions_ and rt.gpu_warnings:
        # CPU fallback, GPUs gone: said on the Training step (the last one until it exists)
        steps = [t for t in transitions_ if t["Status"] == T.Secondary.TRAINING.value]
        target = steps[0] if steps else transitions_[-1]
        for warning in rt.gpu_warnings:
            target["StatusMessage"] += f" WARNING: {warning}"
    if rt.log_truncated:
        note = log_truncation_note(rt.log_truncated)
        for item in transitions_:
            if item["Status"] == T.Secondary.TRAINING.value:
                item["StatusMessage"] += f" WARNING: {note}"
    # SageMaker's TrainingStartTime is the start on the instances, download included.
    for value, field in (
        (rt.since, "TrainingStartTime"),
        (rt.ended_at, "TrainingEndTime"),
        (rt.failure_reason, "FailureReason"),
        (rt.final_metrics, "FinalMetricDataList"),
    ):
        if value:
            out[field] = value
    if "FinalMetricDataList" not in out and rt.metric_states:
        out["FinalMetricDataList"] = metrics.final_metrics(
            metrics.load_states(rt.metric_states)
        )  # while it runs: the latest values so far
    start_at = rt.since
    if start_at and rt.ended_at and T.TRANSITIONS.is_terminal(secondary):
        # As SageMaker: both only once the job has ended (billed from start to end).
        seconds = max(1, int((to_datetime(rt.ended_at) - to_datetime(start_at)).total_seconds()))
        resources = job.spec.get("ResourceConfig") or {}
        groups = resources.get("InstanceGroups") or [resources]
        count = sum(int(g.get("InstanceCount", 1) or 1) for g in groups)
        out["TrainingTimeInSeconds"] = seconds
        out["BillableTimeInSeconds"] = seconds * count
    return out
