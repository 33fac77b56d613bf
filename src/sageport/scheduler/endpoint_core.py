"""What every endpoint step needs: GPUs per instance, readiness, routes, draining.

Allocation is per instance: each instance holds its own allocator entry (``owner``), so a
rolling update or a scale-in releases instances one by one. A group of instances is still
granted all at once or not at all (``allocate``: one all-or-nothing ``try_allocate``, then
the grants are re-registered per instance), and :meth:`EndpointCore.fits_without` asks the
allocator whether a request would fit once some instances are gone, without stopping them.

Readiness (:meth:`EndpointCore.wait_ready`) is SageMaker's container startup health check:
``/ping`` must answer 200 within the variant's ``ContainerStartupHealthCheckTimeoutInSeconds``
(default 4 minutes). A model server whose model failed to load answers 500 with the
traceback: that fails the bring-up at once, with the traceback's tail as FailureReason.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from sageport.backends.base import Backend
from sageport.catalog import Catalog
from sageport.catalog.hosts import host_request
from sageport.clock import Clock
from sageport.domain.endpoint import EndpointStatus
from sageport.domain.hosts import HostRequest
from sageport.domain.runtime import EndpointRuntime, ReplicaSlot
from sageport.scheduler.allocator import Allocator, HostGrant
from sageport.scheduler.endpoint_instances import (
    BringUpFailed,
    EndpointRunnerConfig,
    Instances,
    describe_exit,
    fit_reason,
    instance_id,
    log_group,
)
from sageport.services.endpoints import EndpointService, status_of
from sageport.services.logs import LogService
from sageport.services.models import ModelService
from sageport.serving.config import LOAD_FAILED_EXIT
from sageport.serving.router import Replica, Routes, TrafficRouter, Variant
from sageport.serving.upstream import UpstreamPool
from sageport.storage.objectstore import ObjectStore
from sageport.store.errors import NotFound
from sageport.store.resources import Resource

E = EndpointStatus
Item = tuple[Mapping[str, Any], int]
"""One instance to start: its production variant and its index within the variant."""


class Abandoned(Exception):
    """The endpoint is being deleted (or is gone): the step in progress stops."""


class EndpointCore:
    def __init__(
        self,
        endpoints: EndpointService,
        models: ModelService,
        store: ObjectStore,
        logs: LogService,
        backend: Backend,
        allocator: Allocator,
        catalog: Catalog,
        router: TrafficRouter,
        pool: UpstreamPool,
        clock: Clock,
        config: EndpointRunnerConfig,
    ) -> None:
        self.endpoints = endpoints
        self.allocator = allocator
        self.catalog = catalog
        self.router = router
        self.pool = pool
        self.clock = clock
        self.config = config
        self.instances = Instances(backend, models, store, logs, pool, config)
        self._published: dict[str, str] = {}
        self._deadlines: dict[str, float] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._restored: set[str] = set()

    # -- allocation ---------------------------------------------------------------------

    @staticmethod
    def owner(endpoint: str, rid: str) -> str:
        return f"endpoint/{endpoint}/{rid}"

    def request_of(self, instance_type: str) -> HostRequest:
        return host_request(self.catalog, instance_type)

    def allocate(self, owners: list[str], requests: list[HostRequest]) -> list[HostGrant] | None:
        """All of ``requests`` at once, each held under its own owner; or None."""
        group = f"endpoint-group/{uuid.uuid4().hex}"
        grants = self.allocator.try_allocate(group, requests)
        if grants is None:
            return None
        self.allocator.release(group)
        for owner, grant in zip(owners, grants, strict=True):
            self.allocator.restore(owner, [grant.to_json()])
        return grants

    def fits_without(self, replicas: list[dict[str, Any]], requests: list[HostRequest]) -> bool:
        """Whether ``requests`` would be granted if ``replicas`` released what they hold.

        Asked of the allocator itself (release, try, restore — no await in between, so no
        other step sees the intermediate state), so GPU matching and CPU/memory count too.
        """
        held = {r["owner"]: [r["grant"]] for r in replicas if r.get("owner")}
        for owner in held:
            self.allocator.release(owner)
        probe = f"endpoint-probe/{uuid.uuid4().hex}"
        try:
            return self.allocator.try_allocate(probe, requests) is not None
        finally:
            self.allocator.release(probe)
            for owner, grants in held.items():
                self.allocator.restore(owner, grants)

    def fits_now(self, requests: list[HostRequest]) -> bool:
        probe = f"endpoint-probe/{uuid.uuid4().hex}"
        fits = self.allocator.try_allocate(probe, requests) is not None
        self.allocator.release(probe)
        return fits

    def release(self, replicas: list[dict[str, Any]]) -> None:
        for owner in {r["owner"] for r in replicas if r.get("owner")}:
            self.allocator.release(owner)

    async def wait_for_grants(
        self, name: str, owners: list[str], requests: list[HostRequest]
    ) -> list[HostGrant]:
        """Grants for ``requests``, waiting (with the reason in DescribeEndpoint) if need be."""
        while True:
            grants = self.allocate(owners, requests)
            if grants is not None:
                self.queue(name, None)
                return grants
            self.queue(name, self.allocator.waiting_for(requests))
            await asyncio.sleep(0.5)
            self.check_alive(name)

    def queue(self, name: str, message: str | None) -> None:
        """What the endpoint waits for, shown in DescribeEndpoint's VariantStatus."""
        ep = self.endpoints.get(name)
        old = EndpointRuntime.from_json(ep.state).queue_message or {}
        if message is None:
            if old:
                self.endpoints.update_runtime(name, lambda r: replace(r, queue_message=None))
        elif old.get("message") != message:
            note = {"message": message, "since": self.clock.now().isoformat()}
            self.endpoints.update_runtime(name, lambda r: replace(r, queue_message=note))

    def check_alive(self, name: str) -> Resource:
        try:
            ep = self.endpoints.get(name)
        except Exception as exc:
            raise Abandoned(name) from exc
        if status_of(ep) is E.DELETING:
            raise Abandoned(name)
        return ep

    # -- bring-up -------------------------------------------------------------------------

    async def start_replicas(
        self,
        name: str,
        items: list[Item],
        generation: int,
        grants: list[HostGrant],
        slot: ReplicaSlot,
        existing: list[dict[str, Any]] | None = None,
    ) -> list[dict[str, Any]]:
        """Start one model server per item (their grants already held); store them in ``slot``.

        Returns ``existing`` plus the new ones. On failure the new ones are stopped and every
        grant given here is released.
        """
        started = list(existing or [])
        new: list[dict[str, Any]] = []
        arn = self.endpoints.get(name).arn
        try:
            for (variant, index), grant in zip(items, grants, strict=True):
                r = await self.instances.start(name, variant, index, generation, grant, arn)
                r["owner"] = self.owner(name, r["id"])
                self._deadlines[r["id"]] = time.monotonic() + float(r["startup_timeout_s"])
                new.append(r)
                self._store(name, slot, started + new)
        except BaseException:
            self.instances.stop(new, kill=True)
            for (variant, index), _ in zip(items, grants, strict=True):
                self.allocator.release(self.owner(name, instance_id(generation, variant, index)))
            raise
        return started + new

    def _store(self, name: str, slot: ReplicaSlot, replicas: list[dict[str, Any]]) -> None:
        self.endpoints.update_runtime(name, lambda rt: rt.with_slot(slot, replicas))

    async def wait_ready(
        self, name: str, replicas: list[dict[str, Any]], slot: ReplicaSlot
    ) -> None:
        """Until every replica answers /ping 200; BringUpFailed with the reason otherwise."""
        while True:
            self.instances.ship(name, replicas)
            pending = [r for r in replicas if not r.get("ready")]
            if not pending:
                return
            for r in pending:
                exit_info = self.instances.poll(r)
                if exit_info is not None:
                    self.instances.ship(name, replicas)
                    what = (
                        "could not load the model"
                        if exit_info.returncode == LOAD_FAILED_EXIT
                        else f"exited ({describe_exit(exit_info)})"
                    )
                    tail = self.instances.tail(name, r)
                    # an import that failed names the interpreter before the log tail
                    note = self.instances.import_note(r, tail)
                    log_at = f"Log: {log_group(name)}." + (f"\n{note}\n" if note else " ")
                    raise BringUpFailed(
                        fit_reason(
                            f"The model server of production variant {r['variant']} (instance "
                            f"{r['id']}) {what} before passing the ping health check. "
                            f"{log_at}Last lines:",
                            "\n".join(tail),
                        )
                    )
                ping = await self.instances.ping(r)
                if ping.status == 200:
                    r["ready"] = True
                    self._deadlines.pop(r["id"], None)
                elif ping.status == 500:
                    self.instances.ship(name, replicas)
                    detail = ping.body.split("\n", 1)[-1] if "\n" in ping.body else ping.body
                    note = self.instances.import_note(r, detail.splitlines())
                    raise BringUpFailed(
                        fit_reason(
                            f"The primary container for production variant {r['variant']} did not "
                            f"pass the ping health check: the model failed to load (instance "
                            f"{r['id']}; log: {log_group(name)})." + (f"\n{note}" if note else ""),
                            detail,
                        )
                    )
                elif time.monotonic() > self._deadlines.setdefault(
                    r["id"], time.monotonic() + float(r.get("startup_timeout_s") or 240)
                ):
                    raise BringUpFailed(
                        fit_reason(
                            f"The primary container for production variant {r['variant']} did not "
                            f"pass the ping health check within {r.get('startup_timeout_s')} s "
                            f"(ContainerStartupHealthCheckTimeoutInSeconds; instance {r['id']}). "
                            "Last log lines:",
                            "\n".join(self.instances.tail(name, r)),
                        )
                    )
            try:
                self.endpoints.update_runtime(name, lambda rt: rt.with_slot(slot, replicas))
            except NotFound:
                raise Abandoned(name) from None
            self.check_alive(name)
            await asyncio.sleep(0.1)

    # -- routes -----------------------------------------------------------------------------

    def publish(
        self,
        ep: Resource,
        replicas: list[dict[str, Any]] | None = None,
        *,
        configs: list[str] | None = None,
        weights: Mapping[str, float] | None = None,
    ) -> None:
        """Point the router at the ready instances of ``ep`` (or of ``replicas``).

        Variants and default weights come from ``configs`` (first wins; during a rolling
        update the new and the old configuration), weights from ``weights`` or the
        endpoint's. Nothing happens when nothing changed since the last call.
        """
        rt = EndpointRuntime.from_json(ep.state)
        current = rt.replicas if replicas is None else replicas
        configs = configs or [rt.config or ep.spec["EndpointConfigName"]]
        chosen = dict(rt.weights) if weights is None else dict(weights)
        status = status_of(ep).value
        ready = [(r["id"], r["variant"], int(r["port"]), bool(r.get("ready"))) for r in current]
        signature = json.dumps([status, configs, chosen, ready], sort_keys=True)
        if self._published.get(ep.name) == signature:
            return
        defaults: dict[str, float] = {}
        for config_name in configs:
            try:
                spec = self.endpoints.config(config_name).spec
            except Exception:
                continue  # a deleted config: its variants keep weight 1
            for v in spec["ProductionVariants"]:
                defaults.setdefault(v["VariantName"], float(v.get("InitialVariantWeight", 1.0)))
        variants = []
        for vname in dict.fromkeys([*defaults, *(r["variant"] for r in current)]):
            replicas_here = [
                Replica(r["id"], "127.0.0.1", int(r["port"]))
                for r in current
                if r["variant"] == vname and r.get("ready")
            ]
            weight = float(chosen.get(vname, defaults.get(vname, 1.0)))
            variants.append(Variant(vname, weight, replicas_here))
        self.router.set(ep.name, Routes(status, variants))
        self._published[ep.name] = signature

    def forget(self, name: str) -> None:
        self.router.remove(name)
        self._published.pop(name, None)

    async def drain(self, routes: Routes | None, ids: set[str] | None = None) -> None:
        """Wait until requests already sent to those instances (all, or ``ids``) are answered."""
        deadline = time.monotonic() + self.config.drain_timeout_s
        replicas = [
            r
            for v in (routes.variants if routes else [])
            for r in v.replicas
            if ids is None or r.id in ids
        ]
        while time.monotonic() < deadline and any(r.outstanding for r in replicas):
            await asyncio.sleep(0.05)
