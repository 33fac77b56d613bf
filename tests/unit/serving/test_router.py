"""The router: weights, TargetVariant, least outstanding, and republishing without drift."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from sageport.serving.router import NoRoute, Replica, Routes, TrafficRouter, Variant


def routes(weight_a: float = 1.0, weight_b: float = 0.0) -> Routes:
    return Routes(
        "InService",
        [
            Variant("A", weight_a, [Replica("a1", "127.0.0.1", 1), Replica("a2", "127.0.0.1", 2)]),
            Variant("B", weight_b, [Replica("b1", "127.0.0.1", 3)]),
        ],
    )


def test_weights_decide_the_variant_and_target_variant_overrides() -> None:
    router = TrafficRouter(random.Random(0))
    router.set("ep", routes(1.0, 0.0))
    assert {router.pick("ep")[0].name for _ in range(50)} == {"A"}
    router.set("ep", routes(0.0, 1.0))
    assert {router.pick("ep")[0].name for _ in range(50)} == {"B"}
    router.set("ep", routes(1.0, 3.0))
    counts = Counter(router.pick("ep")[0].name for _ in range(4000))
    assert 0.2 < counts["A"] / 4000 < 0.3
    assert router.pick("ep", "A")[0].name == "A"
    with pytest.raises(NoRoute) as exc:
        router.pick("ep", "C")
    assert exc.value.kind == "variant"


def test_least_outstanding_then_random_ties() -> None:
    router = TrafficRouter(random.Random(0))
    router.set("ep", routes())
    _, first = router.pick("ep")
    first.outstanding += 1
    assert {router.pick("ep")[1].id for _ in range(20)} == {"a1", "a2"} - {first.id}
    first.outstanding -= 1
    assert {router.pick("ep")[1].id for _ in range(50)} == {"a1", "a2"}


def test_republishing_keeps_in_flight_counts_exact() -> None:
    """A request in flight decrements the replica it incremented; republishing (a weight
    change) must hand the router that same object, or the count would never come back down."""
    router = TrafficRouter(random.Random(0))
    router.set("ep", routes())
    _, busy = router.pick("ep")
    busy.outstanding += 1
    router.set("ep", routes(1.0, 1.0))  # new objects for the same instances
    current = router.get("ep")
    assert current is not None
    replicas = [r for v in current.variants for r in v.replicas]
    assert [r for r in replicas if r.id == busy.id] == [busy]
    busy.outstanding -= 1  # the request finishes
    assert all(r.outstanding == 0 for r in replicas)


def test_no_ready_instance_is_not_ready_and_an_unknown_endpoint_missing() -> None:
    router = TrafficRouter()
    router.set("ep", Routes("Creating", [Variant("A", 1.0, [])]))
    with pytest.raises(NoRoute) as exc:
        router.pick("ep")
    assert (exc.value.kind, exc.value.detail) == ("not_ready", "Creating")
    with pytest.raises(NoRoute) as exc:
        router.pick("other")
    assert exc.value.kind == "missing"
