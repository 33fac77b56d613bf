"""Where InvokeEndpoint goes: variant weights, TargetVariant, least outstanding requests, and
UpdateEndpointWeightsAndCapacities changing weights and instance counts on a live endpoint."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from endpoint_helpers import (
    INFO_HANDLER,
    delete,
    deploy,
    handler_model,
    invoke_json,
    no_retries,
    wait_status,
)
from server_helpers import module_server

from sageport.cli.process import ServerProcess

server = module_server("routing")


@pytest.fixture(scope="module")
def two_variants(server: ServerProcess) -> Iterator[str]:
    """Variant A (weight 1) and B (weight 0), one instance each."""
    name = deploy(
        server,
        handler_model(1.0, INFO_HANDLER),
        "split",
        variants=[
            {"VariantName": "A", "InitialVariantWeight": 1.0},
            {"VariantName": "B", "InitialVariantWeight": 0.0},
        ],
    )
    yield name
    delete(server, name)


def variants_hit(server: ServerProcess, name: str, n: int = 30, **kwargs: Any) -> Counter[str]:
    runtime = no_retries(server, "sagemaker-runtime")
    return Counter(
        invoke_json(runtime, name, {}, **kwargs)[0]["InvokedProductionVariant"] for _ in range(n)
    )


def set_weights(server: ServerProcess, name: str, weights: dict[str, float]) -> dict[str, Any]:
    sm = server.client("sagemaker")
    sm.update_endpoint_weights_and_capacities(
        EndpointName=name,
        DesiredWeightsAndCapacities=[
            {"VariantName": k, "DesiredWeight": v} for k, v in weights.items()
        ],
    )
    return wait_status(server, name)


def test_traffic_follows_the_weights_and_a_swap(server: ServerProcess, two_variants: str) -> None:
    name = two_variants
    assert variants_hit(server, name) == Counter({"A": 30})

    desc = set_weights(server, name, {"A": 0.0, "B": 1.0})
    weights = {v["VariantName"]: v["CurrentWeight"] for v in desc["ProductionVariants"]}
    assert weights == {"A": 0.0, "B": 1.0}
    assert all(v["DesiredWeight"] == v["CurrentWeight"] for v in desc["ProductionVariants"])
    assert variants_hit(server, name) == Counter({"B": 30})

    set_weights(server, name, {"A": 1.0, "B": 1.0})
    hits = variants_hit(server, name, 60)
    assert set(hits) == {"A", "B"}  # both get traffic (each ~half; P(all on one) ≈ 2e-18)

    set_weights(server, name, {"A": 1.0, "B": 0.0})
    assert variants_hit(server, name) == Counter({"A": 30})


def test_target_variant_wins_over_the_weights(server: ServerProcess, two_variants: str) -> None:
    name = two_variants
    assert variants_hit(server, name, 10, TargetVariant="B") == Counter({"B": 10})
    with pytest.raises(ClientError) as exc:
        invoke_json(no_retries(server, "sagemaker-runtime"), name, {}, TargetVariant="C")
    assert exc.value.response["Error"]["Code"] == "ValidationError"
    assert "Variant C not found" in exc.value.response["Error"]["Message"]


def test_an_unknown_variant_or_a_zero_count_is_refused(
    server: ServerProcess, two_variants: str
) -> None:
    sm = server.client("sagemaker")
    for item in (
        {"VariantName": "C", "DesiredWeight": 1.0},
        {"VariantName": "A", "DesiredInstanceCount": 0},
    ):
        with pytest.raises(ClientError) as exc:
            sm.update_endpoint_weights_and_capacities(
                EndpointName=two_variants, DesiredWeightsAndCapacities=[item]
            )
        assert exc.value.response["Error"]["Code"] == "ValidationException"
    assert sm.describe_endpoint(EndpointName=two_variants)["EndpointStatus"] == "InService"


def test_requests_go_to_the_instance_with_fewest_outstanding(server: ServerProcess) -> None:
    name = deploy(server, handler_model(1.0, INFO_HANDLER), "lor", count=2)
    runtime = no_retries(server, "sagemaker-runtime")
    try:
        pids = {invoke_json(runtime, name, {})[1]["pid"] for _ in range(40)}
        assert len(pids) == 2  # idle instances share the traffic (ties broken at random)
        slow: dict[str, Any] = {}
        worker = threading.Thread(
            target=lambda: slow.update(invoke_json(runtime, name, {"sleep": 3})[1])
        )
        worker.start()
        time.sleep(0.5)  # the slow request is in flight on one instance
        during = {invoke_json(runtime, name, {})[1]["pid"] for _ in range(10)}
        worker.join()
        assert slow["pid"] in pids
        assert during == pids - {slow["pid"]}  # none queued behind the busy instance
    finally:
        delete(server, name)


def test_desired_instance_count_scales_out_and_in(server: ServerProcess) -> None:
    name = deploy(server, handler_model(1.0, INFO_HANDLER), "scale")
    sm = server.client("sagemaker")
    runtime = no_retries(server, "sagemaker-runtime")
    try:
        sm.update_endpoint_weights_and_capacities(
            EndpointName=name,
            DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredInstanceCount": 3}],
        )
        desc = sm.describe_endpoint(EndpointName=name)
        assert desc["EndpointStatus"] == "Updating"
        assert desc["ProductionVariants"][0]["DesiredInstanceCount"] == 3
        desc = wait_status(server, name)
        variant = desc["ProductionVariants"][0]
        assert (variant["CurrentInstanceCount"], variant["DesiredInstanceCount"]) == (3, 3)
        pids = {invoke_json(runtime, name, {})[1]["pid"] for _ in range(60)}
        assert len(pids) == 3

        sm.update_endpoint_weights_and_capacities(
            EndpointName=name,
            DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredInstanceCount": 1}],
        )
        desc = wait_status(server, name)
        variant = desc["ProductionVariants"][0]
        assert (variant["CurrentInstanceCount"], variant["DesiredInstanceCount"]) == (1, 1)
        left = {invoke_json(runtime, name, {})[1]["pid"] for _ in range(10)}
        assert len(left) == 1
        assert left < pids
    finally:
        delete(server, name)


def test_an_endpoint_keeps_serving_across_a_server_restart(server: ServerProcess) -> None:
    """The model servers outlive ``sageport serve``; a restarted server routes to them again
    and keeps their GPUs on its books (a new endpoint then gets other GPUs)."""
    name = deploy(
        server, handler_model(1.0, INFO_HANDLER), "restart", instance_type="ml.g4dn.xlarge"
    )
    try:
        before = invoke_json(no_retries(server, "sagemaker-runtime"), name, {})[1]
        server.restart()
        runtime = no_retries(server, "sagemaker-runtime")
        deadline = time.monotonic() + 30
        while True:
            try:
                after = invoke_json(runtime, name, {})[1]
                break
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ModelNotReadyException":
                    raise
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert (after["pid"], after["cuda"]) == (before["pid"], before["cuda"])
        other = deploy(
            server, handler_model(2.0, INFO_HANDLER), "other", instance_type="ml.g4dn.xlarge"
        )
        try:
            assert invoke_json(runtime, other, {})[1]["cuda"] != before["cuda"]
        finally:
            delete(server, other)
    finally:
        delete(server, name)
