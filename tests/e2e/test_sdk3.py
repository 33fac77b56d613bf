"""The SageMaker Python SDK 3.x (what ``pip install sagemaker`` gives today) against a server.

SDK 3.x cannot share the test interpreter with the 2.x the other tests use, so it lives in a
venv of its own, made here once and kept: ``$SAGEPORT_SDK3_VENV``, else
``~/.cache/sageport-tests/sdk3-venv``, with the pinned versions below (about 2 minutes and
1 GB the first time; a venv ``$SAGEPORT_SDK3_VENV`` names that this did not make is used as
it is). Where it cannot be made (no package index) the tests skip, saying why.

One script runs in that venv under ``sageport env``'s environment, as a user's would:
``ModelTrainer.train()`` (SourceCode, a pytorch-training image, ml.m5.large, wait), then
``ModelBuilder(...).build()`` and ``deploy()`` of the trained artifact with an inference
script, ``invoke``, and the endpoint's deletion. Neither passes a role: the SDK resolves it
from the SDK config and the caller's identity, checking it with IAM ``GetRole``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

from sageport.cli.process import ServerProcess
from sageport.cli.serverinfo import env_lines
from sageport.settings import Settings

#: what the venv gets (tested with these; sagemaker 3.27.0 pulls the other four)
SDK3_PINS = (
    "sagemaker==3.27.0",
    "sagemaker-core==2.27.0",
    "sagemaker-train==1.27.0",
    "sagemaker-serve==1.27.0",
    "sagemaker-mlops==1.27.0",
)
INSTALL_TIMEOUT_S = 900
RUN_TIMEOUT_S = 300

TRAIN_SCRIPT = """
import json, os
model_dir = os.environ.get("SM_MODEL_DIR", "/opt/ml/model")
with open(os.path.join(model_dir, "model.json"), "w") as f:
    json.dump({"w": 2.0}, f)
print("trained: wrote", model_dir)
"""

INFERENCE_SCRIPT = """
import json, os

def model_fn(model_dir):
    with open(os.path.join(model_dir, "model.json")) as f:
        return json.load(f)

def predict_fn(data, model):
    return [x * model["w"] for x in data]
"""

#: the user's program: train, build, deploy, invoke, delete; what it saw goes to seen.json
USER_PROGRAM = """
import json, sys, time
from sagemaker.serve import ModelBuilder
from sagemaker.train import ModelTrainer
from sagemaker.train.configs import Compute, SourceCode

work, endpoint_name = sys.argv[1], sys.argv[2]
seen = {}
t0 = time.monotonic()
trainer = ModelTrainer(
    training_image="763104351884.dkr.ecr.us-east-1.amazonaws.com/"
    "pytorch-training:2.5.1-cpu-py311-ubuntu22.04-sagemaker",
    source_code=SourceCode(source_dir=work + "/train", entry_script="train.py"),
    compute=Compute(instance_type="ml.m5.large", instance_count=1),
    base_job_name="sdk3-train",
)
trainer.train(wait=True, logs=False)
job = trainer._latest_training_job
seen["job"] = job.training_job_name
seen["artifact"] = job.model_artifacts.s3_model_artifacts
seen["train_s"] = time.monotonic() - t0

builder = ModelBuilder(
    image_uri="763104351884.dkr.ecr.us-east-1.amazonaws.com/"
    "pytorch-inference:2.5.1-cpu-py311-ubuntu22.04-sagemaker",
    s3_model_data_url=seen["artifact"],
    source_code=SourceCode(source_dir=work + "/serve", entry_script="inference.py"),
    instance_type="ml.m5.large",
)
model = builder.build()
seen["model"] = model.model_name
seen["role"] = builder.role_arn
endpoint = builder.deploy(endpoint_name=endpoint_name, initial_instance_count=1)
seen["status"] = endpoint.endpoint_status
answer = endpoint.invoke(body="[1, 2, 3]", content_type="application/json",
                         accept="application/json")
seen["prediction"] = json.loads(answer.body.read())
endpoint.delete()
seen["total_s"] = time.monotonic() - t0
with open(work + "/seen.json", "w") as f:
    json.dump(seen, f)
"""


def _venv_dir() -> Path:
    configured = os.environ.get("SAGEPORT_SDK3_VENV")
    return Path(configured) if configured else Path.home() / ".cache/sageport-tests/sdk3-venv"


def _tail(text: str, lines: int = 5) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])


def _make_venv(venv: Path) -> Path:
    """The venv's python, made (atomically, under a temporary name) unless it holds the pins.
    A venv ``$SAGEPORT_SDK3_VENV`` names that was not made here is used as it is, never
    replaced."""
    python = venv / "bin" / "python"
    stamp = venv / "sageport-pins.txt"
    wanted = "\n".join(SDK3_PINS)
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    if python.exists() and not stamp.exists() and os.environ.get("SAGEPORT_SDK3_VENV"):
        return python
    building = venv.with_name(venv.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    building.parent.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(
            [sys.executable, "-m", "venv", str(building)], check=True, capture_output=True
        )
        pip = [str(building / "bin" / "python"), "-m", "pip", "install", "-q", *SDK3_PINS]
        done = subprocess.run(
            pip, check=False, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S
        )
    except (subprocess.SubprocessError, OSError) as exc:
        shutil.rmtree(building, ignore_errors=True)
        pytest.skip(f"no SDK 3.x venv at {venv}: making it failed: {exc}")
    if done.returncode != 0:
        shutil.rmtree(building, ignore_errors=True)
        pytest.skip(f"no SDK 3.x venv at {venv}: pip install failed: {_tail(done.stderr)}")
    (building / "sageport-pins.txt").write_text(wanted)
    shutil.rmtree(venv, ignore_errors=True)
    building.rename(venv)  # a venv's scripts name their folder: they are not used here
    return python


@pytest.fixture(scope="module")
def sdk3_run(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What the user program saw, run once for this module's tests."""
    python = _make_venv(_venv_dir())
    work = tmp_path_factory.mktemp("sdk3")
    (work / "train").mkdir()
    (work / "train" / "train.py").write_text(textwrap.dedent(TRAIN_SCRIPT))
    (work / "serve").mkdir()
    (work / "serve" / "inference.py").write_text(textwrap.dedent(INFERENCE_SCRIPT))
    (work / "user.py").write_text(USER_PROGRAM)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SAGEMAKER_"))}
    for line in env_lines(Settings(data_dir=server.data_dir)):
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value.strip("'")
    endpoint = f"sdk3-{uuid.uuid4().hex[:8]}"
    done = subprocess.run(
        [str(python), str(work / "user.py"), str(work), endpoint],
        check=False,
        env=env,
        cwd=work,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    assert done.returncode == 0, (
        f"exit {done.returncode}; stdout: {_tail(done.stdout, 10)}; stderr: {_tail(done.stderr, 20)}"
    )
    result: dict[str, Any] = json.loads((work / "seen.json").read_text())
    result["endpoint"] = endpoint
    return result


@pytest.mark.slow
def test_model_trainer_trains_and_leaves_its_model_in_s3(
    server: ServerProcess, sdk3_run: dict[str, Any]
) -> None:
    job = server.client("sagemaker").describe_training_job(TrainingJobName=sdk3_run["job"])
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert job["RoleArn"] == "arn:aws:iam::000000000000:role/SageportExecutionRole"
    artifact = job["ModelArtifacts"]["S3ModelArtifacts"]
    assert artifact == sdk3_run["artifact"]
    bucket, _, key = artifact.removeprefix("s3://").partition("/")
    assert server.client("s3").head_object(Bucket=bucket, Key=key)["ContentLength"] > 0


@pytest.mark.slow
def test_model_builder_deploys_predicts_and_deletes(
    server: ServerProcess, sdk3_run: dict[str, Any]
) -> None:
    assert sdk3_run["role"] == "arn:aws:iam::000000000000:role/SageportExecutionRole"
    assert sdk3_run["status"] == "InService"
    assert sdk3_run["prediction"] == [2.0, 4.0, 6.0]
    sm = server.client("sagemaker")
    assert sm.describe_model(ModelName=sdk3_run["model"])["ExecutionRoleArn"] == sdk3_run["role"]
    names = [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]]
    status = (
        sm.describe_endpoint(EndpointName=sdk3_run["endpoint"])["EndpointStatus"]
        if sdk3_run["endpoint"] in names
        else "gone"
    )
    assert status in ("Deleting", "gone")
