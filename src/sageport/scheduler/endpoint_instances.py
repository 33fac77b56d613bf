"""One endpoint instance: a model-server process in its own host folder, and how to talk to it.

An instance is a ``domain.runtime.EndpointInstance`` kept in the endpoint's runtime state (it
must survive a server restart). :class:`Instances` starts one (model unpacked at
``/opt/ml/model``, the GPUs of its grant, ``code/requirements.txt`` installed into
``<data>/overlays``), pings it, relaunches it, stops it and ships its output to
``/aws/sagemaker/Endpoints/<name>``. It reads time from the injected
``Clock`` (the stop deadline, the timestamps of its own log lines).

The two exceptions every endpoint step may raise live here too: :class:`BringUpFailed` (an
instance could not start: the message is the FailureReason) and :class:`Abandoned` (the
endpoint is being deleted: the step stops).
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sageport.backends.base import SPEC_FILE, Backend, ExitInfo, HostHandle, LaunchSpec
from sageport.clock import Clock
from sageport.domain.endpoint import EndpointStatus
from sageport.domain.keys import KeyIssuer
from sageport.domain.runtime import DEFAULT_STARTUP_TIMEOUT_S, EndpointInstance
from sageport.runtime import archives
from sageport.runtime.images import resolve_image
from sageport.runtime.interpreters import missing_module, missing_module_note
from sageport.runtime.process_env import SANDBOX_HOME, ServerAccess, base_env, gpu_env
from sageport.scheduler.allocator import HostGrant
from sageport.scheduler.ports import free_port
from sageport.scheduler.records import EndpointRecords, LogSink, ModelLookup
from sageport.serving.upstream import UpstreamError, UpstreamPool
from sageport.storage.objectstore import ObjectStore
from sageport.storage.transfer import TransferError, fetch_object, parse_s3_uri
from sageport.store.resources import Resource

__all__ = ["DEFAULT_STARTUP_TIMEOUT_S", "Abandoned", "BringUpFailed", "Instances", "Item"]

#: FailureReason's maximum length in the botocore model.
FAILURE_REASON_MAX = 1024


Item = tuple[Mapping[str, Any], int]
"""One instance to start: its production variant and its index within the variant."""


class BringUpFailed(Exception):
    """An instance could not start; the message is the endpoint's FailureReason."""


class Abandoned(Exception):
    """The endpoint is being deleted (or is gone): the step in progress stops."""


def check_alive(records: EndpointRecords, name: str) -> Resource:
    """The endpoint, unless it is gone or being deleted (then :class:`Abandoned`)."""
    try:
        ep = records.get(name)
    except Exception as exc:
        raise Abandoned(name) from exc
    if records.status_of(ep) is EndpointStatus.DELETING:
        raise Abandoned(name)
    return ep


@dataclass(frozen=True)
class EndpointRunnerConfig:
    jobs_dir: Path
    endpoint_url: str
    """Where the model servers reach this server (``runtime.process_env``)."""
    region: str
    keys: KeyIssuer
    """Mints the endpoint's own access key (its handler code may read S3, as with an
    execution role); revoked when the endpoint is deleted. Never the server's key."""
    images: Mapping[str, str]
    sandbox: bool
    server_env: Mapping[str, str]
    start_timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S
    drain_timeout_s: float = 30.0
    overlay_dir: Path | None = None
    """Where ``code/requirements.txt`` environments go; default ``<data folder>/overlays``."""

    @property
    def overlays(self) -> Path:
        return self.overlay_dir or self.jobs_dir.parent / "overlays"


@dataclass(frozen=True)
class Ping:
    """What ``/ping`` answered: 0 when nothing answered; the body says why a load failed."""

    status: int
    body: str = ""


class Instances:
    """Start, ping, relaunch, stop and log the model-server processes of endpoints."""

    def __init__(
        self,
        backend: Backend,
        models: ModelLookup,
        store: ObjectStore,
        logs: LogSink,
        pool: UpstreamPool,
        clock: Clock,
        config: EndpointRunnerConfig,
    ) -> None:
        self.backend = backend
        self.clock = clock
        self.models = models
        self.store = store
        self.logs = logs
        self.pool = pool
        self.config = config
        self._offsets: dict[str, int] = {}

    async def start(
        self,
        endpoint: str,
        variant: Mapping[str, Any],
        index: int,
        generation: int,
        grant: HostGrant,
        arn: str,
    ) -> EndpointInstance:
        """Prepare the host folder and start the model server; it is not ready yet. ``arn``
        is the endpoint's: every instance of it shares the endpoint's key."""
        model = self.models.get(variant["ModelName"]).spec
        container = model.get("PrimaryContainer") or (model.get("Containers") or [{}])[0]
        rid = instance_id(generation, variant, index)
        host_dir = self.host_dir(endpoint, rid)
        run_dir = host_dir.with_name(rid + ".run")
        model_dir = host_dir / "model"
        model_dir.mkdir(parents=True, exist_ok=True)
        run_dir.mkdir(parents=True, exist_ok=True)
        overlays = self.config.overlays
        overlays.mkdir(parents=True, exist_ok=True)
        key = self.config.keys.issue(arn)
        access = ServerAccess(
            self.config.endpoint_url, key.access_key_id, key.secret_access_key, self.config.region
        )
        env = base_env(self.config.server_env, access, sandbox=self.config.sandbox)
        env["SAGEPORT_OVERLAY_DIR"] = str(overlays)
        env.update(container.get("Environment") or {})
        try:
            await self._unpack(container.get("ModelDataUrl"), model_dir)
            submit = env.get("SAGEMAKER_SUBMIT_DIRECTORY", "")
            if submit.startswith("s3://"):
                await self._unpack(submit, model_dir / "code")
                env["SAGEMAKER_SUBMIT_DIRECTORY"] = "/opt/ml/model/code"
            python = resolve_image(container.get("Image", ""), self.config.images).python
        except (TransferError, OSError, ValueError) as exc:
            raise BringUpFailed(
                f"Variant {variant['VariantName']}: could not prepare the model: {exc}"
            ) from exc
        seen_root = "/opt/ml" if self.config.sandbox else str(host_dir)
        if not self.config.sandbox:
            env["SAGEMAKER_BASE_DIR"] = str(host_dir)
            if env.get("SAGEMAKER_SUBMIT_DIRECTORY", "").startswith("/opt/ml/"):
                env["SAGEMAKER_SUBMIT_DIRECTORY"] = (
                    seen_root + env["SAGEMAKER_SUBMIT_DIRECTORY"][len("/opt/ml") :]
                )
        else:
            env["HOME"] = SANDBOX_HOME  # the model's own Environment may not move it
        env.update(gpu_env(grant.gpus))
        port = free_port()
        spec = LaunchSpec(
            host_dir=host_dir,
            argv=[
                python,
                "-m",
                "sageport.serving.server",
                "--model-dir",
                f"{seen_root}/model",
                "--port",
                str(port),
                "--host",
                "127.0.0.1",
            ],
            env=env,
            cwd=f"{seen_root}/model",
            run_dir=run_dir,
            sandbox=self.config.sandbox,
            # The overlay folder is shared by every instance: the same path inside and out.
            extra_binds=[(str(overlays), str(overlays))],
            stop_grace_s=10.0,
        )
        try:
            handle = self.backend.start(spec)
        except OSError as exc:  # no sandbox under sandbox = "auto" (backends.local)
            raise BringUpFailed(f"Variant {variant['VariantName']}: {exc}") from exc
        timeout = variant.get("ContainerStartupHealthCheckTimeoutInSeconds")
        return EndpointInstance(
            id=rid,
            variant=variant["VariantName"],
            index=index,
            instance_type=variant.get("InstanceType", ""),
            port=port,
            grant=grant.to_json(),
            handle=handle.to_json(),
            image=container.get("Image", ""),
            startup_timeout_s=float(timeout or self.config.start_timeout_s),
        )

    def relaunch(self, replica: EndpointInstance, grant: HostGrant | None = None) -> None:
        """Start ``replica``'s model server again from its saved spec (a new run folder).

        With ``grant`` the process gets those GPUs and a fresh port (an instance brought back
        after a rolling update failed); without, it is a restart in place.
        """
        handle = HostHandle.from_json(replica.handle)
        spec = LaunchSpec.from_json(_read_spec(handle.run_dir))
        if grant is not None:
            port = free_port()
            argv = list(spec.argv)
            argv[argv.index("--port") + 1] = str(port)
            spec = replace(spec, argv=argv, env={**spec.env, **gpu_env(grant.gpus)})
            replica.port = port
            replica.grant = grant.to_json()
        replica.runs += 1
        new_run = handle.run_dir.with_name(f"{replica.id}.run{replica.runs}")
        replica.handle = self.backend.start(replace(spec, run_dir=new_run)).to_json()
        replica.ready = False

    def host_dir(self, endpoint: str, rid: str) -> Path:
        return self.config.jobs_dir / "endpoints" / endpoint / rid

    def used(self, endpoint: str, rid: str) -> bool:
        """Whether an instance of this id ever ran (ids, and so folders, are never reused)."""
        return self.host_dir(endpoint, rid).exists()

    def discard(self, endpoint: str, replicas: list[EndpointInstance]) -> None:
        """Remove the folders of stopped instances (their model copies); the log stays."""
        self.ship(endpoint, replicas)
        for r in replicas:
            host_dir = self.host_dir(endpoint, r.id)
            for path in [host_dir, *host_dir.parent.glob(f"{r.id}.run*")]:
                shutil.rmtree(path, ignore_errors=True)

    def discard_all(self, endpoint: str) -> None:
        shutil.rmtree(self.config.jobs_dir / "endpoints" / endpoint, ignore_errors=True)

    def poll(self, replica: EndpointInstance) -> ExitInfo | None:
        return self.backend.poll(HostHandle.from_json(replica.handle))

    def stop(self, replicas: list[EndpointInstance], *, kill: bool) -> None:
        for r in replicas:
            handle = HostHandle.from_json(r.handle)
            (self.backend.kill if kill else self.backend.terminate)(handle)

    async def stop_and_wait(
        self, replicas: list[EndpointInstance], timeout_s: float = 12.0
    ) -> None:
        """SIGTERM, wait for the exits (in-flight requests finish), then SIGKILL what is left."""
        self.stop(replicas, kill=False)
        deadline = self.clock.monotonic() + timeout_s
        while self.clock.monotonic() < deadline and any(self.poll(r) is None for r in replicas):
            await asyncio.sleep(0.1)
        self.stop(replicas, kill=True)

    async def ping(self, replica: EndpointInstance) -> Ping:
        try:
            resp = await self.pool.request("127.0.0.1", replica.port, "GET", "/ping", {}, b"", 2.0)
        except (UpstreamError, TimeoutError):
            return Ping(0)
        return Ping(resp.status, resp.body.decode("utf-8", "replace"))

    async def metrics(self, replica: EndpointInstance) -> dict[str, Any] | None:
        """The model server's ``/metrics`` document, or None when it does not answer."""
        try:
            resp = await self.pool.request(
                "127.0.0.1", replica.port, "GET", "/metrics", {}, b"", 2.0
            )
            data: dict[str, Any] = json.loads(resp.body)
        except (UpstreamError, TimeoutError, ValueError):
            return None
        return data if resp.status == 200 else None

    # -- logs ---------------------------------------------------------------------------

    def ship(self, endpoint: str, replicas: list[EndpointInstance]) -> None:
        """Copy new model-server output into the endpoint's log group."""
        for r in replicas:
            handle = HostHandle.from_json(r.handle)
            key = f"{endpoint}/{r.id}/{handle.run_dir.name}"
            records, offset = self.backend.read_log(handle, self._offsets.get(key, 0))
            if records:
                self.logs.put_events(
                    log_group(endpoint), stream(r), [(x.timestamp_ms, x.message) for x in records]
                )
                self._offsets[key] = offset

    def note(self, endpoint: str, replica: EndpointInstance, message: str) -> None:
        """A line from sageport itself in the instance's log stream."""
        self.logs.put_events(
            log_group(endpoint),
            stream(replica),
            [(int(self.clock.now().timestamp() * 1000), f"sageport: {message}")],
        )

    def tail(self, endpoint: str, replica: EndpointInstance, lines: int = 30) -> list[str]:
        return self.logs.tail(log_group(endpoint), stream(replica), lines)

    def import_note(self, replica: EndpointInstance, lines: Sequence[str]) -> str:
        """When ``lines`` end a model server on ``ModuleNotFoundError``: which interpreter
        its image mapped to and how to change that (``runtime.interpreters``); else ""."""
        module = missing_module(lines)
        if module is None:
            return ""
        try:
            runtime = resolve_image(replica.image, self.config.images)
        except ValueError:
            return ""
        return missing_module_note(module, runtime)

    # -- model data ------------------------------------------------------------------------

    async def _unpack(self, uri: str | None, dest: Path) -> None:
        if not uri:
            return
        s3 = parse_s3_uri(uri)
        dest.mkdir(parents=True, exist_ok=True)
        if not s3.key.endswith((".tar.gz", ".tgz", ".tar")):
            raise TransferError(f"{uri}: model data must be a .tar.gz archive")
        archive = dest.parent / f".{dest.name}.download"
        try:
            await fetch_object(self.store, s3.bucket, s3.key, archive, link=True)
            await asyncio.to_thread(archives.extract, archive, dest)
        except Exception as exc:
            raise TransferError(f"could not unpack {uri}: {exc}") from exc
        finally:
            archive.unlink(missing_ok=True)


def instance_id(generation: int, variant: Mapping[str, Any], index: int) -> str:
    return f"g{generation}-{variant['VariantName']}-{index + 1}"


def log_group(endpoint: str) -> str:
    return f"/aws/sagemaker/Endpoints/{endpoint}"


def stream(replica: EndpointInstance) -> str:
    return f"{replica.variant}/{replica.id}"


def describe_exit(info: ExitInfo) -> str:
    if info.returncode is None:
        return info.reason or "unobserved"
    if info.signal:
        return f"killed by signal {info.signal}"
    return f"exit code {info.returncode}"


def fit_reason(head: str, detail: str, limit: int = FAILURE_REASON_MAX) -> str:
    """``head`` plus as much of the end of ``detail`` as fits in ``limit`` characters.

    The end of a traceback or a log is what a person acts on (the exception line), so lines
    are dropped from the front, whole, and an ellipsis marks the cut.
    """
    lines = [line for line in detail.strip().splitlines() if line.strip()]
    kept: list[str] = []
    room = limit - len(head) - 5
    for line in reversed(lines):
        if len(line) + 1 > room:
            if not kept:
                kept.append("…" + line[-(room - 2) :] if room > 2 else "")
            break
        kept.append(line)
        room -= len(line) + 1
    cut = "…\n" if len(kept) < len(lines) else ""
    text = head + ("\n" + cut + "\n".join(reversed(kept)) if kept else "")
    return text[:limit]


def _read_spec(run_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run_dir / SPEC_FILE).read_text())
    return data
