"""Publishing an endpoint's ready instances to the traffic router, and draining them.

The router (``serving.router.TrafficRouter``) holds, per endpoint, its status and per variant
a weight and the ready instances (``serving.router.Replica``, the routing entry built here from
each ready ``EndpointInstance``). :meth:`RoutePublisher.publish` is called after every change
and is a no-op when nothing changed; :meth:`RoutePublisher.drain` waits, up to a deadline on
the ``Clock``, for requests already sent to instances that left the routes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping

from sageport.clock import Clock
from sageport.domain.runtime import EndpointInstance, EndpointRuntime
from sageport.scheduler.records import EndpointRecords
from sageport.serving.router import Replica, Routes, TrafficRouter, Variant
from sageport.store.resources import Resource


class RoutePublisher:
    """Keeps the router in step with what is ready, per endpoint."""

    def __init__(
        self,
        records: EndpointRecords,
        router: TrafficRouter,
        clock: Clock,
        drain_timeout_s: float,
    ) -> None:
        self.records = records
        self.router = router
        self.clock = clock
        self.drain_timeout_s = drain_timeout_s
        self._published: dict[str, str] = {}

    def current(self, name: str) -> Routes | None:
        """What the router serves for ``name`` now (to drain after a change)."""
        return self.router.get(name)

    def publish(
        self,
        ep: Resource,
        replicas: list[EndpointInstance] | None = None,
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
        status = self.records.status_of(ep).value
        ready = [(r.id, r.variant, r.port, r.ready) for r in current]
        signature = json.dumps([status, configs, chosen, ready], sort_keys=True)
        if self._published.get(ep.name) == signature:
            return
        defaults: dict[str, float] = {}
        for config_name in configs:
            try:
                spec = self.records.config(config_name).spec
            except Exception:
                continue  # a deleted config: its variants keep weight 1
            for v in spec["ProductionVariants"]:
                defaults.setdefault(v["VariantName"], float(v.get("InitialVariantWeight", 1.0)))
        variants = []
        for vname in dict.fromkeys([*defaults, *(r.variant for r in current)]):
            replicas_here = [
                Replica(r.id, "127.0.0.1", r.port)
                for r in current
                if r.variant == vname and r.ready
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
        deadline = self.clock.monotonic() + self.drain_timeout_s
        replicas = [
            r
            for v in (routes.variants if routes else [])
            for r in v.replicas
            if ids is None or r.id in ids
        ]
        while self.clock.monotonic() < deadline and any(r.outstanding for r in replicas):
            await asyncio.sleep(0.05)
