"""Carrying endpoints through their lives: start model servers, watch them, update, delete.

Each instance of each production variant is one model-server process
(``python -m sageport.serving.server``, see ``endpoint_instances``) holding the GPUs its
instance type has. The runner keeps the runtime router in step with what is ready, fails a
creation promptly when a model cannot load (``endpoint_core.wait_ready``), restarts a model
server that dies and keeps the last restart visible in DescribeEndpoint, and performs the
updates of ``endpoint_updates`` (weights, counts, blue/green or rolling).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Any

from sageport.domain.endpoint import EndpointStatus
from sageport.domain.runtime import EndpointRuntime, ReplicaSlot
from sageport.scheduler.endpoint_core import Abandoned
from sageport.scheduler.endpoint_instances import (
    BringUpFailed,
    EndpointRunnerConfig,
    describe_exit,
    instance_id,
)
from sageport.scheduler.endpoint_updates import EndpointUpdates
from sageport.services.endpoints import status_of
from sageport.store.errors import NotFound, StatusConflict
from sageport.store.resources import Resource

__all__ = ["BringUpFailed", "EndpointRunner", "EndpointRunnerConfig"]

log = logging.getLogger(__name__)
E = EndpointStatus


class EndpointRunner(EndpointUpdates):
    async def tick(self) -> None:
        for ep in self.endpoints.all():
            if ep.name in self._tasks:
                continue
            try:
                self._restore(ep)
                status = status_of(ep)
                if status is E.CREATING:
                    self._spawn(ep.name, self._create(ep))
                elif status in (E.IN_SERVICE, E.UPDATE_ROLLBACK_FAILED):
                    await self._health(ep)
                elif status is E.UPDATING:
                    self._spawn(ep.name, self.update(ep))
                elif status is E.ROLLING_BACK:
                    reason = EndpointRuntime.from_json(ep.state).failure_reason or "update failed"
                    self._spawn(ep.name, self.roll_back(ep, reason))
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
        holders = self.allocator.holders()
        rt = EndpointRuntime.from_json(ep.state)
        for slot in ReplicaSlot:
            by_owner: dict[str, list[dict[str, Any]]] = {}
            for r in rt.slot(slot):
                by_owner.setdefault(r["owner"], []).append(r["grant"])
            for owner, grants in by_owner.items():
                if owner not in holders:
                    self.allocator.restore(owner, grants)
        self.publish(ep)

    # -- creating ---------------------------------------------------------------------

    async def _create(self, ep: Resource) -> None:
        name = ep.name
        self.publish(ep, [])
        rt = EndpointRuntime.from_json(ep.state)
        leftovers = rt.replicas  # an attempt a server restart interrupted
        self.instances.stop(leftovers, kill=True)
        self.release(leftovers)
        generation = rt.generation + (1 if leftovers else 0)
        config = self.endpoints.config(rt.config or ep.spec["EndpointConfigName"]).spec
        items = [
            (v, i)
            for v in config["ProductionVariants"]
            for i in range(int(v.get("InitialInstanceCount", 1)))
        ]
        owners = [self.owner(name, instance_id(generation, v, i)) for v, i in items]
        requests = [self.request_of(v["InstanceType"]) for v, _ in items]
        self.endpoints.update_runtime(
            name, lambda r: replace(r, generation=generation, replicas=[])
        )
        try:
            grants = await self.wait_for_grants(name, owners, requests)
            replicas = await self.start_replicas(
                name, items, generation, grants, ReplicaSlot.SERVING
            )
            await self.wait_ready(name, replicas, ReplicaSlot.SERVING)
        except BringUpFailed as exc:
            failed = EndpointRuntime.from_json(self.endpoints.get(name).state).replicas
            self.instances.stop(failed, kill=True)
            self.release(failed)
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
            self.publish(self.endpoints.get(name), [])
            return
        self.endpoints.move(
            name,
            E.CREATING,
            E.IN_SERVICE,
            runtime=lambda r: replace(r, replicas=replicas, variant_notes={}, queue_message=None),
        )
        self.publish(self.endpoints.get(name))

    # -- serving ------------------------------------------------------------------------

    async def _health(self, ep: Resource) -> None:
        """Restart dead model servers; put restarted ones back once they answer /ping."""
        rt = EndpointRuntime.from_json(ep.state)
        replicas = [dict(r) for r in rt.replicas]
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
                r["restarts"] = int(r.get("restarts", 0)) + 1
                r["last_restart"] = {"time": now, "reason": reason}
                self.instances.relaunch(r)
                message = f"Instance {r['id']} is restarting: {reason} at {now}"
                notes[r["variant"]] = {
                    "Status": "Updating",
                    "StatusMessage": message,
                    "StartTime": now,
                }
                self.instances.note(ep.name, r, f"instance {r['id']} restarted: {reason}")
                changed = True
            elif r.get("ready"):
                continue
            elif (ping := await self.instances.ping(r)).status == 500:
                # Restarted, but the model no longer loads: say so (it stays out of the routes).
                last_line = (ping.body.strip().splitlines() or ["?"])[-1]
                message = (
                    f"Instance {r['id']} was restarted but its model failed to load: {last_line}"
                )
                if notes.get(r["variant"], {}).get("StatusMessage") != message[:1024]:
                    notes[r["variant"]] = {
                        "Status": "Updating",
                        "StatusMessage": message[:1024],
                        "StartTime": now,
                    }
                    changed = True
            elif ping.status == 200:
                r["ready"] = True
                last = r.get("last_restart") or {}
                if last:
                    notes[r["variant"]] = {
                        "Status": "Updating",
                        "StatusMessage": f"Instance {r['id']} was restarted at {last['time']}: "
                        f"{last['reason']} (restart {r['restarts']}); serving again since {now}",
                        "StartTime": last["time"],
                    }
                changed = True
        if changed:
            self.endpoints.update_runtime(
                ep.name, lambda r: replace(r, replicas=replicas, variant_notes=notes)
            )
            ep = self.endpoints.get(ep.name)
        self.publish(ep)  # also carries weight changes; a no-op when nothing changed

    # -- deleting -----------------------------------------------------------------------

    async def _delete(self, ep: Resource) -> None:
        self.forget(ep.name)
        rt = EndpointRuntime.from_json(ep.state)
        replicas = [*rt.replicas, *rt.pending_replicas]
        await self.instances.stop_and_wait(replicas, timeout_s=10.0)
        self.release(replicas)
        self.instances.discard(ep.name, [*replicas, *rt.retired])
        self.instances.discard_all(ep.name)  # a later endpoint of this name starts afresh
        self.config.keys.revoke(ep.arn)
        self.endpoints.remove(ep.name)
