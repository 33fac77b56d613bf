"""What every step of a job's life shares: its kind, the runner's settings and collaborators.

:class:`~sageport.scheduler.jobs.JobRunner` decides a job's life; its steps do the work:
admitting and starting a job (``job_start``: the queue, staging, launch), watching and
stopping it (``job_watch``: exits, a failed instance, ``MaxRuntimeInSeconds``, terminating),
and uploading its outputs and judging its end (``job_finish``). Log shipping (``job_logs``)
is a collaborator they share. Each step is a small class over one :class:`JobParts`, built
once per runner, and returns what it found (``job_outcomes``). The parts live here, below all
of them, so that the steps import them without importing the runner or each other.

The records and the log groups are the services', seen through the protocols the scheduler
declares (``scheduler.records``): this layer never imports ``sageport.services``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sageport.backends.base import DEFAULT_MAX_LOG_BYTES, Backend, HostHandle, LaunchSpec
from sageport.catalog import Catalog
from sageport.clock import Clock
from sageport.domain.hosts import HostRequest
from sageport.domain.keys import KeyIssuer, KeyPair
from sageport.domain.runtime import JobRuntime, StoredOutputs
from sageport.runtime.process_env import ServerAccess
from sageport.scheduler.allocator import Allocator, HostGrant
from sageport.scheduler.hosts import JobContext
from sageport.scheduler.job_tasks import JobTasks
from sageport.scheduler.ports import PortBook
from sageport.scheduler.queue import JobQueue
from sageport.scheduler.records import JobRecords, LogSink
from sageport.storage.objectstore import ObjectStore
from sageport.store.resources import Resource


@dataclass(frozen=True)
class RunnerConfig:
    jobs_dir: Path
    endpoint_url: str
    """Where the jobs' processes reach this server (``runtime.process_env``)."""
    region: str
    keys: KeyIssuer
    """Mints each job's own access key and revokes it at the end; never the server's."""
    images: Mapping[str, str]
    sandbox: bool
    sandbox_note: str
    stop_grace_s: float
    server_env: Mapping[str, str]
    max_log_bytes: int = DEFAULT_MAX_LOG_BYTES


class JobKind(Protocol):
    """What one kind of job does at each step; the runner does the rest."""

    label: str
    folder: str
    log_group: str

    def hosts(self, catalog: Catalog, spec: Mapping[str, Any]) -> list[HostRequest]: ...
    def host_names(self, spec: Mapping[str, Any]) -> list[str]: ...
    async def stage(self, ctx: JobContext, host: str, objects: ObjectStore) -> tuple[int, int]: ...
    def launch(
        self, ctx: JobContext, host: str, grant: HostGrant
    ) -> tuple[LaunchSpec, list[str]]: ...
    async def progress(
        self, ctx: JobContext, objects: ObjectStore, seen: dict[str, list[float]]
    ) -> None:
        """Work while the job runs (Continuous outputs); ``seen`` persists with the job."""
        ...

    async def store_outputs(
        self, ctx: JobContext, objects: ObjectStore, hosts: Sequence[str]
    ) -> StoredOutputs: ...
    def metric_definitions(self, spec: Mapping[str, Any]) -> list[dict[str, str]]: ...
    def no_sandbox_notes(self, why: str, host_dir: Path) -> tuple[str, str]:
        """(log line, status-message suffix) for a job that runs without a sandbox: what its
        code gets instead of /opt/ml, which differs between kinds."""
        ...


@dataclass(frozen=True)
class JobParts:
    """The collaborators of one runner (one kind of job), shared by its steps."""

    kind: JobKind
    jobs: JobRecords[Any]
    """The kind's job records; ``jobs.machine`` names its status for each step."""
    objects: ObjectStore
    """Where inputs come from and outputs go (the S3 API's store)."""
    logs: LogSink
    backend: Backend
    allocator: Allocator
    catalog: Catalog
    clock: Clock
    config: RunnerConfig
    queue: JobQueue
    """One FIFO over every kind of job that waits (training and processing share it)."""
    tasks: JobTasks
    ports: PortBook
    """Ports of distributed launchers (torchrun's master, TF workers), held until the end."""

    def job_dir(self, name: str) -> Path:
        return job_dir(self.config, self.kind, name)

    def context(self, job: Resource, key: KeyPair | None = None) -> JobContext:
        """What the job's steps share. Only the launch passes the job's ``key``: a context
        built without one (to stage, watch, upload) carries an empty key, which no process
        gets and the server would refuse."""
        return JobContext(
            name=job.name,
            arn=job.arn,
            spec=job.spec,
            job_dir=self.job_dir(job.name),
            sandbox=self.sandbox(job),
            access=ServerAccess(
                self.config.endpoint_url,
                key.access_key_id if key else "",
                key.secret_access_key if key else "",
                self.config.region,
            ),
            images=self.config.images,
            stop_grace_s=self.config.stop_grace_s,
            server_env=self.config.server_env,
            max_log_bytes=self.config.max_log_bytes,
            sandbox_note=self.config.sandbox_note,
            ports=self.ports,
        )

    def sandbox(self, job: Resource) -> bool:
        """Whether the job runs sandboxed: fixed at admission, else the server's setting."""
        stored = JobRuntime.from_json(job.state).sandbox
        return self.config.sandbox if stored is None else stored

    def handles(self, job: Resource) -> dict[str, HostHandle]:
        """The job's started processes, by host (empty before any started)."""
        return {
            h: HostHandle.from_json(v) for h, v in JobRuntime.from_json(job.state).hosts.items()
        }

    def now(self) -> str:
        """The clock's time as the job record keeps it (``started_at``, ``ended_at``, ...)."""
        return self.clock.now().isoformat()

    def release(self, job: Resource) -> None:
        """Give back what ``job`` held: its hosts' resources, its launcher ports and its
        access key (revoked: the next request signed with it is refused)."""
        self.allocator.release(job.name)
        self.ports.release(job.name)
        self.config.keys.revoke(job.arn)


def job_dir(config: RunnerConfig, kind: JobKind, name: str) -> Path:
    """A job's host folders live here, one per host (``algo-1``, ...)."""
    return config.jobs_dir / kind.folder / name
