"""Endpoints on GPUs (four fake ones): each instance gets its own, what can never fit is refused
at once, what must wait says so, and an update on a node with exactly enough GPUs completes."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError
from endpoint_helpers import (
    INFO_HANDLER,
    create_config,
    create_model,
    delete,
    deploy,
    handler_model,
    invoke_json,
    no_retries,
    prepare,
    unique,
    wait_status,
)
from server_helpers import module_server

from sageport.cli.process import ServerProcess

server = module_server("endpoint-gpus")  # fake_gpus = "4"


def refused(exc: pytest.ExceptionInfo[ClientError]) -> str:
    error = exc.value.response["Error"]
    assert error["Code"] == "ResourceLimitExceeded"
    return str(error["Message"])


def test_a_gpu_instance_type_gets_its_gpu(server: ServerProcess) -> None:
    name = deploy(
        server, handler_model(1.0, INFO_HANDLER), "gpu", count=2, instance_type="ml.g4dn.xlarge"
    )
    try:
        runtime = no_retries(server, "sagemaker-runtime")
        seen = {}
        deadline = time.monotonic() + 30
        while len(seen) < 2 and time.monotonic() < deadline:
            data = invoke_json(runtime, name, {})[1]
            seen[data["pid"]] = data["cuda"]
        assert len(seen) == 2
        gpus = sorted(seen.values())
        assert all(g is not None and len(g.split(",")) == 1 for g in gpus)
        assert len(set(gpus)) == 2  # exclusive: one GPU each
        report = server_api(server, f"endpoints/{name}")
        assert sorted(str(i["Gpus"][0]) for i in report["Instances"]) == gpus
    finally:
        delete(server, name)


def test_what_can_never_fit_is_refused_with_the_reason(server: ServerProcess) -> None:
    sm = server.client("sagemaker")
    name = unique("nofit")
    create_model(server, name, handler_model(1.0, INFO_HANDLER))
    create_config(
        server,
        name,
        name,
        variants=[
            {"VariantName": "A", "InstanceType": "ml.g4dn.12xlarge"},
            {"VariantName": "B", "InstanceType": "ml.g4dn.12xlarge"},
        ],
    )
    with pytest.raises(ClientError) as exc:
        sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    message = refused(exc)
    assert "8 GPUs" in message
    assert "has 4" in message
    big = unique("p4d")
    create_config(server, big, name, instance_type="ml.p4d.24xlarge")
    with pytest.raises(ClientError) as exc:
        sm.create_endpoint(EndpointName=big, EndpointConfigName=big)
    assert "ml.p4d.24xlarge needs 8 GPUs per instance" in refused(exc)
    assert name not in {e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]}

    serving = unique("serving")
    create_config(server, serving, name, instance_type="ml.g4dn.12xlarge")
    sm.create_endpoint(EndpointName=serving, EndpointConfigName=serving)
    wait_status(server, serving)
    try:
        with pytest.raises(ClientError) as exc:
            sm.update_endpoint(EndpointName=serving, EndpointConfigName=name)
        refused(exc)
        with pytest.raises(ClientError) as exc:
            sm.update_endpoint_weights_and_capacities(
                EndpointName=serving,
                DesiredWeightsAndCapacities=[
                    {"VariantName": "AllTraffic", "DesiredInstanceCount": 2}
                ],
            )
        assert "8 GPUs" in refused(exc)
        assert sm.describe_endpoint(EndpointName=serving)["EndpointStatus"] == "InService"
    finally:
        sm.delete_endpoint(EndpointName=serving)
        wait_gone(server, serving)
        for config in (name, big, serving):
            sm.delete_endpoint_config(EndpointConfigName=config)
        sm.delete_model(ModelName=name)


def test_an_endpoint_waiting_for_gpus_says_so_and_starts_when_they_free(
    server: ServerProcess,
) -> None:
    sm = server.client("sagemaker")
    holder = deploy(
        server, handler_model(1.0, INFO_HANDLER), "all4", instance_type="ml.g4dn.12xlarge"
    )
    waiting = prepare(
        server, handler_model(2.0, INFO_HANDLER), "waits", instance_type="ml.g4dn.xlarge"
    )
    sm.create_endpoint(EndpointName=waiting, EndpointConfigName=waiting)
    try:
        message = None
        deadline = time.monotonic() + 20
        while message is None and time.monotonic() < deadline:
            desc = sm.describe_endpoint(EndpointName=waiting)
            assert desc["EndpointStatus"] == "Creating"
            for v in desc.get("ProductionVariants") or []:
                for note in v.get("VariantStatus") or []:
                    message = note["StatusMessage"]
            time.sleep(0.1)
        assert message is not None
        assert "Waiting for 1 free GPU (0 free now)" in message
        delete(server, holder)
        desc = wait_status(server, waiting)
        assert "VariantStatus" not in desc["ProductionVariants"][0]
        assert invoke_json(no_retries(server, "sagemaker-runtime"), waiting, {})[1]["scale"] == 2.0
    finally:
        delete(server, waiting)


def test_an_update_on_exactly_enough_gpus_replaces_instance_by_instance(
    server: ServerProcess,
) -> None:
    sm = server.client("sagemaker")
    name = deploy(
        server, handler_model(1.0, INFO_HANDLER), "roll", instance_type="ml.g4dn.12xlarge"
    )
    new = prepare(
        server, handler_model(2.0, INFO_HANDLER), "roll-v2", instance_type="ml.g4dn.12xlarge"
    )
    runtime = no_retries(server, "sagemaker-runtime")
    try:
        assert invoke_json(runtime, name, {})[1]["cuda"] == "0,1,2,3"
        sm.update_endpoint(EndpointName=name, EndpointConfigName=new)
        notes: list[str] = []
        deadline = time.monotonic() + 60
        while True:
            desc = sm.describe_endpoint(EndpointName=name)
            if desc["EndpointStatus"] == "InService":
                break
            assert desc["EndpointStatus"] == "Updating", desc.get("FailureReason")
            assert time.monotonic() < deadline
            pending = desc.get("PendingDeploymentSummary") or {}
            for v in pending.get("ProductionVariants") or []:
                notes += [n["StatusMessage"] for n in v.get("VariantStatus") or []]
            time.sleep(0.1)
        assert desc["EndpointConfigName"] == new
        assert "FailureReason" not in desc
        assert any("one at a time" in n for n in notes), notes
        data = invoke_json(runtime, name, {})[1]
        assert (data["scale"], data["cuda"]) == (2.0, "0,1,2,3")
        logs = server.client("logs")
        group = f"/aws/sagemaker/Endpoints/{name}"
        messages = [
            e["message"]
            for s in logs.describe_log_streams(logGroupName=group)["logStreams"]
            for e in logs.get_log_events(
                logGroupName=group, logStreamName=s["logStreamName"], startFromHead=True
            )["events"]
        ]
        assert any("Replacing instances one at a time" in m for m in messages)
    finally:
        delete(server, name)
        sm.delete_endpoint_config(EndpointConfigName=new)
        sm.delete_model(ModelName=new)


def wait_gone(server: ServerProcess, name: str, timeout: float = 30) -> None:
    sm = server.client("sagemaker")
    deadline = time.monotonic() + timeout
    while any(e["EndpointName"] == name for e in sm.list_endpoints()["Endpoints"]):
        assert time.monotonic() < deadline, f"{name} was not deleted"
        time.sleep(0.1)


def server_api(server: ServerProcess, path: str) -> dict[str, Any]:
    """GET sageport's own API, signed the way ``sageport endpoints describe`` signs it."""
    import urllib.request

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    req = AWSRequest(method="GET", url=f"{server.url}/_sageport/{path}")
    SigV4Auth(Credentials(*server.keys), "sagemaker", server.region).add_auth(req)
    prepared = req.prepare()
    http = urllib.request.Request(prepared.url, headers=dict(prepared.headers), method="GET")
    with urllib.request.urlopen(http, timeout=10) as resp:
        data: dict[str, Any] = json.loads(resp.read())
    return data


@pytest.mark.parametrize(
    "instance_type", ["ml.g4dn.xlarge", "ml.g4dn.12xlarge"], ids=["beside", "in-place"]
)
def test_a_failed_update_rolls_back_and_the_old_model_serves(
    server: ServerProcess, instance_type: str
) -> None:
    """Blue/green (fits beside) and instance by instance (only fits in place): either way a new
    model that cannot load leaves the old one serving, with the reason."""
    sm = server.client("sagemaker")
    name = deploy(server, handler_model(1.0, INFO_HANDLER), "rb", instance_type=instance_type)
    failing = {"LOAD_FAIL": "no weights"}
    bad = prepare(
        server, handler_model(2.0, INFO_HANDLER), "rb-bad", failing, instance_type=instance_type
    )
    runtime = no_retries(server, "sagemaker-runtime")
    try:
        sm.update_endpoint(EndpointName=name, EndpointConfigName=bad)
        deadline = time.monotonic() + 60
        while (desc := sm.describe_endpoint(EndpointName=name))["EndpointStatus"] != "InService":
            assert desc["EndpointStatus"] in ("Updating", "RollingBack")
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert desc["EndpointConfigName"] == name
        assert desc["FailureReason"].startswith("Update failed and was rolled back:")
        assert "ValueError: no weights" in desc["FailureReason"]
        assert desc["ProductionVariants"][0]["CurrentInstanceCount"] == 1
        assert invoke_json(runtime, name, {})[1]["scale"] == 1.0
    finally:
        delete(server, name)
        sm.delete_endpoint_config(EndpointConfigName=bad)
        sm.delete_model(ModelName=bad)
