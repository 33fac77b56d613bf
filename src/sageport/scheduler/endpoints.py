"""Carrying endpoints through their lives: start model servers, watch them, update, delete.

Each instance of each production variant is one model-server process
(``python -m sageport.serving.server``) in its own host folder (model unpacked at
``/opt/ml/model``), holding the GPUs its instance type has. The runner keeps the runtime
router in step with what is ready, restarts a model server that dies, and performs updates
blue/green: the new configuration's instances start beside the serving ones and take the
traffic only when all of them answer ``/ping``; then the old ones drain and stop.
"""

from __future__ import annotations

import asyncio
import logging
import tarfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sageport.backends.base import Backend, ExitInfo, HostHandle, LaunchSpec
from sageport.catalog import Catalog
from sageport.cli.process import free_port
from sageport.clock import Clock
from sageport.domain.endpoint import EndpointStatus
from sageport.runtime.images import resolve_image
from sageport.scheduler.allocator import Allocator, HostGrant
from sageport.scheduler.hosts import INHERITED_ENV, _gpu_env
from sageport.services.admission import host_request
from sageport.services.endpoints import EndpointService, status_of
from sageport.services.logs import LogService
from sageport.services.models import ModelService
from sageport.serving.router import Replica, Router, Routes, Variant
from sageport.serving.upstream import UpstreamError, UpstreamPool
from sageport.storage.objectstore import ObjectStore
from sageport.storage.transfer import TransferError, fetch_object, parse_s3_uri
from sageport.store.errors import NotFound, StatusConflict
from sageport.store.resources import Resource

log = logging.getLogger(__name__)
E = EndpointStatus


class BringUpFailed(Exception):
    """An instance could not start; the message is the endpoint's FailureReason."""


@dataclass(frozen=True)
class EndpointRunnerConfig:
    jobs_dir: Path
    endpoint_url: str
    access_key: str
    secret_key: str
    region: str
    images: Mapping[str, str]
    sandbox: bool
    server_env: Mapping[str, str]
    start_timeout_s: float = 600.0
    drain_timeout_s: float = 30.0


class EndpointRunner:
    def __init__(
        self,
        endpoints: EndpointService,
        models: ModelService,
        store: ObjectStore,
        logs: LogService,
        backend: Backend,
        allocator: Allocator,
        catalog: Catalog,
        router: Router,
        pool: UpstreamPool,
        clock: Clock,
        config: EndpointRunnerConfig,
    ) -> None:
        self.endpoints = endpoints
        self.models = models
        self.store = store
        self.logs = logs
        self.backend = backend
        self.allocator = allocator
        self.catalog = catalog
        self.router = router
        self.pool = pool
        self.clock = clock
        self.config = config
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._restored: set[str] = set()
        self._offsets: dict[str, int] = {}

    async def tick(self) -> None:
        for ep in self.endpoints.all():
            if ep.name in self._tasks:
                continue
            try:
                self._restore(ep)
                status = status_of(ep)
                if status is E.CREATING:
                    self._spawn(ep.name, self._create(ep))
                elif status is E.IN_SERVICE:
                    await self._health(ep)
                elif status is E.UPDATING:
                    self._spawn(ep.name, self._update(ep))
                elif status is E.ROLLING_BACK:
                    self._spawn(
                        ep.name,
                        self._roll_back(ep, ep.extra.get("failure_reason") or "update failed"),
                    )
                elif status is E.DELETING:
                    self._spawn(ep.name, self._delete(ep))
            except (StatusConflict, NotFound):
                continue
            except Exception:
                log.exception("endpoint step for %s failed", ep.name)

    async def cancel(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.pool.close()

    def _spawn(self, name: str, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks[name] = task
        task.add_done_callback(lambda _t: self._tasks.pop(name, None))

    # -- state ------------------------------------------------------------------------

    def _restore(self, ep: Resource) -> None:
        if ep.name in self._restored:
            return
        self._restored.add(ep.name)
        for key in ("replicas", "pending_replicas"):
            replicas = ep.extra.get(key) or []
            by_owner: dict[str, list[dict[str, Any]]] = {}
            for r in replicas:
                by_owner.setdefault(r["owner"], []).append(r["grant"])
            for owner, grants in by_owner.items():
                if owner not in self.allocator.holders():
                    self.allocator.restore(owner, grants)
        self._publish(ep)

    def _publish(self, ep: Resource, replicas: list[dict[str, Any]] | None = None) -> None:
        """Point the router at the ready instances of ``ep`` (or of ``replicas``)."""
        current = ep.extra.get("replicas") or [] if replicas is None else replicas
        weights = ep.extra.get("weights") or {}
        try:
            config = self.endpoints.config(ep.extra.get("config", ep.spec["EndpointConfigName"]))
            defaults = {
                v["VariantName"]: float(v.get("InitialVariantWeight", 1.0))
                for v in config.spec["ProductionVariants"]
            }
        except Exception:
            defaults = {}
        variants = []
        for vname in dict.fromkeys([*defaults, *(r["variant"] for r in current)]):
            ready = [
                Replica(r["id"], "127.0.0.1", r["port"])
                for r in current
                if r["variant"] == vname and r.get("ready")
            ]
            variants.append(
                Variant(vname, float(weights.get(vname, defaults.get(vname, 1.0))), ready)
            )
        self.router.set(ep.name, Routes(status_of(ep).value, variants))

    # -- creating ---------------------------------------------------------------------

    async def _create(self, ep: Resource) -> None:
        self._publish(ep, [])
        try:
            replicas = await self._bring_up(
                ep, ep.extra["config"], int(ep.extra.get("generation", 0)), {}, "replicas"
            )
        except BringUpFailed as exc:
            self.endpoints.move(
                ep.name, E.CREATING, E.FAILED, str(exc)[:1024], {"failure_reason": str(exc)[:1024]}
            )
            self._publish(self.endpoints.get(ep.name), [])
            return
        except StatusConflict:
            return  # deleted while starting: the delete step stops what was started
        self.endpoints.move(
            ep.name, E.CREATING, E.IN_SERVICE, None, {"replicas": replicas, "variant_notes": {}}
        )
        self._publish(self.endpoints.get(ep.name))

    async def _bring_up(
        self, ep: Resource, config_name: str, generation: int, counts: Mapping[str, int], key: str
    ) -> list[dict[str, Any]]:
        config = self.endpoints.config(config_name).spec
        owner = f"endpoint/{ep.name}/{generation}"
        plan = []
        for v in config["ProductionVariants"]:
            count = int(counts.get(v["VariantName"], v.get("InitialInstanceCount", 1)))
            plan += [(v, i) for i in range(count)]
        requests = [host_request(self.catalog, v["InstanceType"]) for v, _ in plan]
        grants = self.allocator.try_allocate(owner, requests)
        while grants is None:
            self._note(ep.name, self.allocator.waiting_for(requests))
            await asyncio.sleep(0.5)
            if status_of(self.endpoints.get(ep.name)) is E.DELETING:
                raise StatusConflict("Endpoint", ep.name, None, "Deleting")
            grants = self.allocator.try_allocate(owner, requests)
        replicas: list[dict[str, Any]] = []
        try:
            for (variant, index), grant in zip(plan, grants, strict=True):
                replicas.append(await self._start(ep, variant, index, generation, owner, grant))
                self.endpoints.set_extra(ep.name, {key: replicas})
            await self._wait_ready(ep, replicas, key)
        except BringUpFailed:
            self._stop(replicas, kill=True)
            self.allocator.release(owner)
            raise
        return replicas

    async def _start(
        self,
        ep: Resource,
        variant: Mapping[str, Any],
        index: int,
        generation: int,
        owner: str,
        grant: HostGrant,
    ) -> dict[str, Any]:
        model = self.models.get(variant["ModelName"]).spec
        container = model.get("PrimaryContainer") or (model.get("Containers") or [{}])[0]
        rid = f"g{generation}-{variant['VariantName']}-{index + 1}"
        host_dir = self.config.jobs_dir / "endpoints" / ep.name / rid
        run_dir = host_dir.with_name(rid + ".run")
        model_dir = host_dir / "model"
        model_dir.mkdir(parents=True, exist_ok=True)
        run_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in self.config.server_env.items() if k in INHERITED_ENV}
        env.update(
            {
                "AWS_ENDPOINT_URL": self.config.endpoint_url,
                "AWS_ACCESS_KEY_ID": self.config.access_key,
                "AWS_SECRET_ACCESS_KEY": self.config.secret_key,
                "AWS_DEFAULT_REGION": self.config.region,
                "AWS_REGION": self.config.region,
                "PYTHONUNBUFFERED": "1",
            }
        )
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
            env["HOME"] = "/tmp"
        env.update(_gpu_env(grant))
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
            stop_grace_s=10.0,
        )
        handle = self.backend.start(spec)
        return {
            "id": rid,
            "variant": variant["VariantName"],
            "port": port,
            "owner": owner,
            "grant": grant.to_json(),
            "handle": handle.to_json(),
            "ready": False,
            "restarts": 0,
            "image": container.get("Image", ""),
        }

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
            await asyncio.to_thread(_extract, archive, dest)
        except Exception as exc:
            raise TransferError(f"could not unpack {uri}: {exc}") from exc
        finally:
            archive.unlink(missing_ok=True)

    async def _ping(self, replica: Mapping[str, Any]) -> bool:
        try:
            resp = await self.pool.request(
                "127.0.0.1", int(replica["port"]), "GET", "/ping", {}, b"", 2.0
            )
        except (UpstreamError, TimeoutError):
            return False
        return resp.status == 200

    async def _wait_ready(self, ep: Resource, replicas: list[dict[str, Any]], key: str) -> None:
        deadline = time.monotonic() + self.config.start_timeout_s
        while True:
            self._ship(ep.name, replicas)
            pending = [r for r in replicas if not r["ready"]]
            if not pending:
                return
            for r in pending:
                exit_info = self.backend.poll(HostHandle.from_json(r["handle"]))
                if exit_info is not None:
                    self._ship(ep.name, replicas)
                    tail = "\n".join(self._tail(ep.name, r))
                    raise BringUpFailed(
                        f"The model server of variant {r['variant']} ({r['id']}) exited "
                        f"({_describe_exit(exit_info)}) before answering /ping. Last log lines:\n{tail}"
                    )
                if await self._ping(r):
                    r["ready"] = True
            self.endpoints.set_extra(ep.name, {key: replicas})
            if time.monotonic() > deadline:
                raise BringUpFailed(
                    f"The model servers did not answer /ping within {self.config.start_timeout_s:.0f} s."
                )
            if status_of(self.endpoints.get(ep.name)) is E.DELETING:
                raise BringUpFailed("deleted while starting")
            await asyncio.sleep(0.1)

    # -- serving ------------------------------------------------------------------------

    async def _health(self, ep: Resource) -> None:
        replicas = [dict(r) for r in ep.extra.get("replicas") or []]
        self._ship(ep.name, replicas)
        changed = False
        notes = dict(ep.extra.get("variant_notes") or {})
        for r in replicas:
            handle = HostHandle.from_json(r["handle"])
            exit_info = self.backend.poll(handle)
            if exit_info is not None:
                # A dead model server is restarted in place; the variant says so meanwhile.
                spec = LaunchSpec.from_json(_read_spec(handle.run_dir))
                r["restarts"] = int(r.get("restarts", 0)) + 1
                new_run = handle.run_dir.with_name(f"{r['id']}.run{r['restarts']}")
                r["handle"] = self.backend.start(replace(spec, run_dir=new_run)).to_json()
                r["ready"] = False
                self._offsets.pop(r["id"], None)
                message = f"Instance {r['id']} restarted: its model server exited ({_describe_exit(exit_info)})"
                notes[r["variant"]] = {
                    "Status": "Updating",
                    "StatusMessage": message,
                    "StartTime": self.clock.now().isoformat(),
                }
                self.logs.put_events(
                    _group(ep.name), _stream(r), [(int(time.time() * 1000), f"sageport: {message}")]
                )
                changed = True
            elif not r.get("ready") and await self._ping(r):
                r["ready"] = True
                notes.pop(r["variant"], None)
                changed = True
        if changed:
            self.endpoints.set_extra(ep.name, {"replicas": replicas, "variant_notes": notes})
            self._publish(self.endpoints.get(ep.name))

    async def _update(self, ep: Resource) -> None:
        pending = ep.extra.get("pending") or {}
        generation = int(ep.extra.get("generation", 0)) + 1
        try:
            new = await self._bring_up(
                ep, pending["config"], generation, pending.get("counts") or {}, "pending_replicas"
            )
        except BringUpFailed as exc:
            await self._roll_back(ep, str(exc))
            return
        old = ep.extra.get("replicas") or []
        old_routes = self.router.get(ep.name)
        self.endpoints.set_extra(
            ep.name, {"config": pending["config"], "counts": pending.get("counts") or {}}
        )
        self._publish(self.endpoints.get(ep.name), new)  # traffic moves to the new instances here
        await self._drain(old_routes)
        self._stop(old, kill=False)
        for owner in {r["owner"] for r in old}:
            self.allocator.release(owner)
        self.endpoints.move(
            ep.name,
            E.UPDATING,
            E.IN_SERVICE,
            None,
            {
                "replicas": new,
                "pending_replicas": [],
                "pending": None,
                "generation": generation,
                "variant_notes": {},
            },
        )
        self._publish(self.endpoints.get(ep.name))

    async def _drain(self, old: Routes | None) -> None:
        """Wait until requests already sent to the old instances are answered."""
        deadline = time.monotonic() + self.config.drain_timeout_s
        replicas = [r for v in old.variants for r in v.replicas] if old else []
        while time.monotonic() < deadline and any(r.outstanding for r in replicas):
            await asyncio.sleep(0.05)

    async def _roll_back(self, ep: Resource, reason: str) -> None:
        current = status_of(self.endpoints.get(ep.name))
        if current is E.UPDATING:
            self.endpoints.move(
                ep.name, E.UPDATING, E.ROLLING_BACK, "Rolling back: the new configuration failed"
            )
        pending = self.endpoints.get(ep.name).extra.get("pending_replicas") or []
        self._stop(pending, kill=True)
        for owner in {r["owner"] for r in pending}:
            self.allocator.release(owner)
        self.endpoints.move(
            ep.name,
            E.ROLLING_BACK,
            E.IN_SERVICE,
            None,
            {
                "pending_replicas": [],
                "pending": None,
                "failure_reason": f"Update failed and was rolled back: {reason}"[:1024],
            },
        )
        self._publish(self.endpoints.get(ep.name))

    async def _delete(self, ep: Resource) -> None:
        self.router.remove(ep.name)
        replicas = [*(ep.extra.get("replicas") or []), *(ep.extra.get("pending_replicas") or [])]
        self._ship(ep.name, replicas)
        self._stop(replicas, kill=False)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(
            self.backend.poll(HostHandle.from_json(r["handle"])) is None for r in replicas
        ):
            await asyncio.sleep(0.1)
        self._stop(replicas, kill=True)
        for owner in {r["owner"] for r in replicas}:
            self.allocator.release(owner)
        self.endpoints.remove(ep.name)

    # -- helpers --------------------------------------------------------------------------

    def _stop(self, replicas: list[dict[str, Any]], *, kill: bool) -> None:
        for r in replicas:
            handle = HostHandle.from_json(r["handle"])
            (self.backend.kill if kill else self.backend.terminate)(handle)

    def _note(self, name: str, message: str) -> None:
        self.endpoints.set_extra(name, {"queue_message": message})

    def _ship(self, name: str, replicas: list[dict[str, Any]]) -> None:
        for r in replicas:
            handle = HostHandle.from_json(r["handle"])
            key = f"{name}/{r['id']}/{handle.run_dir.name}"
            records, offset = self.backend.read_log(handle, self._offsets.get(key, 0))
            if records:
                self.logs.put_events(
                    _group(name), _stream(r), [(x.timestamp_ms, x.message) for x in records]
                )
                self._offsets[key] = offset

    def _tail(self, name: str, replica: Mapping[str, Any]) -> list[str]:
        return self.logs.tail(_group(name), _stream(replica), 15)


def _group(name: str) -> str:
    return f"/aws/sagemaker/Endpoints/{name}"


def _stream(replica: Mapping[str, Any]) -> str:
    return f"{replica['variant']}/{replica['id']}"


def _describe_exit(info: ExitInfo) -> str:
    if info.returncode is None:
        return info.reason or "unobserved"
    if info.signal:
        return f"killed by signal {info.signal}"
    return f"exit code {info.returncode}"


def _read_spec(run_dir: Path) -> dict[str, Any]:
    import json

    from sageport.backends.base import SPEC_FILE

    data: dict[str, Any] = json.loads((run_dir / SPEC_FILE).read_text())
    return data


def _extract(archive: Path, dest: Path) -> None:
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
