"""Submitting training jobs the way AWS tutorials do, and waiting for them, with boto3.

Shared by the training-job API tests: a script becomes ``sourcedir.tar.gz`` in S3, the job
names it through ``sagemaker_program`` / ``sagemaker_submit_directory`` (JSON-encoded, as
the SDK sends them), and the tests poll ``DescribeTrainingJob`` until the job ends.
"""

from __future__ import annotations

import io
import json
import tarfile
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

from sageport.cli.process import ServerProcess

PYTORCH_IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.1.0-cpu-py310"
TENSORFLOW_IMAGE = (
    "763104351884.dkr.ecr.us-east-1.amazonaws.com/tensorflow-training:2.13.0-cpu-py310"
)
ROLE = "arn:aws:iam::000000000000:role/SageMakerRole"
BUCKET = "training-tests"
TERMINAL = ("Completed", "Failed", "Stopped")
LOG_GROUP = "/aws/sagemaker/TrainingJobs"

#: a tiny MLP trained for ``--epochs`` full-batch steps on x.npy/y.npy of the training channel.
TORCH_SCRIPT = """
    import argparse, glob, os
    import numpy as np
    import torch
    from torch import nn

    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--model-dir", default=os.environ["SM_MODEL_DIR"])
    parser.add_argument("--train", default=os.environ["SM_CHANNEL_TRAINING"])
    args = parser.parse_args()

    x = torch.from_numpy(np.load(os.path.join(args.train, "x.npy"))).float()
    y = torch.from_numpy(np.load(os.path.join(args.train, "y.npy"))).float()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=args.lr)
    for epoch in range(args.epochs):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        print(f"epoch={epoch} loss={loss.item():.6f}", flush=True)
    torch.save(model.state_dict(), os.path.join(args.model_dir, "model.pth"))
    print("saved", sorted(glob.glob(args.train + "/*")))
"""


def unique(prefix: str) -> str:
    """A job name no other test uses (names are unique per account and region)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def source_tar(files: dict[str, str | bytes]) -> bytes:
    """``sourcedir.tar.gz`` as the SDK builds it: the files at the archive's root (text is
    dedented; bytes are stored as they are)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in files.items():
            data = text if isinstance(text, bytes) else textwrap.dedent(text).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def ensure_bucket(server: ServerProcess, bucket: str = BUCKET) -> None:
    s3 = server.client("s3")
    names = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    if bucket not in names:
        s3.create_bucket(Bucket=bucket)


def put_objects(
    server: ServerProcess, prefix: str, objects: dict[str, bytes], bucket: str = BUCKET
) -> str:
    """Store ``objects`` under ``s3://bucket/prefix/``; returns that URI."""
    ensure_bucket(server, bucket)
    s3 = server.client("s3")
    for key, body in objects.items():
        s3.put_object(Bucket=bucket, Key=f"{prefix}/{key}", Body=body)
    return f"s3://{bucket}/{prefix}/"


def s3_channel(
    name: str,
    uri: str,
    *,
    data_type: str = "S3Prefix",
    distribution: str = "FullyReplicated",
) -> dict[str, Any]:
    return {
        "ChannelName": name,
        "DataSource": {
            "S3DataSource": {
                "S3DataType": data_type,
                "S3Uri": uri,
                "S3DataDistributionType": distribution,
            }
        },
    }


def job_request(
    server: ServerProcess,
    name: str,
    script: str,
    *,
    channels: dict[str, str] | None = None,
    hyperparameters: dict[str, Any] | None = None,
    image: str = PYTORCH_IMAGE,
    extra_files: dict[str, str | bytes] | None = None,
    program: str = "train.py",
    **overrides: Any,
) -> dict[str, Any]:
    """A ``CreateTrainingJob`` request shaped like the AWS tutorials' (code uploaded first)."""
    code = source_tar({program: script, **(extra_files or {})})
    put_objects(server, f"{name}/source", {"sourcedir.tar.gz": code})
    hps = {k: json.dumps(v) for k, v in (hyperparameters or {}).items()}
    hps["sagemaker_program"] = json.dumps(program)
    hps["sagemaker_submit_directory"] = json.dumps(f"s3://{BUCKET}/{name}/source/sourcedir.tar.gz")
    hps["sagemaker_region"] = json.dumps(server.region)
    hps["sagemaker_container_log_level"] = "20"
    request: dict[str, Any] = {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},
        "RoleArn": ROLE,
        "HyperParameters": hps,
        "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/output"},
        "ResourceConfig": {
            "InstanceType": "ml.m5.xlarge",
            "InstanceCount": 1,
            "VolumeSizeInGB": 10,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
    }
    if channels:
        request["InputDataConfig"] = [s3_channel(k, v) for k, v in channels.items()]
    request.update(overrides)
    return request


def submit(server: ServerProcess, name: str, script: str, **kwargs: Any) -> dict[str, Any]:
    """Upload the code and create the job; returns the create response."""
    request = job_request(server, name, script, **kwargs)
    return dict(server.client("sagemaker").create_training_job(**request))


def wait(
    server: ServerProcess, name: str, timeout: float = 60.0, interval: float = 0.05
) -> dict[str, Any]:
    """Poll DescribeTrainingJob until the job is Completed, Failed or Stopped."""
    sm = server.client("sagemaker")
    deadline = time.monotonic() + timeout
    while True:
        job = sm.describe_training_job(TrainingJobName=name)
        if job["TrainingJobStatus"] in TERMINAL:
            return dict(job)
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{name} still {job['SecondaryStatus']} after {timeout}s:\n{log_text(server, name)}"
            )
        time.sleep(interval)


def wait_completed(server: ServerProcess, name: str, timeout: float = 60.0) -> dict[str, Any]:
    """:func:`wait`, and the job must have Completed (its FailureReason shows otherwise)."""
    job = wait(server, name, timeout)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    return job


def wait_for(
    server: ServerProcess, name: str, secondary: str, timeout: float = 30.0
) -> dict[str, Any]:
    """Poll until the job reaches ``secondary`` (fails if it ends first)."""
    sm = server.client("sagemaker")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = sm.describe_training_job(TrainingJobName=name)
        if job["SecondaryStatus"] == secondary:
            return dict(job)
        assert job["TrainingJobStatus"] not in TERMINAL, (
            job["SecondaryStatus"],
            log_text(server, name),
        )
        time.sleep(0.05)
    raise AssertionError(f"{name} never reached {secondary}")


def log_lines(server: ServerProcess, name: str) -> list[str]:
    """Every event of every log stream of the job, as the SDK reads them."""
    logs = server.client("logs")
    streams = logs.describe_log_streams(logGroupName=LOG_GROUP, logStreamNamePrefix=f"{name}/")[
        "logStreams"
    ]
    lines: list[str] = []
    for stream in streams:
        token = None
        while True:
            kwargs: dict[str, Any] = {"nextToken": token} if token else {}
            page = logs.get_log_events(
                logGroupName=LOG_GROUP,
                logStreamName=stream["logStreamName"],
                startFromHead=True,
                **kwargs,
            )
            lines.extend(e["message"] for e in page["events"])
            if not page["events"] or page["nextForwardToken"] == token:
                break
            token = page["nextForwardToken"]
    return lines


def log_text(server: ServerProcess, name: str) -> str:
    try:
        return "\n".join(log_lines(server, name))
    except Exception as exc:  # diagnostics only: an assertion message must not raise
        return f"(no logs: {exc})"


def download(server: ServerProcess, uri: str) -> bytes:
    """The object at ``s3://bucket/key``."""
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    return bytes(server.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


def model_files(server: ServerProcess, job: dict[str, Any]) -> dict[str, bytes]:
    """The members of the job's ``model.tar.gz``, by name."""
    return tar_members(download(server, job["ModelArtifacts"]["S3ModelArtifacts"]))


def tar_members(data: bytes) -> dict[str, bytes]:
    """The files of a ``.tar.gz``, by name."""
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            if member.isfile():
                handle = tar.extractfile(member)
                assert handle is not None
                out[member.name] = handle.read()
    return out


def npy(array: Any) -> bytes:
    """``array`` in .npy format."""
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def host_folder(server: ServerProcess, name: str, host: str = "algo-1") -> Path:
    """The folder a training job's host sees as ``/opt/ml`` (in the server's data folder)."""
    return server.data_dir / "jobs" / "training" / name / host


def report(server: ServerProcess, job: dict[str, Any], member: str = "report.json") -> Any:
    """A JSON file the job's script left in its model folder."""
    return json.loads(model_files(server, job)[member])
