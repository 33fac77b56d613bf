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

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from sageport.domain.endpoint import EndpointStatus
from sageport.domain.runtime import EndpointRuntime, ReplicaSlot
from sageport.scheduler.endpoint_core import Abandoned, EndpointCore, Item
from sageport.scheduler.endpoint_instances import BringUpFailed, instance_id
from sageport.services.endpoints import status_of
from sageport.store.resources import Resource

E = EndpointStatus
SERVING, PENDING = ReplicaSlot.SERVING, ReplicaSlot.PENDING


class EndpointUpdates(EndpointCore):
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
            await self.roll_back(self.endpoints.get(ep.name), str(exc))
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

        self.endpoints.move(name, E.UPDATING, E.IN_SERVICE, runtime=finished)
        self.publish(self.endpoints.get(name))

    # -- instance counts --------------------------------------------------------------------

    async def _scale(self, ep: Resource, pending: dict[str, Any]) -> None:
        name = ep.name
        rt = EndpointRuntime.from_json(ep.state)
        config = self.endpoints.config(rt.config or ep.spec["EndpointConfigName"]).spec
        counts: dict[str, int] = pending["counts"]
        serving = [dict(r) for r in rt.replicas]
        generation = rt.generation
        additions: list[Item] = []
        surplus: list[dict[str, Any]] = []
        for v in config["ProductionVariants"]:
            mine = [r for r in serving if r["variant"] == v["VariantName"]]
            want = int(counts.get(v["VariantName"], len(mine)))
            if want < len(mine):
                surplus += mine[want:]
            index = max((_index(r) for r in mine), default=-1) + 1
            for _ in range(want - len(mine)):
                index = self._fresh_index(name, generation, v, index)
                additions.append((v, index))
                index += 1
        requests = [self.request_of(v["InstanceType"]) for v, _ in additions]
        owners = [self.owner(name, instance_id(generation, v, i)) for v, i in additions]
        if (
            additions
            and surplus
            and not self.fits_now(requests)
            and self.fits_without(surplus, requests)
        ):
            # The additions only fit in the surplus's place: the surplus goes first.
            serving = await self._retire(ep, serving, surplus, "a smaller instance count")
            self.instances.discard(name, surplus)
            surplus = []
        new: list[dict[str, Any]] = []
        if additions:
            grants = await self.wait_for_grants(name, owners, requests)
            new = await self.start_replicas(name, additions, generation, grants, PENDING)
            await self.wait_ready(name, new, PENDING)
            serving += new
            self.endpoints.update_runtime(
                name, lambda r: replace(r, replicas=serving, pending_replicas=[])
            )
            self.publish(self.endpoints.get(name), serving)
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
        self, ep: Resource, serving: list[dict[str, Any]], leaving: list[dict[str, Any]], why: str
    ) -> list[dict[str, Any]]:
        """Take ``leaving`` out of the routes, let their requests finish, stop and release them."""
        ids = {r["id"] for r in leaving}
        kept = [r for r in serving if r["id"] not in ids]
        before = self.router.get(ep.name)
        self.endpoints.update_runtime(ep.name, lambda r: replace(r, replicas=kept))
        self.publish(self.endpoints.get(ep.name), kept)
        await self.drain(before, ids)
        for r in leaving:
            self.instances.note(ep.name, r, f"stopping instance {r['id']} for {why}")
        await self.instances.stop_and_wait(leaving)
        self.release(leaving)
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
        self.release(leftovers)
        self.endpoints.update_runtime(
            name, lambda r: replace(r, generation=generation, pending_replicas=[])
        )
        config = self.endpoints.config(target).spec
        counts = pending.get("counts") or {}
        items: list[Item] = [
            (v, i)
            for v in config["ProductionVariants"]
            for i in range(int(counts.get(v["VariantName"], v.get("InitialInstanceCount", 1))))
        ]
        requests = [self.request_of(v["InstanceType"]) for v, _ in items]
        owners = [self.owner(name, instance_id(generation, v, i)) for v, i in items]
        old = [dict(r) for r in rt.replicas]
        while True:
            grants = self.allocate(owners, requests)
            if grants is not None:
                self.queue(name, None)
                new = await self.start_replicas(name, items, generation, grants, PENDING)
                await self.wait_ready(name, new, PENDING)
                break
            if old and self.fits_without(old, requests):
                self.queue(name, None)
                new, old = await self._rolling(ep, items, owners, requests, old, [current, target])
                break
            self.queue(name, self.allocator.waiting_for(requests))
            await _pause()
            self.check_alive(name)
        before = self.router.get(name)
        retain = bool(pending.get("retain"))
        kept_counts = counts if not retain else {**rt.counts, **counts}
        kept_weights = rt.weights if retain else {}
        self.endpoints.update_runtime(
            name,
            lambda r: replace(r, config=target, counts=kept_counts, weights=kept_weights),
        )
        self.publish(self.endpoints.get(name), new)  # traffic moves to the new instances here
        await self.drain(before, {r["id"] for r in old})
        await self.instances.stop_and_wait(old)
        self.release(old)
        retired = EndpointRuntime.from_json(self.endpoints.get(name).state).retired
        self.instances.discard(name, old + retired)
        self._finish(name, lambda r: replace(r, replicas=new, variant_notes={}))

    async def _rolling(
        self,
        ep: Resource,
        items: list[Item],
        owners: list[str],
        requests: list[Any],
        old: list[dict[str, Any]],
        configs: list[str],
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Replace instance by instance; returns (new instances, old ones still serving)."""
        name = ep.name
        generation = EndpointRuntime.from_json(self.endpoints.get(name).state).generation
        gpus = sum(r.gpus for r in requests)
        message = (
            "Replacing instances one at a time: the new configuration "
            + (f"needs {gpus} GPU(s) and " if gpus else "")
            + f"does not fit beside the {len(old)} serving instance(s) "
            f"({len(self.allocator.free_gpus())} GPU(s) free); capacity is reduced until "
            "the update completes."
        )
        rollout = {"message": message, "since": self.clock.now().isoformat()}
        self.endpoints.update_runtime(name, lambda r: replace(r, rollout=rollout))
        for r in old[:1]:
            self.instances.note(name, r, message)
        serving = list(old)
        retired = list(EndpointRuntime.from_json(ep.state).retired)
        new: list[dict[str, Any]] = []
        for item, owner, request in zip(items, owners, requests, strict=True):
            while (grants := self.allocate([owner], [request])) is None:
                victim = max(serving, key=lambda r: len(r["grant"].get("gpus", [])), default=None)
                if victim is None:
                    self.queue(name, self.allocator.waiting_for([request]))
                    await _pause()
                    self.check_alive(name)
                    continue
                serving.remove(victim)
                retired.append(victim)
                self.endpoints.update_runtime(name, lambda r: replace(r, retired=list(retired)))
                current = self.endpoints.get(name)
                before = self.router.get(name)
                self.endpoints.update_runtime(name, lambda r: replace(r, replicas=list(serving)))
                self.publish(current, serving + new, configs=configs)
                await self.drain(before, {victim["id"]})
                self.instances.note(name, victim, f"stopping instance {victim['id']}: {message}")
                await self.instances.stop_and_wait([victim])
                self.release([victim])
            self.queue(name, None)
            new = await self.start_replicas(name, [item], generation, grants, PENDING, existing=new)
            await self.wait_ready(name, new, PENDING)
            self.publish(self.endpoints.get(name), serving + new, configs=configs[::-1])
        return new, serving

    # -- rollback -------------------------------------------------------------------------------

    async def roll_back(self, ep: Resource, reason: str) -> None:
        name = ep.name
        if status_of(ep) is E.UPDATING:
            self.endpoints.move(
                name, E.UPDATING, E.ROLLING_BACK, "Rolling back: the new configuration failed"
            )
        ep = self.endpoints.get(name)
        rt = EndpointRuntime.from_json(ep.state)
        pending = rt.pending_replicas
        self.instances.stop(pending, kill=True)
        self.release(pending)
        self.instances.discard(name, pending)
        serving = [dict(r) for r in rt.replicas]
        retired = [dict(r) for r in rt.retired]
        reason = f"Update failed and was rolled back: {reason}"[:1024]
        try:
            if retired:
                for r in retired:
                    owner = self.owner(name, r["id"])
                    request = self.request_of(r.get("instance_type") or "ml.m5.large")
                    (grant,) = await self.wait_for_grants(name, [owner], [request])
                    r["owner"] = owner
                    self.instances.relaunch(r, grant)
                    self.instances.note(name, r, "started again: the rolling update failed")
                serving += retired
                self.endpoints.update_runtime(
                    name, lambda r: replace(r, replicas=serving, retired=[])
                )
                await self.wait_ready(name, serving, SERVING)
        except BringUpFailed as exc:
            ready = [r for r in serving if r.get("ready")]
            failure = f"{reason[:500]} Restarting an old instance failed too: {exc}"[:1024]
            self.endpoints.move(
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
            self.publish(self.endpoints.get(name))
            return
        except Abandoned:
            return
        self.endpoints.move(
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
        self.publish(self.endpoints.get(name))


def _weights(ep: Resource, pending: dict[str, Any]) -> dict[str, float]:
    return {**EndpointRuntime.from_json(ep.state).weights, **(pending.get("weights") or {})}


def _index(replica: dict[str, Any]) -> int:
    if "index" in replica:
        return int(replica["index"])
    return int(str(replica["id"]).rsplit("-", 1)[-1]) - 1


async def _pause() -> None:
    import asyncio

    await asyncio.sleep(0.5)
