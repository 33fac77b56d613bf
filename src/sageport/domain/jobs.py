"""What the status machine of every kind of job names: its steps, its table, what clients see.

Training and processing jobs are carried by one runner (``sageport.scheduler.jobs``) through
the same steps — queued, staging, running, uploading, stopping, and the ends — but each kind
stores statuses of its own (``domain.training``, ``domain.processing``) and shows clients its
own public status. A :class:`JobMachine` names, for one kind, which stored status is each
step, so the runner and the job service never spell a kind's statuses themselves.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from sageport.domain.status import TransitionTable

S = TypeVar("S", bound=enum.StrEnum)
"""A kind's stored status."""


@dataclass(frozen=True)
class JobMachine(Generic[S]):
    """One kind's stored statuses, their table, their messages and their public status."""

    kind: type[S]
    table: TransitionTable[S]
    messages: Mapping[S, str]
    """The status message recorded with each status (and its history row)."""
    public: Mapping[S, str]
    """The status a client sees (``TrainingJobStatus``, ``ProcessingJobStatus``) per stored one."""
    starting: S
    """Created; waits in the queue."""
    downloading: S
    """Resources granted; host folders and data being staged."""
    running: S
    """The user's processes run."""
    uploading: S
    """Every process exited; outputs being stored."""
    stopping: S
    """A stop (the API, or ``MaxRuntimeInSeconds``) is being carried out."""
    completed: S
    failed: S
    stopped: S
    max_runtime_exceeded: S
    """Stopped by ``MaxRuntimeInSeconds``."""

    def __post_init__(self) -> None:
        if set(self.public) != set(self.kind) or set(self.messages) != set(self.kind):
            raise ValueError(f"{self.kind.__name__}: every status needs a public one and a message")
        if self.table.statuses != set(self.kind):
            raise ValueError(f"{self.kind.__name__}: the table must have a row per status")

    def of(self, stored: str | None) -> S:
        """A stored status; every job has one from the moment it is created."""
        if stored is None:
            raise ValueError(f"a {self.kind.__name__} job without a status")
        return self.kind(stored)

    def stored_as(self, public: str) -> tuple[S, ...]:
        """The stored statuses that show as ``public`` (for ``StatusEquals`` filters)."""
        return tuple(s for s in self.kind if self.public[s] == public)

    def live(self) -> tuple[S, ...]:
        """The statuses a job is not finished in (queued and Stopping ones included)."""
        return tuple(s for s in self.kind if not self.table.is_terminal(s))
