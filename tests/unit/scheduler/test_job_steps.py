"""The steps of a job's life, each on its own: what it returns is what the runner decides on.

Over the real training service, the fake backend and the fake clock: admission that can never
fit, waits or is granted; staging that cannot find its data; a look at the hosts (all exited,
one failed, still running); the runtime limit crossed on the clock during staging and while
running, ending MaxRuntimeExceeded without waiting for it; the verdict; the progress
throttle; and the log stream names and log times from the clock.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sageport.backends.base import ExitInfo
from sageport.backends.fake import FakeBackend
from sageport.catalog import load_catalog
from sageport.clock import FakeClock
from sageport.domain import training as T
from sageport.domain.runtime import JobRuntime, StopReason
from sageport.scheduler.allocator import Allocator
from sageport.scheduler.hosts import JobContext
from sageport.scheduler.job_finish import PROGRESS_INTERVAL_S, EndState
from sageport.scheduler.job_outcomes import (
    Admitted,
    AllExited,
    Completed,
    Failed,
    HostFailed,
    StillRunning,
    Waiting,
)
from sageport.scheduler.job_watch import MAX_RUNTIME_MESSAGE
from sageport.scheduler.jobs import JobRunner, RunnerConfig
from sageport.scheduler.training import TrainingKind
from sageport.services.admission import Admission
from sageport.services.keys import AccessKeys
from sageport.services.logs import LogService
from sageport.services.training import TrainingJobService
from sageport.settings import Settings
from sageport.storage.local import LocalObjectStore
from sageport.storage.objectstore import ObjectStore
from sageport.store import resources
from sageport.store.database import Database

IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.1.0-cpu-py310"


class HeldKind(TrainingKind):
    """Training, except that staging can be held at ``gate`` and progress steps are counted."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.gate.set()
        self.progress_steps = 0

    async def stage(self, ctx: JobContext, host: str, objects: ObjectStore) -> tuple[int, int]:
        await self.gate.wait()
        return await super().stage(ctx, host, objects)

    async def progress(
        self, ctx: JobContext, objects: ObjectStore, seen: dict[str, list[float]]
    ) -> None:
        self.progress_steps += 1


@dataclass
class Rig:
    runner: JobRunner
    jobs: TrainingJobService
    backend: FakeBackend
    kind: HeldKind
    clock: FakeClock
    logs: LogService
    db: Database

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
            "StoppingCondition": {"MaxRuntimeInSeconds": 60},
        }
        request.update(overrides)
        self.jobs.create(request)

    def status(self, name: str) -> T.Secondary:
        return self.jobs.status_of(self.jobs.get(name))

    def runtime(self, name: str) -> JobRuntime:
        return JobRuntime.from_json(self.jobs.get(name).state)

    def path(self, name: str) -> list[str]:
        with self.db.read() as conn:
            return [str(h.status) for h in resources.history(conn, self.jobs.kind, name)]

    async def until(self, name: str, status: T.Secondary, limit: int = 100) -> None:
        for _ in range(limit):
            if self.status(name) is status:
                return
            await self.runner.tick()
            await asyncio.sleep(0.002)  # the tasks the tick started run (uploads use threads)
        raise AssertionError(f"{name} is {self.status(name)}, not {status}")


def make_rig(
    tmp: Path,
    exits: list[ExitInfo | None],
    allocator: Allocator | None = None,
    instances: int = 1,
) -> Rig:
    settings = Settings(data_dir=tmp)
    db = Database(settings.db_url)
    db.create_all()
    clock = FakeClock()
    catalog = load_catalog()
    # The service admits against a machine that can run anything (GPU types on the CPU);
    # the runner may see another one: the machine changed since the job was accepted.
    accepting = Allocator([], 64.0, 512.0, cpu_fallback=True)
    jobs = TrainingJobService(db, clock, settings, Admission(catalog, accepting, {}))
    objects = LocalObjectStore(settings.objects_dir)
    asyncio.run(objects.create_bucket("out", "us-east-1"))
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
    backend = FakeBackend(exits=exits)
    logs = LogService(db, clock)
    kind = HeldKind()
    runner = JobRunner(
        kind,
        jobs,
        objects,
        logs,
        backend,
        allocator or Allocator([], 8.0, 64.0),
        catalog,
        clock,
        config,
    )
    return Rig(runner, jobs, backend, kind, clock, logs, db)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    rig = make_rig(tmp_path, [None])
    yield rig
    rig.db.close()


def run(rig: Rig, body: Any) -> None:
    async def go() -> None:
        try:
            await body()
        finally:
            await rig.runner.cancel()

    asyncio.run(go())


# -- admit -----------------------------------------------------------------------------------


def test_admit_fails_a_job_that_can_never_fit_here(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, [None], allocator=Allocator([], 8.0, 64.0, cpu_fallback=False))
    rig.create("gpu-job", ResourceConfig={"InstanceType": "ml.g5.xlarge", "InstanceCount": 1})
    outcome = rig.runner.admit.admit(rig.jobs.get("gpu-job"))
    assert isinstance(outcome, Failed)
    assert outcome.at is T.Secondary.STARTING
    assert "ml.g5.xlarge needs 1 GPU per instance; this machine has no usable GPU" in (
        outcome.reason
    )
    assert rig.runner.queue.ahead_of("training job", "gpu-job") is None
    assert rig.status("gpu-job") is T.Secondary.STARTING  # the step moved nothing

    async def body() -> None:  # the runner ends it Failed, with that reason
        await rig.until("gpu-job", T.Secondary.FAILED)

    run(rig, body)
    job = rig.jobs.describe({"TrainingJobName": "gpu-job"})
    assert job["FailureReason"] == outcome.reason
    assert rig.path("gpu-job") == ["Starting", "Failed"]
    assert "gpu-job" not in rig.runner.allocator.holders()
    rig.db.close()


def test_admit_waits_while_the_machine_is_full_then_grants(tmp_path: Path) -> None:
    full = Allocator([], 2.0, 8.0, cpu_overcommit=1.0, memory_overcommit=1.0)
    rig = make_rig(tmp_path, [None, None], allocator=full)
    rig.create("first")
    rig.create("second")
    first = rig.runner.admit.admit(rig.jobs.get("first"))
    assert isinstance(first, Admitted)
    assert len(first.grants) == 1
    assert first.sandbox is True
    assert first.admitted_at == rig.clock.now().isoformat()
    second = rig.runner.admit.admit(rig.jobs.get("second"))
    assert isinstance(second, Waiting)
    assert second.message  # what it waits for, kept on the job for its status message
    assert rig.runtime("second").queue_message == second.message
    rig.runner.allocator.release("first")
    assert isinstance(rig.runner.admit.admit(rig.jobs.get("second")), Admitted)
    rig.db.close()


# -- stage and launch ------------------------------------------------------------------------


def test_stage_fails_with_a_client_error_when_the_data_is_missing(rig: Rig) -> None:
    channel = {
        "ChannelName": "train",
        "DataSource": {
            "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://no-such-bucket/data"}
        },
    }
    rig.create("no-data", InputDataConfig=[channel])

    async def body() -> None:
        outcome = await rig.runner.launch.stage(rig.jobs.get("no-data"))
        assert isinstance(outcome, Failed)
        assert outcome.at is T.Secondary.DOWNLOADING
        assert outcome.reason.startswith("ClientError: Data download failed")
        assert rig.status("no-data") is T.Secondary.STARTING  # the step moved nothing
        await rig.until("no-data", T.Secondary.FAILED)  # the runner: admitted, then failed
        reason = rig.jobs.describe({"TrainingJobName": "no-data"})["FailureReason"]
        assert reason == outcome.reason

    run(rig, body)
    assert rig.backend.hosts == {}  # nothing was started
    assert rig.path("no-data") == ["Starting", "Downloading", "Failed"]


def test_log_streams_and_system_lines_take_the_clock(rig: Rig) -> None:
    rig.create("timed")

    async def body() -> None:
        await rig.until("timed", T.Secondary.TRAINING)

    run(rig, body)
    epoch = int(rig.clock.now().timestamp())
    stream = f"timed/algo-1-{epoch}"  # <job>/<host>-<epoch seconds>, on the fake clock
    assert rig.runtime("timed").log_streams == {"algo-1": stream}
    events = rig.logs.get_log_events(
        {"logGroupName": "/aws/sagemaker/TrainingJobs", "logStreamName": stream}
    )["events"]
    assert events
    assert {e["timestamp"] for e in events} == {epoch * 1000}
    assert events[0]["message"].startswith("sageport: training job timed on 1 host(s)")


# -- watch, stop, the limit ------------------------------------------------------------------


def test_look_tells_still_running_one_failed_and_all_exited(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, [None, None])
    rig.create("pair", ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 2})

    async def body() -> None:
        await rig.until("pair", T.Secondary.TRAINING)
        assert isinstance(rig.runner.watch.look(rig.jobs.get("pair")), StillRunning)
        handles = rig.runner.parts.handles(rig.jobs.get("pair"))
        rig.backend.finish(handles["algo-2"], returncode=3)
        seen = rig.runner.watch.look(rig.jobs.get("pair"))
        assert isinstance(seen, HostFailed)
        assert (seen.host, seen.exit.returncode) == ("algo-2", 3)
        assert seen.exits["algo-1"] is None
        # the runner stops the others (a second later); then the failure is no news, and
        # the job uploads
        rig.backend.now += 1
        await rig.runner.tick()
        assert rig.runtime("pair").terminated_at
        assert isinstance(rig.runner.watch.look(rig.jobs.get("pair")), AllExited)
        await rig.until("pair", T.Secondary.FAILED)

    run(rig, body)
    first = next(iter(rig.backend.hosts.values()))
    assert first.terminated  # algo-1 got SIGTERM because algo-2 failed, and its log says so
    stream = rig.runtime("pair").log_streams["algo-1"]
    assert "sageport: algo-2 failed (exit 3); stopping algo-1, as SageMaker ends a job" in (
        "\n".join(rig.logs.tail("/aws/sagemaker/TrainingJobs", stream, 10))
    )
    reason = rig.jobs.describe({"TrainingJobName": "pair"})["FailureReason"]
    # the reason is the host that failed first, not the one stopped because of it
    assert reason.startswith("AlgorithmError: ExecuteUserScriptError:\nExitCode 3\n")


def test_past_deadline_follows_the_clock(rig: Rig) -> None:
    rig.create("limited")

    async def body() -> None:
        await rig.until("limited", T.Secondary.TRAINING)
        job = rig.jobs.get("limited")
        assert not rig.runner.watch.past_deadline(job)
        rig.clock.advance(60)
        assert not rig.runner.watch.past_deadline(job)  # exactly the limit is within it
        rig.clock.advance(1)
        assert rig.runner.watch.past_deadline(job)

    run(rig, body)


def test_max_runtime_crossed_while_running_ends_max_runtime_exceeded(rig: Rig) -> None:
    rig.create("long")

    async def body() -> None:
        await rig.until("long", T.Secondary.TRAINING)
        rig.clock.advance(61)
        await rig.runner.tick()  # past the limit: to Stopping, its process terminated
        assert rig.status("long") is T.Secondary.STOPPING
        assert rig.jobs.get("long").status_message == MAX_RUNTIME_MESSAGE
        assert rig.runtime("long").stop_reason is StopReason.MAX_RUNTIME
        await rig.until("long", T.Secondary.MAX_RUNTIME_EXCEEDED)

    run(rig, body)
    (host,) = rig.backend.hosts.values()
    assert host.terminated
    assert host.exit is not None
    assert host.exit.signal == signal.SIGTERM
    assert rig.path("long") == [
        "Starting",
        "Downloading",
        "Training",
        "Stopping",
        "MaxRuntimeExceeded",
    ]
    job = rig.jobs.describe({"TrainingJobName": "long"})
    assert job["TrainingJobStatus"] == "Stopped"
    assert job["BillableTimeInSeconds"] == 61  # the fake clock's time, nothing slept


def test_max_runtime_crossed_while_staging_cancels_it(rig: Rig) -> None:
    rig.kind.gate.clear()  # staging never finishes on its own
    rig.create("slow")

    async def body() -> None:
        await rig.until("slow", T.Secondary.DOWNLOADING)
        assert rig.runner.tasks.staging("slow") is not None
        rig.clock.advance(61)
        await rig.until("slow", T.Secondary.MAX_RUNTIME_EXCEEDED, limit=10)

    run(rig, body)
    assert rig.backend.hosts == {}  # the cancelled staging started nothing
    assert rig.path("slow") == ["Starting", "Downloading", "Stopping", "MaxRuntimeExceeded"]
    assert "slow" not in rig.runner.allocator.holders()


# -- upload and the verdict ------------------------------------------------------------------


def test_progress_steps_are_throttled_on_the_clock(rig: Rig) -> None:
    rig.create("steady")

    async def body() -> None:
        await rig.until("steady", T.Secondary.TRAINING)
        for _ in range(5):  # no time passes: one progress step only, the first at once
            await rig.runner.tick()
            await asyncio.sleep(0)
        assert rig.kind.progress_steps == 1
        rig.clock.advance(PROGRESS_INTERVAL_S)
        await rig.runner.tick()
        await asyncio.sleep(0)
        assert rig.kind.progress_steps == 2

    run(rig, body)


def test_verdict_completed_failed_and_the_uploads_reason(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, [ExitInfo(0, None, 1.0), ExitInfo(2, None, 1.0)])

    async def body() -> None:  # one after the other: the first exits 0, the second 2
        rig.create("ok")
        await rig.until("ok", T.Secondary.COMPLETED)
        rig.create("bad")
        await rig.until("bad", T.Secondary.FAILED)

    run(rig, body)
    ended = EndState(ended_at=rig.clock.now().isoformat())
    assert isinstance(rig.runner.judge.verdict(rig.jobs.get("ok"), ended), Completed)
    bad = rig.runner.judge.verdict(rig.jobs.get("bad"), ended)
    assert isinstance(bad, Failed)
    assert bad.reason == rig.jobs.describe({"TrainingJobName": "bad"})["FailureReason"]
    upload_failed = EndState(ended_at=ended.ended_at, failure_reason="Uploading ... failed")
    judged = rig.runner.judge.verdict(rig.jobs.get("ok"), upload_failed)
    assert isinstance(judged, Failed)
    assert judged.reason == "Uploading ... failed"
    rig.db.close()
