"""``sageport endpoints list|describe|invoke|logs`` as a user types them, against a live server."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from endpoint_helpers import (
    INFO_HANDLER,
    delete,
    deploy,
    handler_model,
    invoke_json,
    no_retries,
)
from server_helpers import module_server

from sageport.cli.process import ServerProcess

server = module_server("cli-endpoints")  # fake_gpus = "4"


@pytest.fixture(scope="module")
def endpoint(server: ServerProcess) -> Iterator[str]:
    """One GPU instance with dynamic batching on, after 12 concurrent requests."""
    name = deploy(
        server,
        handler_model(1.0, INFO_HANDLER),
        "cli",
        env={"SAGEPORT_BATCH_SIZE": "4", "SAGEPORT_MAX_BATCH_DELAY_MS": "50"},
        instance_type="ml.g4dn.xlarge",
    )
    runtime = no_retries(server, "sagemaker-runtime")
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda _: invoke_json(runtime, name, {}), range(12)))
    yield name
    delete(server, name)


def sageport(
    server: ServerProcess, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sageport", "endpoints", *args, "--data-dir", str(server.data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        input=stdin,
        check=False,
    )


def test_list(server: ServerProcess, endpoint: str) -> None:
    listed = sageport(server, "list", "--name-contains", endpoint, "--json")
    assert listed.returncode == 0, listed.stderr
    (summary,) = json.loads(listed.stdout)
    assert (summary["EndpointName"], summary["EndpointStatus"]) == (endpoint, "InService")
    table = sageport(server, "list", "--name-contains", endpoint)
    header, row = table.stdout.splitlines()
    assert header.split() == ["NAME", "STATUS", "CREATED", "MODIFIED"]
    assert row.split()[:2] == [endpoint, "InService"]


def test_describe_shows_instances_gpus_and_batch_sizes(
    server: ServerProcess, endpoint: str
) -> None:
    described = sageport(server, "describe", endpoint, "--json")
    assert described.returncode == 0, described.stderr
    desc = json.loads(described.stdout)
    assert desc["EndpointStatus"] == "InService"
    (variant,) = desc["Sageport"]["Variants"]
    assert variant["Invocations"] == 12
    histogram = {int(k): n for k, n in variant["BatchSizeHistogram"].items()}
    assert sum(size * n for size, n in histogram.items()) == 12
    assert max(histogram) <= 4
    assert variant["Batching"] == {"batch_size": 4, "max_delay_ms": 50.0}
    (instance,) = desc["Sageport"]["Instances"]
    assert (instance["InstanceType"], len(instance["Gpus"])) == ("ml.g4dn.xlarge", 1)

    text = sageport(server, "describe", endpoint)
    assert text.returncode == 0, text.stderr
    out = text.stdout
    assert "Variant AllTraffic" in out
    assert "1/1 instances" in out
    assert "batching on (size 4, delay 50 ms)" in out
    assert "Batch sizes" in out
    assert f"ml.g4dn.xlarge serving ready, GPUs {instance['Gpus'][0]}" in out


def test_invoke_from_a_flag_and_from_stdin(server: ServerProcess, endpoint: str) -> None:
    result = sageport(
        server, "invoke", endpoint, "--body", "{}", "--custom-attributes", "a=1", "--json"
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["InvokedProductionVariant"] == "AllTraffic"
    assert answer["CustomAttributes"] == "echo=a=1"
    assert json.loads(answer["Body"])["scale"] == 1.0
    piped = sageport(server, "invoke", endpoint, stdin='{"sleep": 0}')
    assert piped.returncode == 0, piped.stderr
    assert json.loads(piped.stdout)["scale"] == 1.0


def test_logs(server: ServerProcess, endpoint: str) -> None:
    result = sageport(server, "logs", endpoint, "--json")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]  # JSON Lines
    assert any("model server listening" in e["message"] for e in events)
    assert {e["logStreamName"].split("/")[0] for e in events} == {"AllTraffic"}
    text = sageport(server, "logs", endpoint)
    assert any(
        line.startswith("[AllTraffic/") and "listening" in line for line in text.stdout.splitlines()
    )


def test_an_unknown_endpoint_is_one_line_and_exit_1(server: ServerProcess) -> None:
    for command in ("describe", "logs", "invoke"):
        extra = ["--body", "{}"] if command == "invoke" else []
        result = sageport(server, command, "no-such-endpoint", *extra)
        assert result.returncode == 1, command
        assert result.stderr.startswith("error: "), result.stderr
        assert "no-such-endpoint" in result.stderr
