"""The life cycle every job kind shares: create, describe, list, stop, delete, and moves.

Create stores the validated request as the job's spec with its kind's first status
(``Starting``) and returns at once; the scheduler then moves the job along (``move``,
``update``). Each kind has its own stored statuses and public status, named by its
:class:`~sageport.domain.jobs.JobMachine` (``domain.training``, ``domain.processing``); the
moves are the one ``move`` of ``services.records``. Stop and Delete check their preconditions
here and refuse in SageMaker's words. Messages are real SageMaker's where the SDK or users
rely on them ("Requested resource not found.", the duplicate-name wording).
"""

from __future__ import annotations

import builtins
import enum
from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar, TypeVar

from sageport.clock import Clock
from sageport.domain import training as T
from sageport.domain.arns import sagemaker_arn
from sageport.domain.jobs import JobMachine
from sageport.domain.runtime import JobRuntime
from sageport.errors import ResourceInUse, ValidationException
from sageport.services import listing, quotas
from sageport.services.admission import Admission
from sageport.services.records import StatusRecords, update_state
from sageport.services.tags import tag_pairs
from sageport.settings import Settings
from sageport.store import resources, tags
from sageport.store.database import Connection, Database
from sageport.store.errors import DuplicateName, StatusConflict
from sageport.store.resources import HistoryEntry, Resource


def not_found() -> ValidationException:
    return ValidationException("Requested resource not found.")


def secondary_of(job: Resource) -> T.Secondary:
    """A training job's stored status; every job has one from the moment it is created."""
    return T.MACHINE.of(job.status)


S = TypeVar("S", bound=enum.StrEnum)

RuntimeChange = Callable[[JobRuntime], JobRuntime]
"""A change to a job's runtime state: the stored one in, the new one out (``dataclasses.replace``)."""


class JobService(StatusRecords[S]):
    """Use cases on one kind of job; ``wake`` tells the scheduler there is news.

    Subclasses name the kind (its API field names, its statuses, its create-time checks, its
    Describe); the life cycle — stored status, compare-and-set moves, history — is shared.
    """

    machine: JobMachine[S]

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
        super().__init__(
            db, clock, self.kind, self.machine.table, self.machine.messages, with_secondary=True
        )
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
                    status=self.machine.starting,
                    status_message=self.machine.messages[self.machine.starting],
                    secondary_status=self.machine.starting,
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
            stored = self.machine.stored_as(status)
            if not stored:
                # a status of the model sageport never gives a job (``Deleting``: a delete
                # here is immediate): no job is in it
                return {self.summaries_field: []}
            flt = listing.replace_statuses(flt, tuple(s.value for s in stored))
        return listing.answer(self._db, self.kind, flt, self.summary, self.summaries_field)

    def status_of(self, job: Resource) -> S:
        """A job's stored status, as its kind's enum."""
        return self.machine.of(job.status)

    def stop(self, params: dict[str, Any]) -> dict[str, Any]:
        """SageMaker stops a job that is InProgress, at any step (Uploading too: the upload
        finishes and the job ends Stopped); any other status is a ValidationException."""
        name = params[self.name_field]
        m = self.machine
        for _ in range(5):  # compare-and-set: retry if the scheduler moved the job meanwhile
            job = self.get(name)
            current = self.status_of(job)
            if not m.table.can(current, m.stopping):
                raise ValidationException(
                    f"The request was rejected because the {self.label} is in status "
                    f"{m.public[current]}."
                )
            try:
                self.move(name, current, m.stopping)
            except StatusConflict:
                continue
            self.wake()
            return {}
        raise ValidationException(f"The {self.label} changed status during the stop; retry.")

    def delete(self, params: dict[str, Any]) -> dict[str, Any]:
        """Only a finished job can be deleted (InProgress and Stopping ones cannot)."""
        name = params[self.name_field]
        job = self.get(name)
        current = self.status_of(job)
        if not self.machine.table.is_terminal(current):
            raise ValidationException(
                f"{self.label.capitalize()} {name} is in status {self.machine.public[current]}; "
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

    # -- used by the scheduler (and ``move``, from StatusRecords) -------------------------

    @staticmethod
    def runtime(job: Resource) -> JobRuntime:
        """The job's typed runtime state, as stored with it."""
        return JobRuntime.from_json(job.state)

    def update(self, name: str, change: RuntimeChange) -> None:
        """Apply ``change`` to the stored runtime state (no status change; see
        ``records.update_state``: compare-and-set, re-applied after a lost race)."""
        update_state(
            self._db,
            self._clock,
            self.kind,
            name,
            lambda stored: change(JobRuntime.from_json(stored)).to_json(),
        )

    def move(
        self,
        name: str,
        old: S,
        new: S,
        message: str | None = None,
        check: Callable[[Connection], None] | None = None,
        *,
        state: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        runtime: RuntimeChange | None = None,
    ) -> None:
        """``StatusRecords.move``; ``runtime`` changes the typed state in the same transaction."""
        if runtime is not None:
            change = runtime

            def state(stored: dict[str, Any]) -> dict[str, Any]:
                return change(JobRuntime.from_json(stored)).to_json()

        super().move(name, old, new, message, check, state=state)

    def active(self) -> builtins.list[Resource]:
        """Jobs that are not finished, oldest first: the scheduler's work list."""
        live = tuple(s.value for s in self.machine.live())
        with self._db.read() as conn:
            rows = resources.list_resources(
                conn,
                self.kind,
                resources.ResourceFilter(
                    statuses=live, sort_by="creation_time", descending=False, limit=10_000
                ),
            )
        return rows
