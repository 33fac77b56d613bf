"""One FIFO admission order over every job that waits for resources, whatever its kind.

Training and processing jobs have runners of their own (``scheduler.jobs``), but they share
the machine, so they share one queue: a job may take resources only when no job created
before it, of any kind, is still waiting. The first job that does not fit blocks every later
one (head-of-line), so a stream of small jobs can never starve a big one.

Each runner registers a *source*, a function listing its jobs that wait (their creation
times come from the store). Before it admits anything, a runner calls :meth:`JobQueue.refresh`
with its own waiting jobs; the queue asks the other sources for theirs, so the order is exact
even when the other runner has not ticked yet. Nothing is kept that the store does not
already say: after a restart the first refresh rebuilds the queue.

The endpoint runner allocates on its own path; it may consult :meth:`JobQueue.head` to wait
behind queued jobs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, order=True)
class QueuedJob:
    """A job waiting for resources, ordered by creation time (then kind and name)."""

    created_at: datetime
    label: str
    """The kind's label, e.g. ``training job``."""
    name: str

    def describe(self) -> str:
        return f"{self.label} {self.name}"


WaitingSource = Callable[[], Iterable[QueuedJob]]


class JobQueue:
    """The waiting jobs of every registered kind, oldest first."""

    def __init__(self) -> None:
        self._sources: dict[str, WaitingSource] = {}
        self._waiting: list[QueuedJob] = []

    def register(self, label: str, source: WaitingSource) -> None:
        """``source`` lists the jobs of kind ``label`` that wait for resources now."""
        self._sources[label] = source

    def refresh(self, label: str | None = None, waiting: Iterable[QueuedJob] = ()) -> None:
        """Rebuild the order: ``waiting`` for kind ``label`` (already known to the caller),
        every other registered kind from its source."""
        entries = list(waiting) if label is not None else []
        for kind, source in self._sources.items():
            if kind != label:
                entries.extend(source())
        self._waiting = sorted(set(entries))

    def head(self) -> QueuedJob | None:
        """The job first in line, or None when nothing waits."""
        return self._waiting[0] if self._waiting else None

    def ahead_of(self, label: str, name: str) -> QueuedJob | None:
        """The job that must start before this one (the head), or None if this one is next."""
        head = self.head()
        if head is None or (head.label, head.name) == (label, name):
            return None
        return head

    def leave(self, label: str, name: str) -> None:
        """The job started, failed or was stopped: it no longer waits."""
        self._waiting = [q for q in self._waiting if (q.label, q.name) != (label, name)]

    def waiting(self) -> list[QueuedJob]:
        return list(self._waiting)
