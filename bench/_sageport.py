"""``sageport serve`` for the serving benchmarks: deploy through the real API, find the model servers.

A server on a temp data folder (``ServerProcess``, as the tests use it), the model archive put
in its S3, then CreateModel → CreateEndpointConfig → CreateEndpoint with boto3 and
DescribeEndpoint polled until ``InService`` — the path a user's deploy takes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from _common import http_get

from sageport.cli.process import ServerProcess

PYTORCH_IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.1.0-cpu-py310"
ROLE = "arn:aws:iam::000000000000:role/SageMakerRole"
BUCKET = "serving-bench"
#: CPU/memory accounting loose enough that an instance type fits whatever the bench box has
#: (accounting only: it changes no process's resources).
SETTINGS = "cpu_overcommit = 100.0\nmemory_overcommit = 100.0\n"


class Sageport:
    """A ``sageport serve`` on ``data_dir`` for the life of a ``with`` block."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        (data_dir / "sageport.toml").write_text(SETTINGS)
        self.server = ServerProcess(data_dir)

    def __enter__(self) -> Sageport:
        self.server.start()
        self.server.client("s3").create_bucket(Bucket=BUCKET)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.server.stop()

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def keys(self) -> tuple[str, str]:
        return self.server.keys

    @property
    def region(self) -> str:
        return self.server.region

    def deploy(
        self,
        name: str,
        archive: bytes,
        env: dict[str, str],
        instance_type: str = "ml.m5.large",
        timeout: float = 600.0,
    ) -> str:
        """Model, config and endpoint called ``name``; returns once the endpoint is InService."""
        key = f"{name}/model.tar.gz"
        self.server.client("s3").put_object(Bucket=BUCKET, Key=key, Body=archive)
        sm = self.server.client("sagemaker")
        sm.create_model(
            ModelName=name,
            ExecutionRoleArn=ROLE,
            PrimaryContainer={
                "Image": PYTORCH_IMAGE,
                "ModelDataUrl": f"s3://{BUCKET}/{key}",
                "Environment": env,
            },
        )
        sm.create_endpoint_config(
            EndpointConfigName=name,
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": name,
                    "InstanceType": instance_type,
                    "InitialInstanceCount": 1,
                }
            ],
        )
        sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
        deadline = time.monotonic() + timeout
        while True:
            desc = sm.describe_endpoint(EndpointName=name)
            status = desc["EndpointStatus"]
            if status == "InService":
                return name
            if status == "Failed":
                raise RuntimeError(f"endpoint {name} failed: {desc.get('FailureReason')}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"endpoint {name} still {status} after {timeout:.0f}s")
            time.sleep(0.2)

    def delete(self, name: str, timeout: float = 60.0) -> None:
        """The endpoint, waited for until it is gone (its model server stopped), then the rest."""
        sm = self.server.client("sagemaker")
        sm.delete_endpoint(EndpointName=name)
        deadline = time.monotonic() + timeout
        while any(e["EndpointName"] == name for e in sm.list_endpoints()["Endpoints"]):
            if time.monotonic() > deadline:
                raise TimeoutError(f"endpoint {name} was not deleted after {timeout:.0f}s")
            time.sleep(0.2)
        sm.delete_endpoint_config(EndpointConfigName=name)
        sm.delete_model(ModelName=name)

    def model_server_ports(self) -> list[int]:
        """Ports of this server's model servers: ``sageport.serving.server`` processes that
        descend from it, or from a launcher working in its data folder (launchers may detach)."""
        root = int(json.loads((self.server.data_dir / "server.json").read_text())["pid"])
        mark = str(self.server.data_dir.resolve())
        ports = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            argv = _argv(int(proc.name))
            served = "sageport.serving.server" in argv and "--port" in argv
            if served and _ours(int(proc.name), root, mark):
                ports.append(int(argv[argv.index("--port") + 1]))
        return sorted(set(ports))

    def batch_histograms(self) -> dict[str, Any]:
        """``/metrics`` batch-size histogram of each of its model servers, by port."""
        out: dict[str, Any] = {}
        for port in self.model_server_ports():
            try:
                status, body = http_get(f"http://127.0.0.1:{port}/metrics")
            except OSError:
                continue
            if status == 200:
                out[str(port)] = json.loads(body).get("batch_size_histogram")
        return out


def _argv(pid: int) -> list[str]:
    try:
        return (
            (Path("/proc") / str(pid) / "cmdline").read_bytes().decode(errors="replace").split("\0")
        )
    except OSError:
        return []


def _ours(pid: int, root: int, mark: str) -> bool:
    for _ in range(64):
        if pid == root or any(mark in arg for arg in _argv(pid)):
            return True
        if pid <= 1:
            return False
        try:
            stat = (Path("/proc") / str(pid) / "stat").read_text()
        except OSError:
            return False
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return False
