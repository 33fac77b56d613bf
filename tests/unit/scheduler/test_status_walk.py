"""Every edge of the real job status tables, taken by the code that takes it in production.

Each scenario drives one job through the runner (``JobRunner.tick``, as the scheduler loop
does) and the job service (``stop``, as the API does) over the fake backend and the fake
clock, for training and for processing jobs. Its path is read back from the store's history
and compared with the path the scenario declares; the union of the paths must be exactly the
kind's table, so an edge that no code takes (or a move the table lacks) fails here.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sageport.backends.base import ExitInfo
from sageport.backends.fake import FakeBackend
from sageport.catalog import Catalog, load_catalog
from sageport.clock import FakeClock
from sageport.domain import processing, training
from sageport.domain.hosts import HostRequest
from sageport.domain.jobs import JobMachine
from sageport.errors import ValidationException
from sageport.scheduler.allocator import Allocator
from sageport.scheduler.hosts import JobContext
from sageport.scheduler.jobs import JobRunner, RunnerConfig
from sageport.scheduler.processing import ProcessingKind
from sageport.scheduler.training import TrainingKind
from sageport.services.admission import Admission
from sageport.services.jobs import JobService
from sageport.services.keys import AccessKeys
from sageport.services.logs import LogService
from sageport.services.processing import ProcessingJobService
from sageport.services.training import TrainingJobService
from sageport.settings import Settings
from sageport.storage.local import LocalObjectStore
from sageport.storage.objectstore import ObjectStore
from sageport.store import resources
from sageport.store.database import Database

IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.1.0-cpu-py310"
ROLE = "arn:aws:iam::000000000000:role/R"


class Hooks:
    """What a scenario controls in a kind: staging held or failing, the upload held, and
    hosts that can never fit."""

    def __init__(self) -> None:
        self.stage_gate = asyncio.Event()
        self.stage_gate.set()
        self.upload_gate = asyncio.Event()
        self.upload_gate.set()
        self.stage_error: Exception | None = None
        self.never_fits = False


def hooked(base: type[Any]) -> type[Any]:
    class Hooked(base):  # type: ignore[misc]
        def __init__(self) -> None:
            self.hooks = Hooks()

        def hosts(self, catalog: Catalog, spec: Any) -> list[HostRequest]:
            if self.hooks.never_fits:
                raise ValidationException("the machine changed: no such instance type here")
            return list(super().hosts(catalog, spec))

        async def stage(self, ctx: JobContext, host: str, store: ObjectStore) -> tuple[int, int]:
            if self.hooks.stage_error is not None:
                raise self.hooks.stage_error
            await self.hooks.stage_gate.wait()
            staged: tuple[int, int] = await super().stage(ctx, host, store)
            return staged

        async def store_outputs(
            self, ctx: JobContext, store: ObjectStore, hosts: Sequence[str]
        ) -> Any:
            await self.hooks.upload_gate.wait()
            return await super().store_outputs(ctx, store, hosts)

    return Hooked


@dataclass(frozen=True)
class Kind:
    label: str
    service: type[JobService[Any]]
    job_kind: type[Any]
    machine: JobMachine[Any]

    def request(self, name: str, max_runtime: int) -> dict[str, Any]:
        stopping = {"MaxRuntimeInSeconds": max_runtime}
        if self.label == "training":
            return {
                "TrainingJobName": name,
                "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
                "RoleArn": ROLE,
                "HyperParameters": {"sagemaker_program": '"train.py"'},
                "OutputDataConfig": {"S3OutputPath": "s3://out/jobs"},
                "ResourceConfig": {
                    "InstanceType": "ml.m5.large",
                    "InstanceCount": 1,
                    "VolumeSizeInGB": 1,
                },
                "StoppingCondition": stopping,
            }
        return {
            "ProcessingJobName": name,
            "RoleArn": ROLE,
            "AppSpecification": {"ImageUri": IMAGE, "ContainerEntrypoint": ["python3", "p.py"]},
            "ProcessingResources": {
                "ClusterConfig": {
                    "InstanceCount": 1,
                    "InstanceType": "ml.m5.large",
                    "VolumeSizeInGB": 1,
                }
            },
            "StoppingCondition": stopping,
        }


KINDS = {
    "training": Kind("training", TrainingJobService, hooked(TrainingKind), training.MACHINE),
    "processing": Kind(
        "processing", ProcessingJobService, hooked(ProcessingKind), processing.MACHINE
    ),
}


@dataclass
class Rig:
    kind: Kind
    runner: JobRunner
    jobs: JobService[Any]
    hooks: Hooks
    clock: FakeClock
    db: Database

    def status(self) -> str:
        return str(self.jobs.get("job").status)

    def stop(self) -> None:
        self.jobs.stop({self.jobs.name_field: "job"})

    async def until(self, role: str, limit: int = 200) -> None:
        wanted = str(getattr(self.kind.machine, role))
        for _ in range(limit):
            if self.status() == wanted:
                return
            await self.runner.tick()
            await asyncio.sleep(0.005)
        raise AssertionError(f"the job is {self.status()}, not {wanted}")

    def path(self) -> list[str]:
        """The job's statuses, in order, as step names of its machine."""
        roles = {str(getattr(self.kind.machine, r)): r for r in ROLES}
        with self.db.read() as conn:
            return [roles[str(h.status)] for h in resources.history(conn, self.jobs.kind, "job")]


ROLES = (
    "starting",
    "downloading",
    "running",
    "uploading",
    "stopping",
    "completed",
    "failed",
    "stopped",
    "max_runtime_exceeded",
)


def make_rig(kind: Kind, tmp: Path, exits: list[ExitInfo | None]) -> Rig:
    settings = Settings(data_dir=tmp)
    db = Database(settings.db_url)
    db.create_all()
    clock = FakeClock()
    catalog = load_catalog()
    allocator = Allocator([], 8.0, 64.0)
    jobs = kind.service(db, clock, settings, Admission(catalog, allocator, {}))
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
    job_kind = kind.job_kind()
    runner = JobRunner(
        job_kind,
        jobs,
        store,
        LogService(db, clock),
        FakeBackend(exits=exits),
        allocator,
        catalog,
        clock,
        config,
    )
    return Rig(kind, runner, jobs, job_kind.hooks, clock, db)


# -- the scenarios: what each does, and the path it must take --------------------------------

Step = Callable[[Rig], Awaitable[None]]


async def completes(rig: Rig) -> None:
    await rig.until("completed")


async def fails(rig: Rig) -> None:
    await rig.until("failed")


async def stopped_while_queued(rig: Rig) -> None:
    rig.stop()  # before the first tick: it is still Starting
    await rig.until("stopped")


async def never_fits(rig: Rig) -> None:
    rig.hooks.never_fits = True
    await rig.until("failed")


async def staging_fails(rig: Rig) -> None:
    rig.hooks.stage_error = OSError("the input could not be read")
    await rig.until("failed")


async def stopped_while_staging(rig: Rig) -> None:
    rig.hooks.stage_gate.clear()
    await rig.until("downloading")
    rig.stop()
    await rig.until("stopped")


async def staging_past_max_runtime(rig: Rig) -> None:
    rig.hooks.stage_gate.clear()
    await rig.until("downloading")
    rig.clock.advance(61)
    await rig.until("max_runtime_exceeded")


async def stopped_while_running(rig: Rig) -> None:
    await rig.until("running")
    rig.stop()
    await rig.until("stopped")


async def running_past_max_runtime(rig: Rig) -> None:
    await rig.until("running")
    rig.clock.advance(61)
    await rig.until("max_runtime_exceeded")


async def stopped_while_uploading(rig: Rig) -> None:
    rig.hooks.upload_gate.clear()
    await rig.until("uploading")
    rig.stop()  # accepted, as SageMaker accepts a stop while InProgress
    assert rig.status() == str(rig.kind.machine.stopping)
    for _ in range(5):  # the upload is under way: nothing ends meanwhile
        await rig.runner.tick()
        await asyncio.sleep(0.005)
    assert rig.status() == str(rig.kind.machine.stopping)
    rig.hooks.upload_gate.set()
    await rig.until("stopped")


EXIT_0: list[ExitInfo | None] = [ExitInfo(0, None, 0.0)]
RUNS: list[ExitInfo | None] = [None]  # runs until it is stopped
SCENARIOS: dict[str, tuple[Step, list[ExitInfo | None], list[str]]] = {
    "completes": (
        completes,
        EXIT_0,
        ["starting", "downloading", "running", "uploading", "completed"],
    ),
    "fails": (
        fails,
        [ExitInfo(1, None, 0.0)],
        ["starting", "downloading", "running", "uploading", "failed"],
    ),
    "stopped_while_queued": (stopped_while_queued, EXIT_0, ["starting", "stopping", "stopped"]),
    "never_fits": (never_fits, EXIT_0, ["starting", "failed"]),
    "staging_fails": (staging_fails, EXIT_0, ["starting", "downloading", "failed"]),
    "stopped_while_staging": (
        stopped_while_staging,
        EXIT_0,
        ["starting", "downloading", "stopping", "stopped"],
    ),
    "staging_past_max_runtime": (
        staging_past_max_runtime,
        EXIT_0,
        ["starting", "downloading", "stopping", "max_runtime_exceeded"],
    ),
    "stopped_while_running": (
        stopped_while_running,
        RUNS,
        ["starting", "downloading", "running", "stopping", "stopped"],
    ),
    "running_past_max_runtime": (
        running_past_max_runtime,
        RUNS,
        ["starting", "downloading", "running", "stopping", "max_runtime_exceeded"],
    ),
    "stopped_while_uploading": (
        stopped_while_uploading,
        EXIT_0,
        ["starting", "downloading", "running", "uploading", "stopping", "stopped"],
    ),
}


def edges_of(path: list[str]) -> set[tuple[str, str]]:
    return set(itertools.pairwise(path))


def table_edges(machine: JobMachine[Any]) -> set[tuple[str, str]]:
    roles = {getattr(machine, r): r for r in ROLES}
    return {(roles[old], roles[new]) for old, new in machine.table.edges()}


@pytest.fixture(scope="module")
def walked(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], list[str]]:
    """(kind, scenario) → the path the job took."""
    out = {}
    for label, kind in KINDS.items():
        for name, (step, exits, _) in SCENARIOS.items():
            rig = make_rig(kind, tmp_path_factory.mktemp(f"{label}-{name}"), exits)

            async def run(rig: Rig = rig, step: Step = step) -> None:
                rig.jobs.create(rig.kind.request("job", max_runtime=60))
                try:
                    await step(rig)
                    await asyncio.sleep(0.01)
                finally:
                    await rig.runner.cancel()

            try:
                asyncio.run(run())
                out[label, name] = rig.path()
            finally:
                rig.db.close()
    return out


@pytest.mark.parametrize("label", KINDS)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_each_scenario_takes_its_path(
    walked: dict[tuple[str, str], list[str]], label: str, scenario: str
) -> None:
    assert walked[label, scenario] == SCENARIOS[scenario][2]


@pytest.mark.parametrize(
    ("label", "edge"),
    [(label, edge) for label, kind in KINDS.items() for edge in sorted(table_edges(kind.machine))],
)
def test_every_edge_of_the_table_is_taken(
    walked: dict[tuple[str, str], list[str]], label: str, edge: tuple[str, str]
) -> None:
    taken = [
        name for (lbl, name), path in walked.items() if lbl == label and edge in edges_of(path)
    ]
    assert taken, f"no code path takes {label} {edge[0]} → {edge[1]}"


@pytest.mark.parametrize("label", KINDS)
def test_the_walk_takes_exactly_the_table(
    walked: dict[tuple[str, str], list[str]], label: str
) -> None:
    """No edge unused, and no move made that the table lacks (``move`` would have refused)."""
    taken: set[tuple[str, str]] = set()
    for (lbl, _), path in walked.items():
        if lbl == label:
            taken |= edges_of(path)
    assert taken == table_edges(KINDS[label].machine)


@pytest.mark.parametrize("label", KINDS)
def test_each_kind_shows_its_own_public_statuses(label: str) -> None:
    machine = KINDS[label].machine
    assert machine.public[machine.uploading] == "InProgress"
    assert machine.public[machine.max_runtime_exceeded] == "Stopped"
    terminal = {s for s in machine.kind if machine.table.is_terminal(s)}
    assert {machine.public[s] for s in terminal} == {"Completed", "Failed", "Stopped"}
