"""Which model server answers an InvokeEndpoint: by variant weight, then least outstanding.

The router is the runtime's in-memory view of every endpoint: its status and, per variant,
the weight and the addresses of the instances that answered ``/ping``. The endpoint runner
replaces an endpoint's entry whenever that changes (atomically: a request sees the old
routes or the new ones, never a mix), so the hot path touches no database.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Replica:
    """One model-server process; ``outstanding`` counts requests in flight to it."""

    id: str
    host: str
    port: int
    outstanding: int = 0


@dataclass
class Variant:
    name: str
    weight: float
    replicas: list[Replica] = field(default_factory=list)


@dataclass
class Routes:
    status: str
    variants: list[Variant]


class NoRoute(Exception):
    """Why a request cannot be routed: ``kind`` is ``missing``, ``not_ready`` or ``variant``."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


class TrafficRouter:
    def __init__(self, rng: random.Random | None = None) -> None:
        self._routes: dict[str, Routes] = {}
        self._rng = rng or random.Random()

    def set(self, endpoint: str, routes: Routes) -> None:
        old = self._routes.get(endpoint)
        if old is not None:
            # A replica that stays keeps its object: requests in flight decrement the object
            # they incremented, so its outstanding count stays exact across republishing.
            kept = {(r.id, r.host, r.port): r for v in old.variants for r in v.replicas}
            for v in routes.variants:
                v.replicas = [kept.get((r.id, r.host, r.port), r) for r in v.replicas]
        self._routes[endpoint] = routes

    def remove(self, endpoint: str) -> None:
        self._routes.pop(endpoint, None)

    def get(self, endpoint: str) -> Routes | None:
        return self._routes.get(endpoint)

    def pick(self, endpoint: str, target_variant: str | None = None) -> tuple[Variant, Replica]:
        routes = self._routes.get(endpoint)
        if routes is None:
            raise NoRoute("missing")
        candidates = [v for v in routes.variants if v.replicas]
        if target_variant:
            candidates = [v for v in candidates if v.name == target_variant]
            if not candidates:
                known = ", ".join(v.name for v in routes.variants)
                raise NoRoute("variant", f"Variant {target_variant} not found (variants: {known})")
        if not candidates:
            raise NoRoute("not_ready", routes.status)
        if len(candidates) == 1:
            variant = candidates[0]
        else:
            weights = [max(v.weight, 0.0) for v in candidates]
            variant = self._rng.choices(candidates, weights if sum(weights) > 0 else None)[0]
        least = min(r.outstanding for r in variant.replicas)
        idle = [r for r in variant.replicas if r.outstanding == least]
        # Ties are broken at random, so sequential traffic spreads over the instances too.
        replica = idle[0] if len(idle) == 1 else self._rng.choice(idle)
        return variant, replica
