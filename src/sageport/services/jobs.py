"""The life cycle every job kind shares: create, describe, list, stop, delete, and moves.

Create stores the validated request as the job's spec with the secondary status ``Starting``
and returns at once; the scheduler then moves the job along (``move``, ``update``). The
stored status is the secondary one (``sageport.domain.training``); the public status is
derived from it. Messages are real SageMaker's where the SDK or users rely on them
("Requested resource not found.", the duplicate-name wording).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar

from sageport.clock import Clock
from sageport.domain import training as T
from sageport.domain.arns import sagemaker_arn
from sageport.domain.status import IllegalTransition
from sageport.errors import ResourceInUse, ValidationException
from sageport.services import listing, quotas
from sageport.services.admission import Admission
from sageport.services.tags import tag_pairs
from sageport.settings import Settings
from sageport.store import resources, tags
from sageport.store.database import Database
from sageport.store.errors import DuplicateName, StatusConflict
from sageport.store.resources import HistoryEntry, Resource


def not_found() -> ValidationException:
    return ValidationException("Requested resource not found.")


def secondary_of(job: Resource) -> T.Secondary:
    """A job's stored status; every job has one from the moment it is created."""
    if job.status is None:
        raise ValueError(f"job {job.name} has no status")
    return T.Secondary(job.status)


class JobService:
    """Use cases on one kind of job; ``wake`` tells the scheduler there is news.

    Subclasses name the kind (its API field names, its create-time checks, its Describe);
    the life cycle — stored secondary status, compare-and-set moves, history — is shared.
    """

    kind: ClassVar[str]
    arn_type: ClassVar[str]
    name_field: ClassVar[str]
    arn_field: ClassVar[str]
    summaries_field: ClassVar[str]
    label: ClassVar[str]

    def __init__(
        self,
        db: Database,
        clock: Clock,
        settings: Settings,
        admission: Admission,
        wake: Callable[[], None] = lambda: None,
        forget: Callable[[str], None] = lambda name: None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._settings = settings
        self._admission = admission
        self.wake = wake
        #: removes what the scheduler keeps of a deleted job (its host folders)
        self.forget = forget

    def arn(self, name: str) -> str:
        return sagemaker_arn(self._settings.region, self._settings.account_id, self.arn_type, name)

    def create(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params[self.name_field]
        arn = self.arn(name)
        self.check(params)
        spec = {k: v for k, v in params.items() if k != "Tags"}
        now = self._clock.now()
        try:
            with self._db.begin() as conn:
                quotas.check_jobs_in_progress(conn, self._settings, self.kind)
                resources.create(
                    conn,
                    kind=self.kind,
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
                f"{self.label.capitalize()} names must be unique within an AWS account and region, "
                f"and a {self.label} with this name already exists ({arn})"
            ) from None
        self.wake()
        return {self.arn_field: arn}

    def get(self, name: str) -> Resource:
        with self._db.read() as conn:
            found = resources.get(conn, self.kind, name)
        if found is None:
            raise not_found()
        return found

    def describe(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params[self.name_field]
        with self._db.read() as conn:
            job = resources.get(conn, self.kind, name)
            if job is None:
                raise not_found()
            hist = resources.history(conn, self.kind, name)
        return self.describe_job(job, hist, self._clock.now())

    def list(self, params: dict[str, Any]) -> dict[str, Any]:
        flt = listing.resource_filter(params)
        status = params.get("StatusEquals")
        if status:
            if status not in {s.value for s in T.JobStatus}:
                # a status of the model sageport never gives a job (``Deleting``: a delete
                # here is immediate): no job is in it
                return {self.summaries_field: []}
            secondaries = T.secondaries_of(T.JobStatus(status))
            flt = listing.replace_statuses(flt, tuple(s.value for s in secondaries))
        return listing.answer(self._db, self.kind, flt, self.summary, self.summaries_field)

    def stop(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params[self.name_field]
        for _ in range(5):  # compare-and-set: retry if the scheduler moved the job meanwhile
            job = self.get(name)
            current = secondary_of(job)
            if T.primary(current) is not T.JobStatus.IN_PROGRESS:
                raise ValidationException(
                    f"The request was rejected because the {self.label} is in status "
                    f"{T.primary(current).value}."
                )
            try:
                self.move(name, current, T.Secondary.STOPPING)
            except StatusConflict:
                continue
            self.wake()
            return {}
        raise ValidationException(f"The {self.label} changed status during the stop; retry.")

    def delete(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params[self.name_field]
        job = self.get(name)
        status = T.primary(secondary_of(job))
        if not status.is_terminal():
            raise ValidationException(
                f"{self.label.capitalize()} {name} is in status {status.value}; "
                "only Completed, Failed or Stopped jobs can be deleted."
            )
        with self._db.begin() as conn:
            resources.delete_resource(conn, self.kind, name)
        # A job created later under the same name must start from empty folders: the old
        # launcher files there would read as its exit status.
        self.forget(name)
        return {}

    # -- what a kind adds ----------------------------------------------------------------

    def check(self, params: dict[str, Any]) -> None:
        """Create-time checks (admission); raise an AWS error to refuse."""
        raise NotImplementedError

    def summary(self, job: Resource) -> dict[str, Any]:
        raise NotImplementedError

    def describe_job(
        self, job: Resource, hist: builtins.list[HistoryEntry], now: datetime
    ) -> dict[str, Any]:
        raise NotImplementedError

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
                self.kind,
                name,
                old.value,
                new.value,
                message=message or T.MESSAGES[new],
                now=now,
                secondary_status=new.value,
            )
            if extra:
                resources.update_extra(conn, self.kind, name, extra, now)

    def update(self, name: str, changes: dict[str, Any]) -> None:
        """Merge runtime state into the job (no status change)."""
        with self._db.begin() as conn:
            resources.update_extra(conn, self.kind, name, changes, self._clock.now())

    def active(self) -> builtins.list[Resource]:
        """Jobs that are not finished, oldest first: the scheduler's work list."""
        live = tuple(s.value for s in T.Secondary if not T.primary(s).is_terminal())
        with self._db.read() as conn:
            rows = resources.list_resources(
                conn,
                self.kind,
                resources.ResourceFilter(
                    statuses=live, sort_by="creation_time", descending=False, limit=10_000
                ),
            )
        return rows
