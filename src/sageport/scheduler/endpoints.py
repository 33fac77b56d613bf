"""Carrying endpoints through their lives: start model servers, watch them, update, delete.

Each instance of each production variant is one model-server process
(``python -m sageport.serving.server``, see ``endpoint_instances``) holding the GPUs its
instance type has. :meth:`EndpointRunner.tick` is the endpoint's life, top to bottom: create
(``Creating`` → ``InService`` or ``Failed``), keep healthy (restart a model server that dies
and keep the last restart visible in DescribeEndpoint), update (``endpoint_updates``: weights,
counts, blue/green or rolling), roll back, delete. The runner composes small parts, none of
which inherits another:

- ``endpoint_placement.Placement``: GPUs per instance from the allocator, the queue note;
- ``endpoint_instances.Instances``: the model-server processes (start, ping, relaunch, stop, logs);
- ``endpoint_bringup.BringUp``: start instances and wait for their /ping health check;
- ``endpoint_routes.RoutePublisher``: the router's view of what is ready, and draining;
- ``endpoint_updates.EndpointUpdates``: UpdateEndpoint* and the rollback.

It sees the endpoint records, logs and models only through ``scheduler.records``' protocols.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import replace
from typing import Any

from sageport.backends.base import Backend
from sageport.catalog import Catalog
from sageport.clock import Clock
from sageport.domain.endpoint import EndpointStatus
from sageport.domain.runtime import EndpointRuntime, ReplicaSlot
from sageport.scheduler.allocator import Allocator
from sageport.scheduler.endpoint_bringup import BringUp
from sageport.scheduler.endpoint_instances import (
    Abandoned,
    BringUpFailed,
    EndpointRunnerConfig,
    Instances,
    describe_exit,
    instance_id,
)
from sageport.scheduler.endpoint_placement import Placement
from sageport.scheduler.endpoint_routes import RoutePublisher
from sageport.scheduler.endpoint_updates import EndpointUpdates
from sageport.scheduler.records import EndpointRecords, LogSink, ModelLookup
from sageport.serving.router import TrafficRouter
from sageport.serving.upstream import UpstreamPool
from sageport.storage.objectstore import ObjectStore
from sageport.store.errors import NotFound, StatusConflict
from sageport.store.resources import Resource

__all__ = ["BringUpFailed", "EndpointRunner", "EndpointRunnerConfig"]

log = logging.getLogger(__name__)
E = EndpointStatus


class EndpointRunner:
    """One step per endpoint per tick, each a task of its own (a bring-up takes minutes)."""

    def __init__(
        self,
        endpoints: EndpointRecords,
        models: ModelLookup,
        store: ObjectStore,
        logs: LogSink,
        backend: Backend,
        allocator: Allocator,
        catalog: Catalog,
        router: TrafficRouter,
        pool: UpstreamPool,
        clock: Clock,
        config: EndpointRunnerConfig,
    ) -> None:
        self.endpoints = endpoints
        self.pool = pool
        self.clock = clock
        self.config = config
        self.instances = Instances(backend, models, store, logs, pool, clock, config)
        self.placement = Placement(endpoints, allocator, catalog, clock)
        self.bring_up = BringUp(endpoints, self.instances, self.placement, clock)
        self.routes = RoutePublisher(endpoints, router, clock, config.drain_timeout_s)
        self.updates = EndpointUpdates(
            endpoints, self.placement, self.bring_up, self.routes, self.instances, clock
        )
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._restored: set[str] = set()

    async def tick(self) -> None:
        """One step for each endpoint that has none in progress, by its status."""
        for ep in self.endpoints.all():
            if ep.name in self._tasks:
                continue
            try:
                self._restore(ep)
                status = self.endpoints.status_of(ep)
                if status is E.CREATING:
                    self._spawn(ep.name, self._create(ep))
                elif status in (E.IN_SERVICE, E.UPDATE_ROLLBACK_FAILED):
                    await self._health(ep)
                elif status is E.UPDATING:
                    self._spawn(ep.name, self.updates.update(ep))
                elif status is E.ROLLING_BACK:
                    reason = EndpointRuntime.from_json(ep.state).failure_reason or "update failed"
                    self._spawn(ep.name, self.updates.roll_back(ep, reason))
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

    def _spawn(self, name: str, coro: Coroutine[Any, Any, None]) -> None:
        async def step() -> None:
            try:
                await coro
            except (Abandoned, StatusConflict, NotFound):
                pass  # deleted or moved meanwhile; the next tick takes it from there
            except Exception:
                log.exception("endpoint step for %s failed", name)

        task = asyncio.ensure_future(step())
        self._tasks[name] = task
        task.add_done_callback(lambda _t: self._tasks.pop(name, None))

    def _restore(self, ep: Resource) -> None:
        """After a server restart: re-register what the endpoint's instances hold."""
        if ep.name in self._restored:
            return
        self._restored.add(ep.name)
        rt = EndpointRuntime.from_json(ep.state)
        for slot in ReplicaSlot:
            self.placement.restore(rt.slot(slot))
        self.routes.publish(ep)

    # -- creating ---------------------------------------------------------------------

    async def _create(self, ep: Resource) -> None:
        name = ep.name
        self.routes.publish(ep, [])
        rt = EndpointRuntime.from_json(ep.state)
        leftovers = rt.replicas  # an attempt a server restart interrupted
        self.instances.stop(leftovers, kill=True)
        self.placement.release(leftovers)
        generation = rt.generation + (1 if leftovers else 0)
        config = self.endpoints.config(rt.config or ep.spec["EndpointConfigName"]).spec
        items = [
            (v, i)
            for v in config["ProductionVariants"]
            for i in range(int(v.get("InitialInstanceCount", 1)))
        ]
        owners = [self.placement.owner(name, instance_id(generation, v, i)) for v, i in items]
        requests = [self.placement.request_of(v["InstanceType"]) for v, _ in items]
        self.endpoints.update_runtime(
            name, lambda r: replace(r, generation=generation, replicas=[])
        )
        try:
            grants = await self.placement.wait_for_grants(name, owners, requests)
            replicas = await self.bring_up.start_replicas(
                name, items, generation, grants, ReplicaSlot.SERVING
            )
            await self.bring_up.wait_ready(name, replicas, ReplicaSlot.SERVING)
        except BringUpFailed as exc:
            failed = EndpointRuntime.from_json(self.endpoints.get(name).state).replicas
            self.instances.stop(failed, kill=True)
            self.placement.release(failed)
            self.instances.discard(name, failed)
            self.config.keys.revoke(ep.arn)  # no model server of it runs any more
            reason = str(exc)[:1024]
            self.endpoints.move(
                name,
                E.CREATING,
                E.FAILED,
                reason,
                runtime=lambda r: replace(
                    r, failure_reason=reason, replicas=[], queue_message=None
                ),
            )
            self.routes.publish(self.endpoints.get(name), [])
            return
        self.endpoints.move(
            name,
            E.CREATING,
            E.IN_SERVICE,
            runtime=lambda r: replace(r, replicas=replicas, variant_notes={}, queue_message=None),
        )
        self.routes.publish(self.endpoints.get(name))

    # -- serving ------------------------------------------------------------------------

    async def _health(self, ep: Resource) -> None:
        """Restart dead model servers; put restarted ones back once they answer /ping."""
        rt = EndpointRuntime.from_json(ep.state)
        replicas = [r.copy() for r in rt.replicas]
        self.instances.ship(ep.name, replicas)
        changed = False
        notes = dict(rt.variant_notes)
        now = self.clock.now().isoformat()
        for r in replicas:
            exit_info = self.instances.poll(r)
            if exit_info is not None:
                # A dead model server is restarted in place. The variant says so, and keeps
                # saying it (in the past tense) until the next deployment: a client whose
                # request failed can look up what happened, however quickly it came back.
                reason = f"its model server exited ({describe_exit(exit_info)})"
                r.restarts += 1
                r.last_restart = {"time": now, "reason": reason}
                self.instances.relaunch(r)
                message = f"Instance {r.id} is restarting: {reason} at {now}"
                notes[r.variant] = {
                    "Status": "Updating",
                    "StatusMessage": message,
                    "StartTime": now,
                }
                self.instances.note(ep.name, r, f"instance {r.id} restarted: {reason}")
                changed = True
            elif r.ready:
                continue
            elif (ping := await self.instances.ping(r)).status == 500:
                # Restarted, but the model no longer loads: say so (it stays out of the routes).
                last_line = (ping.body.strip().splitlines() or ["?"])[-1]
                message = f"Instance {r.id} was restarted but its model failed to load: {last_line}"
                if notes.get(r.variant, {}).get("StatusMessage") != message[:1024]:
                    notes[r.variant] = {
                        "Status": "Updating",
                        "StatusMessage": message[:1024],
                        "StartTime": now,
                    }
                    changed = True
            elif ping.status == 200:
                r.ready = True
                last = r.last_restart or {}
                if last:
                    notes[r.variant] = {
                        "Status": "Updating",
                        "StatusMessage": f"Instance {r.id} was restarted at {last['time']}: "
                        f"{last['reason']} (restart {r.restarts}); serving again since {now}",
                        "StartTime": last["time"],
                    }
                changed = True
        if changed:
            self.endpoints.update_runtime(
                ep.name, lambda r: replace(r, replicas=replicas, variant_notes=notes)
            )
            ep = self.endpoints.get(ep.name)
        self.routes.publish(ep)  # also carries weight changes; a no-op when nothing changed

    # -- deleting -----------------------------------------------------------------------

    async def _delete(self, ep: Resource) -> None:
        self.routes.forget(ep.name)
        rt = EndpointRuntime.from_json(ep.state)
        replicas = [*rt.replicas, *rt.pending_replicas]
        await self.instances.stop_and_wait(replicas, timeout_s=10.0)
        self.placement.release(replicas)
        self.instances.discard(ep.name, [*replicas, *rt.retired])
        self.instances.discard_all(ep.name)  # a later endpoint of this name starts afresh
        self.config.keys.revoke(ep.arn)
        self.endpoints.remove(ep.name)
