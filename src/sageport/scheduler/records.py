"""What the scheduler needs of the services, declared here so that it never imports them.

The services own the records (jobs, endpoints, models) and the log groups; the scheduler only
reads its work list, moves statuses with compare-and-set and writes runtime state. Wiring
hands it the services, which satisfy these protocols structurally: ``services.jobs.JobService``
is a :class:`JobRecords`, ``services.endpoints.EndpointService`` an :class:`EndpointRecords`,
``services.logs.LogService`` a :class:`LogSink`, ``services.models.ModelService`` a
:class:`ModelLookup`. Tests hand it fakes or the same services over a throw-away database.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from sageport.domain.endpoint import EndpointStatus
from sageport.domain.jobs import JobMachine
from sageport.domain.runtime import EndpointRuntime, JobRuntime
from sageport.store.resources import Resource

S = TypeVar("S", bound=enum.StrEnum)

JobChange = Callable[[JobRuntime], JobRuntime]
"""A change to a job's runtime state: the stored one in, the new one out."""
EndpointChange = Callable[[EndpointRuntime], EndpointRuntime]
"""A change to an endpoint's runtime state: the stored one in, the new one out."""


class JobRecords(Protocol[S]):
    """One kind of job's records. ``move`` is a compare-and-set on the status (it raises
    ``store.errors.StatusConflict`` when the job is no longer at ``old``); ``update`` changes
    the runtime state alone, re-applied after a lost race."""

    @property
    def machine(self) -> JobMachine[S]: ...

    def get(self, name: str) -> Resource: ...
    def active(self) -> list[Resource]:
        """Jobs that are not finished, oldest first: the scheduler's work list."""
        ...

    def status_of(self, job: Resource) -> S: ...
    def move(
        self,
        name: str,
        old: S,
        new: S,
        message: str | None = None,
        *,
        runtime: JobChange | None = None,
    ) -> None: ...
    def update(self, name: str, change: JobChange) -> None: ...


class EndpointRecords(Protocol):
    """The endpoints' records and their configurations (read-only here)."""

    def get(self, name: str) -> Resource: ...
    def all(self) -> list[Resource]: ...
    def config(self, name: str) -> Resource: ...
    def status_of(self, endpoint: Resource) -> EndpointStatus: ...
    def move(
        self,
        name: str,
        old: EndpointStatus,
        new: EndpointStatus,
        message: str | None = None,
        *,
        runtime: EndpointChange | None = None,
    ) -> None: ...
    def update_runtime(self, name: str, change: EndpointChange) -> None: ...
    def remove(self, name: str) -> None:
        """Delete the record: the last step of DeleteEndpoint, once everything is stopped."""
        ...


class LogSink(Protocol):
    """CloudWatch Logs as the scheduler writes it: append events, read a stream's tail."""

    def put_events(self, group: str, stream: str, events: Sequence[tuple[int, str]]) -> None:
        """Append (epoch ms, message) events, creating the group and stream as needed."""
        ...

    def tail(self, group: str, stream: str, lines: int) -> list[str]: ...


class ModelLookup(Protocol):
    """CreateModel's records: an endpoint's instances read their model's container."""

    def get(self, name: str) -> Resource: ...
