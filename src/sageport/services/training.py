"""Training jobs, as the API sees them: create, describe, list, stop, delete.

Create stores the validated request as the job's spec with the secondary status
``Starting`` and returns at once; the scheduler (``sageport.scheduler``) then moves the job
along. Describe is assembled here and only here: the spec, plus what the job's runtime state
(``extra``) and status history say. Messages are real SageMaker's where the SDK or users rely
on them ("Requested resource not found.", the duplicate-name wording).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sageport.clock import Clock
from sageport.domain import training as T
from sageport.domain.arns import sagemaker_arn
from sageport.domain.status import IllegalTransition
from sageport.domain.times import to_datetime
from sageport.errors import ResourceInUse, ValidationException
from sageport.services import listing
from sageport.services.admission import Admission
from sageport.services.tags import tag_pairs
from sageport.settings import Settings
from sageport.store import resources, tags
from sageport.store.database import Database
from sageport.store.errors import DuplicateName, StatusConflict
from sageport.store.resources import HistoryEntry, Resource

KIND = "TrainingJob"
ARN_TYPE = "training-job"


def not_found() -> ValidationException:
    return ValidationException("Requested resource not found.")


def secondary_of(job: Resource) -> T.Secondary:
    """A job's stored status; every training job has one from the moment it is created."""
    if job.status is None:
        raise ValueError(f"training job {job.name} has no status")
    return T.Secondary(job.status)


class TrainingJobService:
    """Use cases on training jobs; ``wake`` tells the scheduler there is news."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        settings: Settings,
        admission: Admission,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._settings = settings
        self._admission = admission
        self.wake = wake

    def arn(self, name: str) -> str:
        return sagemaker_arn(self._settings.region, self._settings.account_id, ARN_TYPE, name)

    def create(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["TrainingJobName"]
        arn = self.arn(name)
        self._admission.check_training(params)
        spec = {k: v for k, v in params.items() if k != "Tags"}
        now = self._clock.now()
        try:
            with self._db.begin() as conn:
                resources.create(
                    conn,
                    kind=KIND,
                    name=name,
                    arn=arn,
                    spec=spec,
                    now=now,
                    status=T.Secondary.STARTING,
                    status_message=T.MESSAGES[T.Secondary.STARTING],
                    secondary_status=T.Secondary.STARTING,
                )
                tags.put(conn, arn, tag_pairs(params.get("Tags", [])))
        except DuplicateName:
            raise ResourceInUse(
                "Training job names must be unique within an AWS account and region, and a "
                f"training job with this name already exists ({arn})"
            ) from None
        self.wake()
        return {"TrainingJobArn": arn}

    def get(self, name: str) -> Resource:
        with self._db.read() as conn:
            found = resources.get(conn, KIND, name)
        if found is None:
            raise not_found()
        return found

    def describe(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["TrainingJobName"]
        with self._db.read() as conn:
            job = resources.get(conn, KIND, name)
            if job is None:
                raise not_found()
            hist = resources.history(conn, KIND, name)
        return describe_job(job, hist, self._clock.now())

    def list(self, params: dict[str, Any]) -> dict[str, Any]:
        flt = listing.resource_filter(params)
        status = params.get("StatusEquals")
        if status:
            secondaries = T.secondaries_of(T.JobStatus(status))
            flt = listing.replace_statuses(flt, tuple(s.value for s in secondaries))
        with self._db.read() as conn:
            rows = resources.list_resources(conn, KIND, flt)
        items, token = listing.page(rows, flt, _summary)
        out: dict[str, Any] = {"TrainingJobSummaries": items}
        if token:
            out["NextToken"] = token
        return out

    def stop(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["TrainingJobName"]
        for _ in range(5):  # compare-and-set: retry if the scheduler moved the job meanwhile
            job = self.get(name)
            current = secondary_of(job)
            if T.primary(current) is not T.JobStatus.IN_PROGRESS:
                raise ValidationException(
                    "The request was rejected because the training job is in status "
                    f"{T.primary(current).value}."
                )
            try:
                self.move(name, current, T.Secondary.STOPPING)
            except StatusConflict:
                continue
            self.wake()
            return {}
        raise ValidationException("The training job changed status during the stop; retry.")

    def delete(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["TrainingJobName"]
        job = self.get(name)
        if not T.primary(secondary_of(job)).is_terminal():
            raise ValidationException(
                f"Training job {name} is in status {T.primary(secondary_of(job)).value}; "
                "only Completed, Failed or Stopped jobs can be deleted."
            )
        with self._db.begin() as conn:
            resources.delete_resource(conn, KIND, name)
        return {}

    # -- used by the scheduler ---------------------------------------------------------

    def move(
        self,
        name: str,
        old: T.Secondary,
        new: T.Secondary,
        message: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Compare-and-set ``old`` → ``new`` (legal per the table), recording history."""
        try:
            T.TRANSITIONS.check(old, new)
        except IllegalTransition as exc:
            raise ValidationException(str(exc)) from None
        now = self._clock.now()
        with self._db.begin() as conn:
            resources.set_status(
                conn,
                KIND,
                name,
                old.value,
                new.value,
                message=message or T.MESSAGES[new],
                now=now,
                secondary_status=new.value,
            )
            if extra:
                resources.update_extra(conn, KIND, name, extra, now)

    def update(self, name: str, changes: dict[str, Any]) -> None:
        """Merge runtime state into the job (no status change)."""
        with self._db.begin() as conn:
            resources.update_extra(conn, KIND, name, changes, self._clock.now())

    def active(self) -> builtins.list[Resource]:
        """Jobs that are not finished, oldest first: the scheduler's work list."""
        live = tuple(s.value for s in T.Secondary if not T.primary(s).is_terminal())
        with self._db.read() as conn:
            rows = resources.list_resources(
                conn,
                KIND,
                resources.ResourceFilter(statuses=live, sort_by="creation_time", descending=False, limit=10_000),
            )
        return rows


def _summary(job: Resource) -> dict[str, Any]:
    secondary = secondary_of(job)
    out: dict[str, Any] = {
        "TrainingJobName": job.name,
        "TrainingJobArn": job.arn,
        "CreationTime": job.created_at,
        "LastModifiedTime": job.modified_at,
        "TrainingJobStatus": T.primary(secondary).value,
        "SecondaryStatus": secondary.value,
    }
    if job.extra.get("ended_at"):
        out["TrainingEndTime"] = job.extra["ended_at"]
    return out


def transitions(hist: list[HistoryEntry], now: datetime) -> list[dict[str, Any]]:
    """``SecondaryStatusTransitions``: each status with its start, and the next one's start as end."""
    out: list[dict[str, Any]] = []
    for i, entry in enumerate(hist):
        item: dict[str, Any] = {
            "Status": entry.secondary_status or entry.status,
            "StartTime": entry.at,
            "StatusMessage": entry.message or "",
        }
        if i + 1 < len(hist):
            item["EndTime"] = hist[i + 1].at
        elif T.primary(T.Secondary(item["Status"])).is_terminal():
            item["EndTime"] = entry.at
        out.append(item)
    return out


def describe_job(job: Resource, hist: list[HistoryEntry], now: datetime) -> dict[str, Any]:
    """The DescribeTrainingJob answer: the spec, then runtime state on top."""
    secondary = secondary_of(job)
    extra = job.extra
    out: dict[str, Any] = dict(job.spec)
    out.update(
        {
            "TrainingJobName": job.name,
            "TrainingJobArn": job.arn,
            "TrainingJobStatus": T.primary(secondary).value,
            "SecondaryStatus": secondary.value,
            "CreationTime": job.created_at,
            "LastModifiedTime": job.modified_at,
            "SecondaryStatusTransitions": transitions(hist, now),
            "ModelArtifacts": {"S3ModelArtifacts": extra["model_artifacts"]} if extra.get("model_artifacts") else {},
        }
    )
    transitions_ = out["SecondaryStatusTransitions"]
    if transitions_ and secondary is T.Secondary.STARTING and extra.get("queue_message"):
        transitions_[-1]["StatusMessage"] = extra["queue_message"]  # what the queue waits for
    if transitions_ and extra.get("gpu_idle_warning") and not T.primary(secondary).is_terminal():
        transitions_[-1]["StatusMessage"] += f" WARNING: {extra['gpu_idle_warning']}"
    out.setdefault("StoppingCondition", {"MaxRuntimeInSeconds": 86400})
    for key, field in (
        ("started_at", "TrainingStartTime"),
        ("ended_at", "TrainingEndTime"),
        ("failure_reason", "FailureReason"),
        ("final_metrics", "FinalMetricDataList"),
    ):
        if extra.get(key):
            out[field] = extra[key]
    if extra.get("started_at"):
        start = to_datetime(extra["started_at"])
        end = to_datetime(extra["ended_at"]) if extra.get("ended_at") else now
        seconds = max(1, int((end - start).total_seconds()))
        count = int(job.spec.get("ResourceConfig", {}).get("InstanceCount", 1) or 1)
        out["TrainingTimeInSeconds"] = seconds
        out["BillableTimeInSeconds"] = seconds * count
    return out
