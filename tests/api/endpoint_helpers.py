"""Deploying models the way boto3 tutorials do, and waiting for the endpoint, with boto3.

Shared by the endpoint API tests: a model folder becomes ``model.tar.gz`` in S3 (the model
at the top, user code under ``code/``), then CreateModel → CreateEndpointConfig →
CreateEndpoint, and the tests poll DescribeEndpoint as ``EndpointInService`` waiters do
(but every 0.1 s, so the suite stays quick).
"""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
import textwrap
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

from sageport.cli.process import ServerProcess

PYTORCH_IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.1.0-cpu-py310"
TENSORFLOW_IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/tensorflow-inference:2.13-cpu"
ROLE = "arn:aws:iam::000000000000:role/SageMakerRole"
BUCKET = "endpoint-tests"

#: a model that needs no framework: ``model_fn`` returns a scale factor; magic inputs make the
#: handler misbehave in each of the ways a real one does.
MISBEHAVING_HANDLER = """
    import json, os, time, uuid

    PROCESS = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"  # pids repeat across sandboxes

    def model_fn(model_dir):
        with open(os.path.join(model_dir, "scale.txt")) as f:
            return float(f.read())

    def input_fn(body, content_type):
        if content_type != "application/json":
            raise ValueError("only JSON here")
        return json.loads(body)

    def predict_fn(data, scale):
        if data == "raise":
            raise RuntimeError("the model is unhappy")
        if data == "hang":
            time.sleep(30)
        if data == "unencodable":
            return {"value": object()}
        if data == "exit":
            os._exit(3)
        if data == "pid":
            return {"pid": PROCESS}
        return {"scaled": [x * scale for x in data]}
"""


#: a framework-free model that reports what its instance sees: its pid, its scale, the GPUs
#: it was given, the runtime headers that reached it. ``LOAD_SLEEP`` / ``LOAD_FAIL`` in the
#: model's environment make ``model_fn`` slow or raise; ``{"sleep": s}`` makes a request slow.
#: A request with CustomAttributes gets ``echo=<them>`` back as the response's.
INFO_HANDLER = """
    import json, os, time, uuid

    PROCESS = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"  # pids repeat across sandboxes

    def model_fn(model_dir):
        time.sleep(float(os.environ.get("LOAD_SLEEP", "0")))
        if os.environ.get("LOAD_FAIL"):
            raise ValueError(os.environ["LOAD_FAIL"])
        with open(os.path.join(model_dir, "scale.txt")) as f:
            return float(f.read())

    def input_fn(body, content_type):
        return json.loads(body)

    def predict_fn(data, scale, context):
        time.sleep(float(data.get("sleep", 0)) if isinstance(data, dict) else 0)
        return {
            "pid": PROCESS,
            "scale": scale,
            "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "custom": context.custom_attributes,
            "inference_id": context.inference_id,
            "header_inference_id": context.get_request_header(0, "X-Amzn-SageMaker-Inference-Id"),
            "target_variant": context.get_request_header(0, "X-Amzn-SageMaker-Target-Variant"),
        }

    def output_fn(prediction, accept, context):
        if prediction["custom"]:
            context.set_response_header(
                0, "X-Amzn-SageMaker-Custom-Attributes", "echo=" + prediction["custom"]
            )
        return json.dumps(prediction), "application/json"
"""


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def tarball(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def handler_model(scale: float, code: str = MISBEHAVING_HANDLER) -> bytes:
    return tarball(
        {"scale.txt": str(scale).encode(), "code/inference.py": textwrap.dedent(code).encode()}
    )


def torchscript_mlp(seed: int = 0) -> tuple[bytes, Any]:
    """A 784-256-10 TorchScript MLP as model.tar.gz, and the module itself for reference."""
    import torch

    torch.manual_seed(seed)
    mlp = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(mlp), buf)
    return tarball({"model.pt": buf.getvalue()}), mlp.eval()


def upload(server: ServerProcess, key: str, data: bytes) -> str:
    s3 = server.client("s3")
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    return f"s3://{BUCKET}/{key}"


def create_model(
    server: ServerProcess,
    name: str,
    archive: bytes,
    env: dict[str, str] | None = None,
    image: str = PYTORCH_IMAGE,
) -> str:
    env = {"SAGEMAKER_PROGRAM": "inference.py", **(env or {})}
    url = upload(server, f"{name}/model.tar.gz", archive)
    server.client("sagemaker").create_model(
        ModelName=name,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": image, "ModelDataUrl": url, "Environment": env},
    )
    return name


def create_config(
    server: ServerProcess,
    name: str,
    model: str,
    count: int = 1,
    instance_type: str = "ml.t2.medium",
    variants: list[dict[str, Any]] | None = None,
) -> str:
    """One ``AllTraffic`` variant of ``model``, or the ``variants`` given (ModelName defaults)."""
    server.client("sagemaker").create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {"ModelName": model, "InstanceType": instance_type, "InitialInstanceCount": 1, **v}
            for v in variants or [{"VariantName": "AllTraffic", "InitialInstanceCount": count}]
        ],
    )
    return name


def wait_status(
    server: ServerProcess, name: str, wanted: str = "InService", timeout: float = 60
) -> dict[str, Any]:
    sm = server.client("sagemaker")
    deadline = time.monotonic() + timeout
    while True:
        desc: dict[str, Any] = sm.describe_endpoint(EndpointName=name)
        if desc["EndpointStatus"] == wanted:
            return desc
        assert desc["EndpointStatus"] != "Failed", desc.get("FailureReason")
        assert time.monotonic() < deadline, f"{name} still {desc['EndpointStatus']}"
        time.sleep(0.1)


def prepare(
    server: ServerProcess,
    archive: bytes,
    prefix: str = "ep",
    env: dict[str, str] | None = None,
    count: int = 1,
    image: str = PYTORCH_IMAGE,
    instance_type: str = "ml.t2.medium",
    variants: list[dict[str, Any]] | None = None,
) -> str:
    """Model and endpoint config of one new name (see :func:`create_config`); returns it."""
    name = unique(prefix)
    create_model(server, name, archive, env, image)
    create_config(server, name, name, count, instance_type, variants)
    return name


def deploy(server: ServerProcess, archive: bytes, prefix: str = "ep", **options: Any) -> str:
    """Model, config (``options`` as for :func:`prepare`) and endpoint of one name; returns
    it once the endpoint is InService."""
    name = prepare(server, archive, prefix, **options)
    server.client("sagemaker").create_endpoint(EndpointName=name, EndpointConfigName=name)
    wait_status(server, name)
    return name


def no_retries(server: ServerProcess, service: str) -> Any:
    """A client that shows every error as it came: boto3 retries 429 and 503 by default."""
    from botocore.config import Config

    return server.client(service, config=Config(retries={"total_max_attempts": 1}))


def invoke_json(client: Any, name: str, body: Any, **kwargs: Any) -> tuple[dict[str, Any], Any]:
    """(the response without its stream, the decoded JSON body)."""
    resp = client.invoke_endpoint(
        EndpointName=name, Body=json.dumps(body), ContentType="application/json", **kwargs
    )
    data = json.loads(resp.pop("Body").read())
    return resp, data


def delete(server: ServerProcess, name: str, timeout: float = 30) -> None:
    """Delete the endpoint and wait until it is gone, then its config and model."""
    sm = server.client("sagemaker")
    sm.delete_endpoint(EndpointName=name)
    deadline = time.monotonic() + timeout
    while any(e["EndpointName"] == name for e in sm.list_endpoints()["Endpoints"]):
        assert time.monotonic() < deadline, f"{name} was not deleted"
        time.sleep(0.1)
    sm.delete_endpoint_config(EndpointConfigName=name)
    sm.delete_model(ModelName=name)


def server_pids(port: int) -> list[int]:
    """Model-server processes listening on ``port`` (found by their command line)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"sageport.serving.server" in argv and str(port).encode() in argv:
            found.append(int(proc.name))
    return found
