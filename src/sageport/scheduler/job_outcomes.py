"""What a step of a job's life found: the values the runner decides on.

Each step (``job_start``, ``job_watch``, ``job_finish``) does its work and returns one of
these; it never moves the job's status and never calls another step. The runner
(:class:`~sageport.scheduler.jobs.JobRunner`) reads the value and decides what comes next:
the move, the next step, or nothing (wait for the next tick). An outcome that changes the
stored runtime state carries the change (``apply``), so the runner writes it with the move.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from sageport.backends.base import ExitInfo
from sageport.domain.runtime import JobRuntime
from sageport.scheduler.allocator import HostGrant
from sageport.scheduler.hosts import JobContext


@dataclass(frozen=True)
class Failed:
    """The job cannot go on: ``reason`` is its FailureReason, ``at`` the status it fails from."""

    reason: str
    at: enum.StrEnum


@dataclass(frozen=True)
class Waiting:
    """Not admitted yet: another job is ahead in the queue, or the resources are busy
    (``message``, also kept as the job's queue message)."""

    message: str


@dataclass(frozen=True)
class Admitted:
    """The job holds its grants (one per host, in host order)."""

    grants: list[HostGrant]
    sandbox: bool
    admitted_at: str
    warnings: list[str] = field(default_factory=list)
    """CPU-fallback notes for the status message (hosts that got no GPU)."""

    def apply(self, r: JobRuntime) -> JobRuntime:
        return replace(
            r,
            grants=[g.to_json() for g in self.grants],
            sandbox=self.sandbox,
            admitted_at=self.admitted_at,
            gpu_warnings=self.warnings or r.gpu_warnings,
        )


@dataclass(frozen=True)
class Staged:
    """Every host's folder and data are in place; what the launch needs of the staging."""

    context: JobContext
    """With the job's own key: the launch hands it to the processes."""
    hosts: list[str]
    streams: dict[str, str]
    """Host → its log stream (``<job>/<host>-<epoch seconds>``)."""


@dataclass(frozen=True)
class Launched:
    """Every host's process started: its handles and log streams, to store before the move."""

    handles: dict[str, Any]
    streams: dict[str, str]
    started_at: str
    message: str
    """The running status's message (with the no-sandbox note, when there is none)."""

    def apply(self, r: JobRuntime) -> JobRuntime:
        return replace(
            r,
            hosts=self.handles,
            log_streams=self.streams,
            log_offsets={},
            started_at=self.started_at,
        )


@dataclass(frozen=True)
class StillRunning:
    """Some host still runs (or its log is not all shipped yet), and none failed anew."""


@dataclass(frozen=True)
class HostFailed:
    """``host`` failed while others still run, and they have not been told to stop yet."""

    host: str
    exit: ExitInfo
    exits: Mapping[str, ExitInfo | None]


@dataclass(frozen=True)
class AllExited:
    """Every host has exited and its log is shipped."""

    exits: Mapping[str, ExitInfo]

    def apply(self, r: JobRuntime) -> JobRuntime:
        return replace(r, exits={h: e.to_json() for h, e in self.exits.items()})


@dataclass(frozen=True)
class Completed:
    """Every host succeeded and the outputs are stored."""


Watched = StillRunning | HostFailed | AllExited
"""What one look at a started job's hosts finds."""
