"""The job runner's life cycle over a fake backend: the steps that race, and stops mid-step.

The runner is driven tick by tick, as the scheduler loop drives it, on a real database and a
real object store; only the processes are fake (``FakeBackend``), and the job kind is the
training kind with hooks: staging can be held at a gate or fail, and storing outputs is counted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sageport.backends.base import ExitInfo
from sageport.backends.fake import FakeBackend
from sageport.catalog import load_catalog
from sageport.clock import FakeClock
from sageport.scheduler.allocator import Allocator
from sageport.scheduler.hosts import JobContext
from sageport.scheduler.jobs import JobRunner, RunnerConfig
from sageport.scheduler.training import TrainingKind
from sageport.services.admission import Admission
from sageport.services.keys import AccessKeys
from sageport.services.logs import LogService
from sageport.services.training import TrainingJobService
from sageport.settings import Settings
from sageport.storage.local import LocalObjectStore
from sageport.storage.objectstore import ObjectStore
from sageport.store.database import Database

IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.1.0-cpu-py310"


class GatedKind(TrainingKind):
    """Training, except that staging waits for ``gate`` (or raises ``stage_error``, counting
    the attempts) and ``store_outputs`` is counted."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.gate.set()
        self.staged: list[str] = []
        self.stored = 0
        self.stage_error: Exception | None = None
        self.stage_attempts = 0

    async def stage(self, ctx: JobContext, host: str, store: ObjectStore) -> tuple[int, int]:
        self.stage_attempts += 1
        if self.stage_error is not None:
            raise self.stage_error
        await self.gate.wait()
        self.staged.append(host)
        return await super().stage(ctx, host, store)

    async def store_outputs(
        self, ctx: JobContext, store: ObjectStore, hosts: Sequence[str]
    ) -> dict[str, Any]:
        self.stored += 1
        await asyncio.sleep(0.05)  # an upload takes a while: other ticks run meanwhile
        return await super().store_outputs(ctx, store, hosts)


@dataclass
class Rig:
    runner: JobRunner
    jobs: TrainingJobService
    backend: FakeBackend
    kind: GatedKind
    clock: FakeClock

    def create(self, name: str, **overrides: Any) -> None:
        request: dict[str, Any] = {
            "TrainingJobName": name,
            "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
            "RoleArn": "arn:aws:iam::000000000000:role/R",
            "HyperParameters": {"sagemaker_program": '"train.py"'},
            "OutputDataConfig": {"S3OutputPath": "s3://out/jobs"},
            "ResourceConfig": {
                "InstanceType": "ml.m5.large",
                "InstanceCount": 1,
                "VolumeSizeInGB": 1,
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        }
        request.update(overrides)
        self.jobs.create(request)

    def status(self, name: str) -> str:
        return str(self.jobs.describe({"TrainingJobName": name})["SecondaryStatus"])

    async def ticks(self, n: int) -> None:
        for _ in range(n):
            await self.runner.tick()
            await asyncio.sleep(0.01)

    async def until(self, name: str, status: str, limit: int = 200) -> None:
        for _ in range(limit):
            if self.status(name) == status:
                return
            await self.ticks(1)
        raise AssertionError(f"{name} is {self.status(name)}, not {status}")


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    settings = Settings(data_dir=tmp_path)
    db = Database(settings.db_url)
    db.create_all()
    clock = FakeClock()
    catalog = load_catalog()
    allocator = Allocator([], 8.0, 64.0)
    jobs = TrainingJobService(db, clock, settings, Admission(catalog, allocator, {}))
    backend = FakeBackend(exits=[ExitInfo(0, None, 0.0)])
    kind = GatedKind()
    store = LocalObjectStore(settings.objects_dir)
    asyncio.run(store.create_bucket("out", "us-east-1"))
    config = RunnerConfig(
        jobs_dir=settings.jobs_dir,
        endpoint_url="http://127.0.0.1:1",
        region="us-east-1",
        keys=AccessKeys([], db, clock),
        images={},
        sandbox=True,
        sandbox_note="",
        stop_grace_s=1.0,
        server_env={},
    )
    runner = JobRunner(
        kind, jobs, store, LogService(db, clock), backend, allocator, catalog, clock, config
    )
    yield Rig(runner, jobs, backend, kind, clock)
    db.close()


def test_a_progress_step_ending_does_not_forget_the_upload(rig: Rig) -> None:
    async def run() -> None:
        rig.create("race")
        await rig.until("race", "Completed")
        await rig.ticks(5)

    asyncio.run(run())
    # The host exits before the first watch, so the watch starts a progress step and the
    # upload together; the progress step ends first. One upload, one end, no conflict.
    assert rig.kind.stored == 1
    statuses = [
        t["Status"]
        for t in rig.jobs.describe({"TrainingJobName": "race"})["SecondaryStatusTransitions"]
    ]
    assert statuses == ["Starting", "Downloading", "Training", "Uploading", "Completed"]


def test_stop_during_staging_stops_without_waiting_for_it(rig: Rig) -> None:
    async def run() -> None:
        rig.kind.gate.clear()  # staging never finishes on its own
        rig.create("stop-staging")
        await rig.until("stop-staging", "Downloading")
        await rig.ticks(3)
        rig.jobs.stop({"TrainingJobName": "stop-staging"})
        await rig.until("stop-staging", "Stopped", limit=10)

    asyncio.run(run())
    assert rig.backend.hosts == {}  # no process was ever started
    assert rig.kind.staged == []
    assert "stop-staging" not in rig.runner.allocator.holders()  # its resources are free


def test_max_runtime_counts_staging_time(rig: Rig) -> None:
    async def run() -> None:
        rig.kind.gate.clear()
        rig.create("slow-staging", StoppingCondition={"MaxRuntimeInSeconds": 60})
        await rig.until("slow-staging", "Downloading")
        await rig.ticks(2)
        assert rig.status("slow-staging") == "Downloading"
        rig.clock.advance(61)
        await rig.until("slow-staging", "MaxRuntimeExceeded", limit=10)

    asyncio.run(run())
    job = rig.jobs.describe({"TrainingJobName": "slow-staging"})
    assert job["TrainingJobStatus"] == "Stopped"
    assert "Stopping" in [t["Status"] for t in job["SecondaryStatusTransitions"]]
    assert job["BillableTimeInSeconds"] == 61
    assert rig.backend.hosts == {}


def test_an_unexpected_error_while_staging_fails_the_job_once(rig: Rig) -> None:
    """A sageport bug (here a TypeError, as an older Python's tarfile gave) must end the job
    with a reason, not leave it Downloading and retry the same failure on every tick."""

    async def run() -> None:
        rig.kind.stage_error = TypeError("extractall() got an unexpected keyword argument")
        rig.create("bug")
        await rig.until("bug", "Failed")
        await rig.ticks(5)

    asyncio.run(run())
    assert rig.kind.stage_attempts == 1
    job = rig.jobs.describe({"TrainingJobName": "bug"})
    assert job["FailureReason"].startswith("InternalServerError: sageport failed while preparing")
    assert "TypeError: extractall() got an unexpected keyword argument" in job["FailureReason"]
    assert "bug" not in rig.runner.allocator.holders()
