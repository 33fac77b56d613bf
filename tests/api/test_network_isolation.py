"""``EnableNetworkIsolation`` is honoured or refused, never accepted and dropped.

An isolated training job runs in a network namespace of its own: it cannot reach the server
(or anything else), yet it reads its staged channel and its model is uploaded after it exits,
as in SageMaker. The control job without isolation reaches the server. What cannot be
isolated here is refused at create: several instances, a server without a sandbox, a model
whose server would be cut off from the endpoint's proxy, a job that would pip install.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import processing_helpers as processing
import pytest
from server_helpers import aws_error, start_server
from training_helpers import (
    BUCKET,
    ROLE,
    job_request,
    log_text,
    model_files,
    put_objects,
    submit,
    unique,
    wait,
    wait_completed,
)

from sageport.backends.local import probe_sandbox
from sageport.cli.process import ServerProcess

AVAILABLE, WHY = probe_sandbox()
needs_sandbox = pytest.mark.skipif(not AVAILABLE, reason=f"no sandbox: {WHY}")

#: tries the server's port and a port nobody listens on, then its own loopback listener
#: (processes of one host still talk), reads the channel and writes all of it to the model
PROBE = """
    import json, os, socket, sys

    def attempt(port):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=3).close()
            return "connected"
        except OSError as exc:
            return type(exc).__name__

    own = socket.socket()
    own.bind(("127.0.0.1", 0))
    own.listen()
    result = {
        "server": attempt(int(sys.argv[sys.argv.index("--port") + 1])),
        "own": attempt(own.getsockname()[1]),
        "channel": open(os.path.join(os.environ["SM_CHANNEL_TRAINING"], "in.txt")).read(),
    }
    print("probe", json.dumps(result), flush=True)
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "probe.json"), "w") as f:
        json.dump(result, f)
"""


def _probe_job(server: ServerProcess, isolated: bool) -> dict[str, Any]:
    name = unique("netiso" if isolated else "netiso-control")
    data = put_objects(server, f"{name}/data", {"in.txt": b"staged before start"})
    extra = {"EnableNetworkIsolation": True} if isolated else {}
    submit(
        server,
        name,
        PROBE,
        channels={"training": data},
        hyperparameters={"port": server.port},
        **extra,
    )
    job = wait_completed(server, name, timeout=90)
    assert job["EnableNetworkIsolation"] is isolated  # echoed as requested
    result: dict[str, Any] = json.loads(model_files(server, job)["probe.json"])
    return result


@needs_sandbox
def test_an_isolated_job_reaches_nothing_yet_reads_its_channel_and_leaves_its_model(
    server: ServerProcess,
) -> None:
    result = _probe_job(server, isolated=True)
    # its own network namespace: nothing listens on the server's port there
    assert result["server"] == "ConnectionRefusedError"
    assert result["own"] == "connected"  # its own loopback works (ranks of one host)
    assert result["channel"] == "staged before start"


@needs_sandbox
def test_the_same_job_without_isolation_reaches_the_server(server: ServerProcess) -> None:
    result = _probe_job(server, isolated=False)
    assert result == {"server": "connected", "own": "connected", "channel": "staged before start"}


@needs_sandbox
def test_an_isolated_job_with_requirements_fails_saying_pip_cannot_run(
    server: ServerProcess,
) -> None:
    name = unique("netiso-pip")
    submit(
        server,
        name,
        "print('never runs')\n",
        extra_files={"requirements.txt": "requests\n"},
        EnableNetworkIsolation=True,
    )
    job = wait(server, name)
    assert job["TrainingJobStatus"] == "Failed", log_text(server, name)
    assert "requirements.txt cannot be installed" in job["FailureReason"]
    assert "EnableNetworkIsolation" in job["FailureReason"]


def test_a_multi_instance_isolated_training_job_is_refused(server: ServerProcess) -> None:
    name = unique("netiso-multi")
    request = job_request(server, name, "print(1)\n", EnableNetworkIsolation=True)
    request["ResourceConfig"]["InstanceCount"] = 2
    sm = server.client("sagemaker")
    with aws_error("ValidationException") as exc:
        sm.create_training_job(**request)
    message = exc.value.response["Error"]["Message"]
    assert message.startswith("EnableNetworkIsolation is true with 2 instances")
    assert "loopback" in message
    with aws_error("ValidationException"):
        sm.describe_training_job(TrainingJobName=name)  # nothing was stored


def test_a_multi_instance_isolated_processing_job_is_refused(server: ServerProcess) -> None:
    request = processing.processing_request(
        server,
        unique("netiso-proc"),
        "print(1)\n",
        instance_count=3,
        NetworkConfig={"EnableNetworkIsolation": True},
    )
    with aws_error("ValidationException") as exc:
        server.client("sagemaker").create_processing_job(**request)
    message = exc.value.response["Error"]["Message"]
    assert message.startswith("NetworkConfig.EnableNetworkIsolation is true with 3 instances")


@needs_sandbox
def test_an_isolated_processing_job_reaches_nothing_and_its_output_is_uploaded(
    server: ServerProcess,
) -> None:
    name = unique("netiso-proc")
    script = """
        import socket, sys
        try:
            socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=3).close()
            got = "connected"
        except OSError as exc:
            got = type(exc).__name__
        open(sys.argv[1] + "/probe.txt", "w").write(got)
    """
    out = f"s3://{BUCKET}/{name}/out"
    processing.submit(
        server,
        name,
        script,
        outputs=[processing.s3_output("out", out, "/opt/ml/processing/output")],
        arguments=["/opt/ml/processing/output", str(server.port)],
        NetworkConfig={"EnableNetworkIsolation": True},
    )
    job = processing.wait(server, name)
    assert job["ProcessingJobStatus"] == "Completed", processing.log_text(server, name)
    assert job["NetworkConfig"] == {"EnableNetworkIsolation": True}
    assert processing.objects(server, f"{name}/out/") == {"probe.txt": b"ConnectionRefusedError"}


def test_an_isolated_model_is_refused_and_a_plain_one_accepted(server: ServerProcess) -> None:
    sm = server.client("sagemaker")
    container = {
        "Image": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.1.0-cpu-py310",
        "ModelDataUrl": f"s3://{BUCKET}/m.tar.gz",
    }
    name = unique("netiso-model")
    with aws_error("ValidationException") as exc:
        sm.create_model(
            ModelName=name,
            ExecutionRoleArn=ROLE,
            PrimaryContainer=container,
            EnableNetworkIsolation=True,
        )
    message = exc.value.response["Error"]["Message"]
    assert message.startswith("EnableNetworkIsolation is not supported by sageport")
    assert "loopback" in message
    # false, as the SDK sends it by default, is fine
    sm.create_model(
        ModelName=name,
        ExecutionRoleArn=ROLE,
        PrimaryContainer=container,
        EnableNetworkIsolation=False,
    )
    assert sm.describe_model(ModelName=name)["EnableNetworkIsolation"] is False


@pytest.fixture(scope="module")
def unsandboxed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = start_server(tmp_path_factory.mktemp("netiso-off") / "data", 'sandbox = "off"\n')
    yield proc
    proc.stop()


def test_isolation_without_a_sandbox_is_refused_never_run_on_the_network(
    unsandboxed: ServerProcess,
) -> None:
    name = unique("netiso-off")
    request = job_request(unsandboxed, name, "print(1)\n", EnableNetworkIsolation=True)
    with aws_error("ValidationException") as exc:
        unsandboxed.client("sagemaker").create_training_job(**request)
    message = exc.value.response["Error"]["Message"]
    assert message.startswith("EnableNetworkIsolation is true but this server runs jobs without")
    assert 'sandbox = "off"' in message
    assert str(Path(unsandboxed.data_dir) / "sageport.toml") in message
