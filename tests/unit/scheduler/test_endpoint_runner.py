"""The endpoint runner over the fake backend, the fake clock and a fake model server.

Each scenario drives one endpoint through ``EndpointRunner.tick`` (as the scheduler loop does)
and the real ``EndpointService`` over a throw-away SQLite database (as the API does). The
backend is ``FakeBackend`` with what a real backend adds that the runner relies on: it writes
the launch spec into the run folder (a restart reads it back) and, per started model server,
runs a tiny in-process HTTP server on the server's ``--port`` that answers ``/ping`` as the
scenario says for that model: 200 (``ok``), 500 with a traceback (``fail``: the model did not
load) or nothing at all (``silent``: still loading).

Every scenario checks what it is about (FailureReason, restarts, routes, processes, GPUs) and
the statuses it went through, read back from the store's history; the union of those paths
must be exactly the endpoint status table (``domain.endpoint.TRANSITIONS``), so an edge that
no code takes, or a move the table lacks, fails here.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sageport.backends.base import SPEC_FILE, HostHandle, LaunchSpec
from sageport.backends.fake import FakeBackend
from sageport.catalog import load_catalog
from sageport.clock import FakeClock
from sageport.domain.endpoint import TRANSITIONS, EndpointStatus
from sageport.domain.runtime import EndpointInstance, EndpointRuntime
from sageport.errors import ValidationException
from sageport.gpu.inventory import GpuDevice
from sageport.scheduler.allocator import Allocator
from sageport.scheduler.endpoints import EndpointRunner, EndpointRunnerConfig
from sageport.services.admission import Admission
from sageport.services.endpoint_configs import EndpointConfigService
from sageport.services.endpoints import EndpointService
from sageport.services.keys import AccessKeys
from sageport.services.logs import LogService
from sageport.services.models import ModelService
from sageport.serving.router import TrafficRouter
from sageport.serving.upstream import UpstreamPool
from sageport.settings import Settings
from sageport.storage.local import LocalObjectStore
from sageport.store import resources
from sageport.store.database import Database

E = EndpointStatus
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.1.0-cpu-py310"
ROLE = "arn:aws:iam::000000000000:role/R"
TRACEBACK = (
    "model_fn failed\n"
    "Traceback (most recent call last):\n"
    '  File "/opt/ml/model/code/inference.py", line 7, in model_fn\n'
    "    return load(model_dir)\n"
    "ValueError: the weights do not match the network"
)


class ModelServers(FakeBackend):
    """``FakeBackend`` whose hosts are fake model servers (see the module docstring)."""

    def __init__(self, behaviour: dict[str, str]) -> None:
        super().__init__()
        self.behaviour = behaviour
        """Model name → how its next started server answers /ping."""
        self._servers: dict[int, asyncio.Task[asyncio.Server]] = {}
        self._conns: dict[int, set[asyncio.StreamWriter]] = {}

    def start(self, spec: LaunchSpec) -> HostHandle:
        spec.run_dir.mkdir(parents=True, exist_ok=True)
        (spec.run_dir / SPEC_FILE).write_text(json.dumps(spec.to_json()))
        handle = super().start(spec)
        mode = self.behaviour[spec.env["FAKE_MODEL"]]
        if mode != "silent":
            port = int(spec.argv[spec.argv.index("--port") + 1])
            conns: set[asyncio.StreamWriter] = set()
            self._conns[handle.launcher_pid] = conns
            serve = _ping_handler(mode, conns)
            self._servers[handle.launcher_pid] = asyncio.get_running_loop().create_task(
                asyncio.start_server(serve, "127.0.0.1", port)
            )
        return handle

    def terminate(self, handle: HostHandle) -> None:
        super().terminate(handle)
        self._close(handle.launcher_pid)

    def kill(self, handle: HostHandle) -> None:
        super().kill(handle)
        self._close(handle.launcher_pid)

    def crash(self, handle: HostHandle, returncode: int = 1) -> None:
        """The model server dies on its own."""
        self.finish(handle, returncode)
        self._close(handle.launcher_pid)

    def running(self) -> int:
        return sum(1 for h in self.hosts.values() if h.exit is None)

    def close_all(self) -> None:
        for pid in list(self._servers):
            self._close(pid)

    def _close(self, pid: int) -> None:
        task = self._servers.pop(pid, None)
        for writer in self._conns.pop(pid, set()):
            writer.close()
        if task is None:
            return
        if task.done():
            task.result().close()
        else:
            task.add_done_callback(lambda t: t.result().close())


def _ping_handler(
    mode: str, conns: set[asyncio.StreamWriter]
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conns.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:") and int(line[15:]):
                        await reader.readexactly(int(line[15:]))
                status, body = (200, b"") if mode == "ok" else (500, TRACEBACK.encode())
                writer.write(
                    b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n%s" % (status, len(body), body)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    return serve


@dataclass
class Rig:
    runner: EndpointRunner
    endpoints: EndpointService
    models: ModelService
    configs: EndpointConfigService
    backend: ModelServers
    allocator: Allocator
    clock: FakeClock
    db: Database
    path: list[str] | None = None
    """The statuses the endpoint went through (read when it is deleted: its history goes)."""

    # -- what the API does ------------------------------------------------------------------

    def model(self, name: str, behaviour: str) -> None:
        self.backend.behaviour[name] = behaviour
        container = {"Image": IMAGE, "Environment": {"FAKE_MODEL": name}}
        self.models.create(
            {"ModelName": name, "ExecutionRoleArn": ROLE, "PrimaryContainer": container}
        )

    def config(
        self, name: str, model: str, count: int = 1, instance_type: str = "ml.m5.large"
    ) -> None:
        variant = {
            "VariantName": "AllTraffic",
            "ModelName": model,
            "InitialInstanceCount": count,
            "InstanceType": instance_type,
            "ContainerStartupHealthCheckTimeoutInSeconds": 60,
        }
        self.configs.create({"EndpointConfigName": name, "ProductionVariants": [variant]})

    def create(self, config: str) -> None:
        self.endpoints.create({"EndpointName": "ep", "EndpointConfigName": config})

    def update(self, config: str) -> None:
        self.endpoints.update({"EndpointName": "ep", "EndpointConfigName": config})

    def weights_and_capacities(self, **item: Any) -> None:
        self.endpoints.update_weights(
            {
                "EndpointName": "ep",
                "DesiredWeightsAndCapacities": [{"VariantName": "AllTraffic", **item}],
            }
        )

    async def delete(self) -> None:
        self.endpoints.delete({"EndpointName": "ep"})
        self.path = self.history()
        for _ in range(300):
            try:
                self.endpoints.get("ep")
            except ValidationException:
                return
            await self.tick()
        raise AssertionError("the endpoint was not removed")

    # -- what a scenario reads --------------------------------------------------------------

    def status(self) -> E:
        return E(str(self.endpoints.get("ep").status))

    def runtime(self) -> EndpointRuntime:
        return EndpointRuntime.from_json(self.endpoints.get("ep").state)

    def describe(self) -> dict[str, Any]:
        return self.endpoints.describe({"EndpointName": "ep"})

    def history(self) -> list[str]:
        with self.db.read() as conn:
            return [str(h.status) for h in resources.history(conn, "Endpoint", "ep")]

    def handle(self, instance: EndpointInstance) -> HostHandle:
        return HostHandle.from_json(instance.handle)

    async def tick(self) -> None:
        await self.runner.tick()
        await asyncio.sleep(0.01)

    async def until(self, status: E, limit: int = 400) -> None:
        for _ in range(limit):
            if self.status() is status:
                await asyncio.sleep(0.02)  # the step that moved it finishes (publish, release)
                return
            await self.tick()
        raise AssertionError(f"the endpoint is {self.status()}, not {status}")

    async def settle(self, ticks: int = 5) -> None:
        for _ in range(ticks):
            await self.tick()


def make_rig(tmp: Path, gpus: int) -> Rig:
    settings = Settings(data_dir=tmp)
    db = Database(settings.db_url)
    db.create_all()
    clock = FakeClock()
    catalog = load_catalog()
    devices = [GpuDevice(i, f"GPU-{i}", "NVIDIA A10G", 24_000, (8, 6)) for i in range(gpus)]
    allocator = Allocator(devices, 16.0, 64.0)
    models = ModelService(db, clock, settings)
    configs = EndpointConfigService(db, clock, settings)
    endpoints = EndpointService(db, clock, settings, configs, Admission(catalog, allocator, {}))
    logs = LogService(db, clock)
    backend = ModelServers({})
    runner = EndpointRunner(
        endpoints,
        models,
        LocalObjectStore(settings.objects_dir),
        logs,
        backend,
        allocator,
        catalog,
        TrafficRouter(),
        UpstreamPool(),
        clock,
        EndpointRunnerConfig(
            jobs_dir=settings.jobs_dir,
            endpoint_url="http://127.0.0.1:1",
            region="us-east-1",
            keys=AccessKeys([], db, clock),
            images={},
            sandbox=True,
            server_env={},
        ),
    )
    return Rig(runner, endpoints, models, configs, backend, allocator, clock, db)


# -- the scenarios ---------------------------------------------------------------------------

Step = Callable[[Rig], Awaitable[None]]


async def created_then_deleted(rig: Rig) -> None:
    rig.model("m", "ok")
    rig.config("c", "m")
    rig.create("c")
    assert rig.status() is E.CREATING
    await rig.until(E.IN_SERVICE)
    (variant,) = rig.describe()["ProductionVariants"]
    assert variant["CurrentInstanceCount"] == 1
    (instance,) = rig.runtime().replicas
    assert instance.ready
    assert instance.owner == f"endpoint/ep/{instance.id}"
    routes = rig.runner.routes.router.get("ep")
    assert routes is not None
    assert [r.port for v in routes.variants for r in v.replicas] == [instance.port]
    assert rig.allocator.holders()
    await rig.delete()
    assert rig.backend.running() == 0
    assert rig.allocator.holders() == {}
    assert rig.runner.routes.router.get("ep") is None


async def model_fails_to_load(rig: Rig) -> None:
    rig.model("m", "fail")
    rig.config("c", "m")
    rig.create("c")
    await rig.until(E.FAILED)
    reason = rig.describe()["FailureReason"]
    assert "did not pass the ping health check: the model failed to load" in reason
    assert "Traceback (most recent call last):" in reason
    assert reason.endswith("ValueError: the weights do not match the network")
    assert rig.runtime().replicas == []
    assert rig.backend.running() == 0  # the failed server was stopped
    assert rig.allocator.holders() == {}
    await rig.delete()


async def startup_timeout(rig: Rig) -> None:
    rig.model("m", "silent")
    rig.config("c", "m")
    rig.create("c")
    await rig.settle(10)
    assert rig.status() is E.CREATING  # still loading, within the startup health check
    rig.clock.advance(61)  # ContainerStartupHealthCheckTimeoutInSeconds is 60
    await rig.until(E.FAILED, limit=50)
    reason = rig.describe()["FailureReason"]
    assert "did not pass the ping health check within 60.0 s" in reason
    assert "ContainerStartupHealthCheckTimeoutInSeconds" in reason
    assert rig.backend.running() == 0


async def deleted_while_creating(rig: Rig) -> None:
    rig.model("m", "silent")
    rig.config("c", "m")
    rig.create("c")
    await rig.settle(5)
    assert rig.backend.running() == 1
    await rig.delete()
    assert rig.backend.running() == 0
    assert rig.allocator.holders() == {}


async def restarted_in_place(rig: Rig) -> None:
    rig.model("m", "ok")
    rig.config("c", "m")
    rig.create("c")
    await rig.until(E.IN_SERVICE)
    (before,) = rig.runtime().replicas
    rig.backend.crash(rig.handle(before), returncode=3)
    for _ in range(100):
        await rig.tick()
        (now,) = rig.runtime().replicas
        if now.restarts == 1 and now.ready:
            break
    else:
        raise AssertionError("the model server was not restarted")
    assert (now.id, now.port, now.runs) == (before.id, before.port, 1)
    assert now.last_restart is not None
    assert now.last_restart["reason"] == "its model server exited (exit code 3)"
    assert rig.backend.running() == 1
    assert len(rig.backend.hosts) == 2
    (variant,) = rig.describe()["ProductionVariants"]
    (note,) = variant["VariantStatus"]
    assert note["StatusMessage"].startswith(f"Instance {now.id} was restarted at ")
    assert "(restart 1); serving again since" in note["StatusMessage"]
    assert rig.status() is E.IN_SERVICE  # a restart in place is no status change


async def weights_only(rig: Rig) -> None:
    rig.model("m", "ok")
    rig.config("c", "m")
    rig.create("c")
    await rig.until(E.IN_SERVICE)
    rig.weights_and_capacities(DesiredWeight=0.25)
    assert rig.status() is E.UPDATING
    await rig.until(E.IN_SERVICE)
    routes = rig.runner.routes.router.get("ep")
    assert routes is not None
    assert [v.weight for v in routes.variants] == [0.25]
    assert len(rig.backend.hosts) == 1  # nothing restarted
    assert rig.describe()["ProductionVariants"][0]["CurrentWeight"] == 0.25


async def scaled_out_and_in(rig: Rig) -> None:
    rig.model("m", "ok")
    rig.config("c", "m")
    rig.create("c")
    await rig.until(E.IN_SERVICE)
    (first,) = rig.runtime().replicas
    rig.weights_and_capacities(DesiredInstanceCount=2)
    await rig.until(E.IN_SERVICE)
    assert [r.id for r in rig.runtime().replicas] == [first.id, "g0-AllTraffic-2"]
    assert all(r.ready for r in rig.runtime().replicas)
    assert rig.describe()["ProductionVariants"][0]["CurrentInstanceCount"] == 2
    assert rig.backend.running() == 2
    assert len(rig.allocator.holders()) == 2
    rig.weights_and_capacities(DesiredInstanceCount=1)
    await rig.until(E.IN_SERVICE)
    assert [r.id for r in rig.runtime().replicas] == [first.id]
    assert rig.backend.running() == 1
    assert len(rig.allocator.holders()) == 1
    routes = rig.runner.routes.router.get("ep")
    assert routes is not None
    assert [r.id for r in routes.variants[0].replicas] == [first.id]


async def update_rolled_back(rig: Rig) -> None:
    rig.model("m1", "ok")
    rig.model("m2", "fail")
    rig.config("c1", "m1")
    rig.config("c2", "m2")
    rig.create("c1")
    await rig.until(E.IN_SERVICE)
    (old,) = rig.runtime().replicas
    rig.update("c2")
    await rig.until(E.UPDATING, limit=1)
    await rig.until(E.IN_SERVICE)  # by way of RollingBack (the path says so)
    described = rig.describe()
    assert described["EndpointConfigName"] == "c1"
    assert described["FailureReason"].startswith("Update failed and was rolled back: ")
    assert "the model failed to load" in described["FailureReason"]
    assert [r.id for r in rig.runtime().replicas] == [old.id]
    assert rig.runtime().pending_replicas == []
    assert rig.backend.running() == 1


async def _rolling_update_whose_rollback_fails(rig: Rig) -> None:
    """Two GPUs, two 1-GPU instances serving; the new configuration needs two more GPUs, so
    the update replaces instance by instance; the new model fails and the old instance it
    stopped does not come back."""
    rig.model("m1", "ok")
    rig.model("m2", "fail")
    rig.config("c1", "m1", count=2, instance_type="ml.g5.xlarge")
    rig.config("c2", "m2", count=2, instance_type="ml.g5.xlarge")
    rig.create("c1")
    await rig.until(E.IN_SERVICE)
    rig.backend.behaviour["m1"] = "fail"  # an old instance started again fails too
    rig.update("c2")
    await rig.until(E.UPDATE_ROLLBACK_FAILED)
    assert "Restarting an old instance failed too" in rig.describe()["FailureReason"]
    assert len(rig.runtime().replicas) == 1  # the one that kept serving
    # the old instance that did not come back is stopped and its GPU given back
    assert rig.backend.running() == 1
    assert len(rig.allocator.holders()) == 1


async def rollback_failed_then_repaired(rig: Rig) -> None:
    await _rolling_update_whose_rollback_fails(rig)
    rig.model("m3", "ok")
    rig.config("c3", "m3", count=1, instance_type="ml.g5.xlarge")
    rig.update("c3")  # UpdateEndpoint may repair an endpoint whose rollback failed
    await rig.until(E.UPDATING, limit=5)
    await rig.until(E.IN_SERVICE)
    assert rig.describe()["EndpointConfigName"] == "c3"
    assert [r.variant for r in rig.runtime().replicas] == ["AllTraffic"]
    await rig.delete()


async def rollback_failed_then_deleted(rig: Rig) -> None:
    await _rolling_update_whose_rollback_fails(rig)
    await rig.delete()


async def deleted_while_updating(rig: Rig) -> None:
    rig.model("m1", "ok")
    rig.model("m2", "silent")
    rig.config("c1", "m1")
    rig.config("c2", "m2")
    rig.create("c1")
    await rig.until(E.IN_SERVICE)
    rig.update("c2")
    await rig.settle(5)
    assert rig.status() is E.UPDATING
    assert len(rig.runtime().pending_replicas) == 1
    await rig.delete()
    assert rig.backend.running() == 0
    assert rig.allocator.holders() == {}


async def deleted_while_rolling_back(rig: Rig) -> None:
    rig.model("m1", "ok")
    rig.model("m2", "fail")
    rig.config("c1", "m1", count=2, instance_type="ml.g5.xlarge")
    rig.config("c2", "m2", count=2, instance_type="ml.g5.xlarge")
    rig.create("c1")
    await rig.until(E.IN_SERVICE)
    rig.backend.behaviour["m1"] = "silent"  # the old instance started again takes its time
    rig.update("c2")
    await rig.until(E.ROLLING_BACK)
    await rig.settle(5)
    assert rig.status() is E.ROLLING_BACK
    await rig.delete()
    assert rig.backend.running() == 0
    assert rig.allocator.holders() == {}


C, IS, U, R, F, D, URF = (
    "Creating",
    "InService",
    "Updating",
    "RollingBack",
    "Failed",
    "Deleting",
    "UpdateRollbackFailed",
)
SCENARIOS: dict[str, tuple[Step, int, list[str]]] = {
    "created_then_deleted": (created_then_deleted, 0, [C, IS, D]),
    "model_fails_to_load": (model_fails_to_load, 0, [C, F, D]),
    "startup_timeout": (startup_timeout, 0, [C, F]),
    "deleted_while_creating": (deleted_while_creating, 0, [C, D]),
    "restarted_in_place": (restarted_in_place, 0, [C, IS]),
    "weights_only": (weights_only, 0, [C, IS, U, IS]),
    "scaled_out_and_in": (scaled_out_and_in, 0, [C, IS, U, IS, U, IS]),
    "update_rolled_back": (update_rolled_back, 0, [C, IS, U, R, IS]),
    "rollback_failed_then_repaired": (
        rollback_failed_then_repaired,
        2,
        [C, IS, U, R, URF, U, IS, D],
    ),
    "rollback_failed_then_deleted": (rollback_failed_then_deleted, 2, [C, IS, U, R, URF, D]),
    "deleted_while_updating": (deleted_while_updating, 0, [C, IS, U, D]),
    "deleted_while_rolling_back": (deleted_while_rolling_back, 2, [C, IS, U, R, D]),
}


@dataclass
class Walked:
    path: list[str]
    error: BaseException | None


@pytest.fixture(scope="module")
def walked(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Walked]:
    """Scenario → the path the endpoint took (and what failed in it, if anything)."""
    out = {}
    for name, (step, gpus, _) in SCENARIOS.items():
        rig = make_rig(tmp_path_factory.mktemp(name), gpus)

        async def run(rig: Rig = rig, step: Step = step) -> None:
            try:
                await step(rig)
            finally:
                await rig.runner.cancel()
                rig.backend.close_all()
                await asyncio.sleep(0)

        error: BaseException | None = None
        try:
            asyncio.run(run())
        except Exception as exc:
            error = exc
        try:
            out[name] = Walked(rig.path if rig.path is not None else rig.history(), error)
        finally:
            rig.db.close()
    return out


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_each_scenario_does_what_it_says_and_takes_its_path(
    walked: dict[str, Walked], scenario: str
) -> None:
    error = walked[scenario].error
    if error is not None:
        raise error
    assert walked[scenario].path == SCENARIOS[scenario][2]


def table_edges() -> set[tuple[str, str]]:
    return {(str(old), str(new)) for old, new in TRANSITIONS.edges()}


@pytest.mark.parametrize("edge", sorted(table_edges()), ids="→".join)
def test_every_edge_of_the_table_is_taken(walked: dict[str, Walked], edge: tuple[str, str]) -> None:
    taken = [n for n, w in walked.items() if edge in set(itertools.pairwise(w.path))]
    assert taken, f"no scenario takes {edge[0]} → {edge[1]}"


def test_the_walk_takes_exactly_the_table(walked: dict[str, Walked]) -> None:
    """No edge unused, and no move made that the table lacks (``move`` would have refused)."""
    taken = {e for w in walked.values() for e in itertools.pairwise(w.path)}
    assert taken == table_edges()
