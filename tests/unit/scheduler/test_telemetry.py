"""GPU telemetry and the idle-GPU warning, with a scripted GPU sampler and a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

from sageport.catalog import load_catalog
from sageport.clock import FakeClock
from sageport.domain import training as T
from sageport.gpu import GpuProcess, GpuSample, parse_fake_spec
from sageport.scheduler.allocator import Allocator
from sageport.scheduler.processing import ProcessingKind
from sageport.scheduler.telemetry import (
    LOG_GROUP,
    TelemetryConfig,
    TelemetryRunner,
    WatchedJobs,
)
from sageport.services.admission import Admission
from sageport.services.gpu_report import summarize
from sageport.services.logs import LogService
from sageport.services.processing import ProcessingJobService
from sageport.services.training import TrainingJobService
from sageport.settings import Settings
from sageport.store.database import Database

S = T.Secondary


class ScriptedSampler:
    """A GPU sampler whose readings a test sets; ``gone`` devices do not answer (NVML error)."""

    def __init__(self) -> None:
        self.load: dict[int, tuple[int, int]] = {}
        self.gone: set[int] = set()
        self.broken = False

    def sample(self, indices: Iterable[int]) -> list[GpuSample]:
        if self.broken:
            raise RuntimeError("NVML Shared Library Not Found")
        readings = {i: self.load.get(i, (0, 0)) for i in indices if i not in self.gone}
        return [GpuSample(i, util, util, memory) for i, (util, memory) in readings.items()]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(Settings(data_dir=tmp_path).db_url)
    database.create_all()
    yield database
    database.close()


@pytest.fixture
def jobs(db: Database, clock: FakeClock, tmp_path: Path) -> TrainingJobService:
    inventory = parse_fake_spec("4")
    allocator = Allocator(inventory.devices, 8.0, 64.0)
    admission = Admission(load_catalog(), allocator, {})
    return TrainingJobService(db, clock, Settings(data_dir=tmp_path), admission)


def start_job(jobs: TrainingJobService, clock: FakeClock, name: str, gpus: list[int]) -> str:
    """A job in ``Training`` that holds ``gpus`` on its one host, as the runner leaves it."""
    jobs.create(
        {
            "TrainingJobName": name,
            "AlgorithmSpecification": {
                "TrainingImage": "local:/usr/bin/python3",
                "TrainingInputMode": "File",
            },
            "RoleArn": "arn:aws:iam::000000000000:role/R",
            "OutputDataConfig": {"S3OutputPath": "s3://b/out"},
            "ResourceConfig": {
                "InstanceType": "ml.g4dn.xlarge",
                "InstanceCount": 1,
                "VolumeSizeInGB": 1,
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        }
    )
    jobs.move(
        name,
        S.STARTING,
        S.DOWNLOADING,
        runtime=lambda r: replace(r, grants=[{"gpus": gpus, "vcpus": 4.0}]),
    )
    stream = f"{name}/algo-1-1"
    jobs.move(
        name,
        S.DOWNLOADING,
        S.TRAINING,
        runtime=lambda r: replace(
            r, log_streams={"algo-1": stream}, started_at=clock.now().isoformat()
        ),
    )
    return stream


def run_for(runner: TelemetryRunner, clock: FakeClock, seconds: float, step: float = 5.0) -> None:
    async def go() -> None:
        elapsed = 0.0
        while elapsed <= seconds:
            await runner.tick()
            clock.advance(step)
            elapsed += step

    asyncio.run(go())


def make_runner(
    jobs: TrainingJobService, sampler: ScriptedSampler, logs: LogService, clock: FakeClock
) -> TelemetryRunner:
    return TelemetryRunner(
        jobs, sampler, logs, clock, TelemetryConfig(interval_s=5, idle_window_s=60)
    )


def test_an_idle_gpu_job_gets_one_warning_in_its_log_and_record(
    jobs: TrainingJobService, db: Database, clock: FakeClock
) -> None:
    logs = LogService(db, clock)
    sampler = ScriptedSampler()
    stream = start_job(jobs, clock, "idle", [2])
    runner = make_runner(jobs, sampler, logs, clock)
    run_for(runner, clock, 50)
    assert "gpu_idle_warning" not in jobs.get("idle").state  # the window has not passed yet
    run_for(runner, clock, 60)
    extra = jobs.get("idle").state
    assert "idle for the first 60 s" in extra["gpu_idle_warning"]
    warnings = [line for line in logs.tail(LOG_GROUP, stream, 50) if "WARNING" in line]
    assert len(warnings) == 1
    assert "holds GPU(s) 2" in warnings[0]
    assert "computing on the CPU" in warnings[0]
    assert {p[1] for p in extra["gpu_telemetry"]["points"]} == {2}


def test_a_job_that_uses_its_gpu_gets_no_warning_and_a_summary(
    jobs: TrainingJobService, db: Database, clock: FakeClock
) -> None:
    logs = LogService(db, clock)
    sampler = ScriptedSampler()
    start_job(jobs, clock, "busy", [0, 1])
    sampler.load = {0: (97, 12_000), 1: (0, 11_000)}
    runner = make_runner(jobs, sampler, logs, clock)
    run_for(runner, clock, 120)
    extra = jobs.get("busy").state
    assert "gpu_idle_warning" not in extra
    summary = summarize(extra["gpu_telemetry"])
    assert [s["gpu"] for s in summary] == [0, 1]
    assert summary[0]["max_utilization_percent"] == 97
    assert summary[1]["max_memory_used_mib"] == 11_000
    assert summary[0]["samples"] >= 20


def test_gpu_memory_alone_counts_as_use(
    jobs: TrainingJobService, db: Database, clock: FakeClock
) -> None:
    logs = LogService(db, clock)
    sampler = ScriptedSampler()
    start_job(jobs, clock, "loading", [3])
    sampler.load = {3: (0, 2048)}  # weights loaded, kernels not yet running
    run_for(make_runner(jobs, sampler, logs, clock), clock, 90)
    assert "gpu_idle_warning" not in jobs.get("loading").state


def test_a_vanished_gpu_is_a_note_not_a_crash(
    jobs: TrainingJobService, db: Database, clock: FakeClock
) -> None:
    logs = LogService(db, clock)
    sampler = ScriptedSampler()
    start_job(jobs, clock, "vanish", [0, 1])
    sampler.load = {0: (50, 4000), 1: (50, 4000)}
    runner = make_runner(jobs, sampler, logs, clock)
    run_for(runner, clock, 10)
    sampler.gone = {1}
    run_for(runner, clock, 10)
    sampler.broken = True
    run_for(runner, clock, 10)
    notes = jobs.get("vanish").state["gpu_telemetry"]["notes"]
    assert any(n.startswith("GPU 1 did not answer NVML") and "Xid" in n for n in notes)
    assert any("GPU sampling failed" in n and "NVML" in n for n in notes)
    assert jobs.get("vanish").status == S.TRAINING.value


def test_sampling_waits_for_the_interval_and_skips_jobs_without_gpus(
    jobs: TrainingJobService, db: Database, clock: FakeClock
) -> None:
    logs = LogService(db, clock)
    sampler = ScriptedSampler()
    start_job(jobs, clock, "nogpu", [])
    start_job(jobs, clock, "gpu", [0])
    runner = make_runner(jobs, sampler, logs, clock)
    run_for(runner, clock, 20, step=1.0)  # 21 ticks, one reading per 5 s
    assert "gpu_telemetry" not in jobs.get("nogpu").state
    assert len(jobs.get("gpu").state["gpu_telemetry"]["points"]) == 5


def test_the_series_stays_bounded(jobs: TrainingJobService, db: Database, clock: FakeClock) -> None:
    logs = LogService(db, clock)
    start_job(jobs, clock, "long", [0])
    config = TelemetryConfig(interval_s=1, idle_window_s=10_000, max_points=16)
    runner = TelemetryRunner(jobs, ScriptedSampler(), logs, clock, config)
    run_for(runner, clock, 100, step=1.0)
    points = jobs.get("long").state["gpu_telemetry"]["points"]
    assert 8 <= len(points) <= 16
    assert points[-1][0] > points[0][0] + 80  # thinned across the run, not truncated
    assert datetime.fromtimestamp(points[0][0]).year == 2026


def test_no_warning_when_switched_off(
    jobs: TrainingJobService, db: Database, clock: FakeClock
) -> None:
    logs = LogService(db, clock)
    start_job(jobs, clock, "fake", [0])
    config = TelemetryConfig(interval_s=5, idle_window_s=10, warn_idle=False)
    run_for(TelemetryRunner(jobs, ScriptedSampler(), logs, clock, config), clock, 60)
    assert "gpu_idle_warning" not in jobs.get("fake").state


def test_a_vanished_gpu_is_said_once_in_the_log_and_the_status_message(
    jobs: TrainingJobService, db: Database, clock: FakeClock
) -> None:
    logs = LogService(db, clock)
    sampler = ScriptedSampler()
    stream = start_job(jobs, clock, "lost", [0, 1])
    sampler.load = {0: (50, 4000), 1: (50, 4000)}
    runner = make_runner(jobs, sampler, logs, clock)
    run_for(runner, clock, 10)
    sampler.gone = {1}
    run_for(runner, clock, 30)  # several readings without GPU 1: one warning, not one each
    warnings = [line for line in logs.tail(LOG_GROUP, stream, 50) if "WARNING" in line]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("WARNING: sageport: GPU 1 (held by algo-1) stopped answering")
    described = jobs.describe({"TrainingJobName": "lost"})
    training = next(t for t in described["SecondaryStatusTransitions"] if t["Status"] == "Training")
    assert "WARNING: GPU 1 (held by algo-1) stopped answering NVML" in training["StatusMessage"]


class Probes:
    """NVML processes: pid 4242 is sageport's pre-flight probe, anything else the job."""

    def __call__(self, pid: int) -> bool:
        return pid == 4242


def test_the_pre_flight_probe_on_a_gpu_is_not_use(
    jobs: TrainingJobService, db: Database, clock: FakeClock
) -> None:
    logs = LogService(db, clock)

    class ProbeThenIdle(ScriptedSampler):
        def sample(self, indices: Iterable[int]) -> list[GpuSample]:
            # the probe's tiny matmul holds a CUDA context (600 MiB) while it runs
            return [GpuSample(i, 3, 0, 600, (GpuProcess(4242, 600),)) for i in indices]

    start_job(jobs, clock, "probed", [0])
    config = TelemetryConfig(interval_s=5, idle_window_s=60)
    runner = TelemetryRunner(jobs, ProbeThenIdle(), logs, clock, config, is_probe=Probes())
    run_for(runner, clock, 70)
    assert "idle for the first 60 s" in jobs.get("probed").state["gpu_idle_warning"]


def test_processing_jobs_are_watched_too(db: Database, clock: FakeClock, tmp_path: Path) -> None:
    inventory = parse_fake_spec("4")
    allocator = Allocator(inventory.devices, 8.0, 64.0)
    admission = Admission(load_catalog(), allocator, {})
    processing = ProcessingJobService(db, clock, Settings(data_dir=tmp_path), admission)
    processing.create(
        {
            "ProcessingJobName": "proc",
            "RoleArn": "arn:aws:iam::000000000000:role/R",
            "AppSpecification": {
                "ImageUri": "local:/usr/bin/python3",
                "ContainerEntrypoint": ["python3", "-c", "pass"],
            },
            "ProcessingResources": {
                "ClusterConfig": {
                    "InstanceType": "ml.g4dn.xlarge",
                    "InstanceCount": 1,
                    "VolumeSizeInGB": 1,
                }
            },
        }
    )
    processing.move(
        "proc", S.STARTING, S.DOWNLOADING, runtime=lambda r: replace(r, grants=[{"gpus": [3]}])
    )
    stream = "proc/algo-1-1"
    processing.move(
        "proc",
        S.DOWNLOADING,
        S.TRAINING,
        runtime=lambda r: replace(
            r, log_streams={"algo-1": stream}, started_at=clock.now().isoformat()
        ),
    )
    logs = LogService(db, clock)
    watched = [
        WatchedJobs(processing, ProcessingKind.log_group, ProcessingKind().host_names),
    ]
    config = TelemetryConfig(interval_s=5, idle_window_s=30)
    run_for(TelemetryRunner(watched, ScriptedSampler(), logs, clock, config), clock, 40)
    extra = processing.get("proc").state
    assert {p[1] for p in extra["gpu_telemetry"]["points"]} == {3}
    assert "idle for the first 30 s" in extra["gpu_idle_warning"]
    warnings = logs.tail(ProcessingKind.log_group, stream, 10)
    assert any("holds GPU(s) 3" in line for line in warnings), warnings
    # DescribeProcessingJob has no status message: ExitMessage says it while the job runs
    described = processing.describe({"ProcessingJobName": "proc"})
    assert "WARNING: GPU(s) idle for the first 30 s" in described["ExitMessage"]
