"""Changing a serving endpoint: weights, instance counts, a new configuration, rollback.

Every change passes through ``Updating`` and ends ``InService`` (or rolls back), so a client
that waits for InService after UpdateEndpoint or UpdateEndpointWeightsAndCapacities sees
the change in effect:

- **Weights only**: the routes are republished with the new weights; nothing restarts.
- **Instance counts** (same configuration): new instances start beside the serving ones and
  join the routes once they answer /ping; surplus instances leave the routes, drain and stop.
  If the additions only fit once the surplus is gone, the surplus goes first.
- **A new configuration**, blue/green when it fits beside the old one: all new instances start,
  traffic moves when every one answers /ping, then the old ones drain and stop. When it does
  not fit beside the old one but would fit in their place (typically: the node has exactly the
  GPUs for one copy), it is a **rolling** replacement instead — decided by asking the allocator,
  stated in DescribeEndpoint (PendingDeploymentSummary) and in the log: for each new instance
  that cannot be placed, one old instance leaves the routes, drains and stops; the new one
  starts and joins the routes when ready, so old and new serve side by side meanwhile and
  capacity is reduced (with a single old instance, requests get ModelNotReadyException until
  the new one is ready). If neither fits, the update waits for the GPUs (other work holds
  them) and says so.

A failed bring-up rolls back: new instances stop; old instances stopped by a rolling update
are started again on whatever GPUs are free (``UpdateRollbackFailed`` if one cannot); the
endpoint is InService with FailureReason "Update failed and was rolled back: ...".
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from sageport.clock import Clock
from sageport.domain.endpoint import EndpointStatus
from sageport.domain.hosts import HostRequest
from sageport.domain.runtime import EndpointInstance, EndpointRuntime, ReplicaSlot
from sageport.scheduler.endpoint_bringup import BringUp
from sageport.scheduler.endpoint_instances import (
    Abandoned,
    BringUpFailed,
    Instances,
    Item,
    check_alive,
    instance_id,
)
from sageport.scheduler.endpoint_placement import Placement
from sageport.scheduler.endpoint_routes import RoutePublisher
from sageport.scheduler.records import EndpointRecords
from sageport.store.resources import Resource

E = EndpointStatus
SERVING, PENDING = ReplicaSlot.SERVING, ReplicaSlot.PENDING


class EndpointUpdates:
    """Carries an endpoint from ``Updating`` (or ``RollingBack``) to ``InService``."""

    def __init__(
        self,
        records: EndpointRecords,
        placement: Placement,
        bring_up: BringUp,
        routes: RoutePublisher,
        instances: Instances,
        clock: Clock,
    ) -> None:
        self.records = records
        self.clock = clock
        self.placement = placement
        self.bring_up = bring_up
        self.routes = routes
        self.instances = instances

    async def update(self, ep: Resource) -> None:
        rt = EndpointRuntime.from_json(ep.state)
        pending = rt.pending or {}
        current = rt.config or ep.spec["EndpointConfigName"]
        target = pending.get("config") or current
        try:
            if target == current and not pending.get("counts"):
                weights = _weights(ep, pending)
                self._finish(ep.name, lambda r: replace(r, weights=weights))
            elif target == current:
                await self._scale(ep, pending)
            else:
                await self._replace(ep, pending, current, target)
        except BringUpFailed as exc:
            await self.roll_back(self.records.get(ep.name), str(exc))
        except Abandoned:
            return  # deleted meanwhile: the delete step stops everything recorded

    def _finish(self, name: str, changes: Callable[[EndpointRuntime], EndpointRuntime]) -> None:
        def finished(r: EndpointRuntime) -> EndpointRuntime:
            done = replace(
                r,
                pending_replicas=[],
                retired=[],
                pending=None,
                queue_message=None,
                rollout=None,
                failure_reason=None,
            )
            return changes(done)

        self.records.move(name, E.UPDATING, E.IN_SERVICE, runtime=finished)
        self.routes.publish(self.records.get(name))

    # -- instance counts --------------------------------------------------------------------

    async def _scale(self, ep: Resource, pending: dict[str, Any]) -> None:
        name = ep.name
        rt = EndpointRuntime.from_json(ep.state)
        config = self.records.config(rt.config or ep.spec["EndpointConfigName"]).spec
        counts: dict[str, int] = pending["counts"]
        serving = [r.copy() for r in rt.replicas]
        generation = rt.generation
        additions: list[Item] = []
        surplus: list[EndpointInstance] = []
        for v in config["ProductionVariants"]:
            mine = [r for r in serving if r.variant == v["VariantName"]]
            want = int(counts.get(v["VariantName"], len(mine)))
            if want < len(mine):
                surplus += mine[want:]
            index = max((r.index for r in mine), default=-1) + 1
            for _ in range(want - len(mine)):
                index = self._fresh_index(name, generation, v, index)
                additions.append((v, index))
                index += 1
        requests = [self.placement.request_of(v["InstanceType"]) for v, _ in additions]
        owners = [self.placement.owner(name, instance_id(generation, v, i)) for v, i in additions]
        if (
            additions
            and surplus
            and not self.placement.fits_now(requests)
            and self.placement.fits_without(surplus, requests)
        ):
            # The additions only fit in the surplus's place: the surplus goes first.
            serving = await self._retire(ep, serving, surplus, "a smaller instance count")
            self.instances.discard(name, surplus)
            surplus = []
        new: list[EndpointInstance] = []
        if additions:
            grants = await self.placement.wait_for_grants(name, owners, requests)
            new = await self.bring_up.start_replicas(name, additions, generation, grants, PENDING)
            await self.bring_up.wait_ready(name, new, PENDING)
            serving += new
            self.records.update_runtime(
                name, lambda r: replace(r, replicas=serving, pending_replicas=[])
            )
            self.routes.publish(self.records.get(name), serving)
        if surplus:
            serving = await self._retire(ep, serving, surplus, "a smaller instance count")
            self.instances.discard(name, surplus)
        committed = {**rt.counts, **counts}
        weights = _weights(ep, pending)
        self._finish(
            name, lambda r: replace(r, replicas=serving, counts=committed, weights=weights)
        )

    def _fresh_index(self, name: str, generation: int, variant: Any, index: int) -> int:
        """The next index whose host folder was never used (ids are never reused)."""
        while self.instances.used(name, instance_id(generation, variant, index)):
            index += 1
        return index

    async def _retire(
        self,
        ep: Resource,
        serving: list[EndpointInstance],
        leaving: list[EndpointInstance],
        why: str,
    ) -> list[EndpointInstance]:
        """Take ``leaving`` out of the routes, let their requests finish, stop and release them."""
        ids = {r.id for r in leaving}
        kept = [r for r in serving if r.id not in ids]
        before = self.routes.current(ep.name)
        self.records.update_runtime(ep.name, lambda r: replace(r, replicas=kept))
        self.routes.publish(self.records.get(ep.name), kept)
        await self.routes.drain(before, ids)
        for r in leaving:
            self.instances.note(ep.name, r, f"stopping instance {r.id} for {why}")
        await self.instances.stop_and_wait(leaving)
        self.placement.release(leaving)
        return kept

    # -- a new configuration ----------------------------------------------------------------

    async def _replace(
        self, ep: Resource, pending: dict[str, Any], current: str, target: str
    ) -> None:
        name = ep.name
        rt = EndpointRuntime.from_json(ep.state)
        generation = rt.generation + 1
        # An attempt interrupted by a server restart left instances: they go, ids move on.
        leftovers = rt.pending_replicas
        self.instances.stop(leftovers, kill=True)
        self.placement.release(leftovers)
        self.records.update_runtime(
            name, lambda r: replace(r, generation=generation, pending_replicas=[])
        )
        config = self.records.config(target).spec
        counts = pending.get("counts") or {}
        items: list[Item] = [
            (v, i)
            for v in config["ProductionVariants"]
            for i in range(int(counts.get(v["VariantName"], v.get("InitialInstanceCount", 1))))
        ]
        requests = [self.placement.request_of(v["InstanceType"]) for v, _ in items]
        owners = [self.placement.owner(name, instance_id(generation, v, i)) for v, i in items]
        old = [r.copy() for r in rt.replicas]
        while True:
            grants = self.placement.allocate(owners, requests)
            if grants is not None:
                self.placement.queue(name, None)
                new = await self.bring_up.start_replicas(name, items, generation, grants, PENDING)
                await self.bring_up.wait_ready(name, new, PENDING)
                break
            if old and self.placement.fits_without(old, requests):
                self.placement.queue(name, None)
                new, old = await self._rolling(ep, items, owners, requests, old, [current, target])
                break
            self.placement.queue(name, self.placement.waiting_for(requests))
            await _pause()
            check_alive(self.records, name)
        before = self.routes.current(name)
        retain = bool(pending.get("retain"))
        kept_counts = counts if not retain else {**rt.counts, **counts}
        kept_weights = rt.weights if retain else {}
        self.records.update_runtime(
            name,
            lambda r: replace(r, config=target, counts=kept_counts, weights=kept_weights),
        )
        self.routes.publish(self.records.get(name), new)  # traffic moves to the new instances here
        await self.routes.drain(before, {r.id for r in old})
        await self.instances.stop_and_wait(old)
        self.placement.release(old)
        retired = EndpointRuntime.from_json(self.records.get(name).state).retired
        self.instances.discard(name, old + retired)
        self._finish(name, lambda r: replace(r, replicas=new, variant_notes={}))

    async def _rolling(
        self,
        ep: Resource,
        items: list[Item],
        owners: list[str],
        requests: list[HostRequest],
        old: list[EndpointInstance],
        configs: list[str],
    ) -> tuple[list[EndpointInstance], list[EndpointInstance]]:
        """Replace instance by instance; returns (new instances, old ones still serving)."""
        name = ep.name
        generation = EndpointRuntime.from_json(self.records.get(name).state).generation
        gpus = sum(r.gpus for r in requests)
        message = (
            "Replacing instances one at a time: the new configuration "
            + (f"needs {gpus} GPU(s) and " if gpus else "")
            + f"does not fit beside the {len(old)} serving instance(s) "
            f"({self.placement.free_gpus()} GPU(s) free); capacity is reduced until "
            "the update completes."
        )
        rollout = {"message": message, "since": self.clock.now().isoformat()}
        self.records.update_runtime(name, lambda r: replace(r, rollout=rollout))
        for r in old[:1]:
            self.instances.note(name, r, message)
        serving = list(old)
        retired = list(EndpointRuntime.from_json(ep.state).retired)
        new: list[EndpointInstance] = []
        for item, owner, request in zip(items, owners, requests, strict=True):
            while (grants := self.placement.allocate([owner], [request])) is None:
                victim = max(serving, key=lambda r: len(r.grant.get("gpus", [])), default=None)
                if victim is None:
                    self.placement.queue(name, self.placement.waiting_for([request]))
                    await _pause()
                    check_alive(self.records, name)
                    continue
                serving.remove(victim)
                retired.append(victim)
                self.records.update_runtime(name, lambda r: replace(r, retired=list(retired)))
                current = self.records.get(name)
                before = self.routes.current(name)
                self.records.update_runtime(name, lambda r: replace(r, replicas=list(serving)))
                self.routes.publish(current, serving + new, configs=configs)
                await self.routes.drain(before, {victim.id})
                self.instances.note(name, victim, f"stopping instance {victim.id}: {message}")
                await self.instances.stop_and_wait([victim])
                self.placement.release([victim])
            self.placement.queue(name, None)
            new = await self.bring_up.start_replicas(
                name, [item], generation, grants, PENDING, existing=new
            )
            await self.bring_up.wait_ready(name, new, PENDING)
            self.routes.publish(self.records.get(name), serving + new, configs=configs[::-1])
        return new, serving

    # -- rollback -------------------------------------------------------------------------------

    async def roll_back(self, ep: Resource, reason: str) -> None:
        name = ep.name
        if self.records.status_of(ep) is E.UPDATING:
            self.records.move(
                name, E.UPDATING, E.ROLLING_BACK, "Rolling back: the new configuration failed"
            )
        ep = self.records.get(name)
        rt = EndpointRuntime.from_json(ep.state)
        pending = rt.pending_replicas
        self.instances.stop(pending, kill=True)
        self.placement.release(pending)
        self.instances.discard(name, pending)
        serving = [r.copy() for r in rt.replicas]
        retired = [r.copy() for r in rt.retired]
        reason = f"Update failed and was rolled back: {reason}"[:1024]
        try:
            if retired:
                for r in retired:
                    owner = self.placement.owner(name, r.id)
                    request = self.placement.request_of(r.instance_type or "ml.m5.large")
                    (grant,) = await self.placement.wait_for_grants(name, [owner], [request])
                    r.owner = owner
                    self.instances.relaunch(r, grant)
                    self.instances.note(name, r, "started again: the rolling update failed")
                serving += retired
                self.records.update_runtime(
                    name, lambda r: replace(r, replicas=serving, retired=[])
                )
                await self.bring_up.wait_ready(name, serving, SERVING)
        except BringUpFailed as exc:
            ready = [r for r in serving if r.ready]
            # The old instances that did not come back are stopped and give back their GPUs:
            # they leave the state here, and nothing would stop them later.
            lost = [r for r in serving if not r.ready]
            self.instances.stop(lost, kill=True)
            self.placement.release(lost)
            self.instances.discard(name, lost)
            failure = f"{reason[:500]} Restarting an old instance failed too: {exc}"[:1024]
            self.records.move(
                name,
                E.ROLLING_BACK,
                E.UPDATE_ROLLBACK_FAILED,
                runtime=lambda r: replace(
                    r,
                    replicas=ready,
                    pending_replicas=[],
                    pending=None,
                    rollout=None,
                    failure_reason=failure,
                ),
            )
            self.routes.publish(self.records.get(name))
            return
        except Abandoned:
            return
        self.records.move(
            name,
            E.ROLLING_BACK,
            E.IN_SERVICE,
            runtime=lambda r: replace(
                r,
                replicas=serving,
                retired=[],
                pending_replicas=[],
                pending=None,
                queue_message=None,
                rollout=None,
                failure_reason=reason,
            ),
        )
        self.routes.publish(self.records.get(name))


def _weights(ep: Resource, pending: dict[str, Any]) -> dict[str, float]:
    return {**EndpointRuntime.from_json(ep.state).weights, **(pending.get("weights") or {})}


async def _pause() -> None:
    await asyncio.sleep(0.5)
