"""Submitting processing jobs with boto3 and waiting for them, as a SageMaker user would.

A job's script is uploaded to S3 and staged at ``/opt/ml/processing/input/code`` like the
SDK's ``ScriptProcessor`` does; the tests poll ``DescribeProcessingJob`` until the job ends.
"""

from __future__ import annotations

import textwrap
import time
from typing import Any

from training_helpers import BUCKET, PYTORCH_IMAGE, ROLE, put_objects

from sageport.cli.process import ServerProcess

TERMINAL = ("Completed", "Failed", "Stopped")
LOG_GROUP = "/aws/sagemaker/ProcessingJobs"
CODE_DIR = "/opt/ml/processing/input/code"


def s3_input(name: str, uri: str, local_path: str, **extra: str) -> dict[str, Any]:
    s3 = {"S3Uri": uri, "LocalPath": local_path, "S3DataType": "S3Prefix", "S3InputMode": "File"}
    s3.update(extra)
    return {"InputName": name, "S3Input": s3}


def s3_output(name: str, uri: str, local_path: str, mode: str = "EndOfJob") -> dict[str, Any]:
    return {
        "OutputName": name,
        "S3Output": {"S3Uri": uri, "LocalPath": local_path, "S3UploadMode": mode},
    }


def processing_request(
    server: ServerProcess,
    name: str,
    script: str,
    *,
    inputs: list[dict[str, Any]] | None = None,
    outputs: list[dict[str, Any]] | None = None,
    arguments: list[str] | None = None,
    instance_type: str = "ml.m5.xlarge",
    instance_count: int = 1,
    **overrides: Any,
) -> dict[str, Any]:
    """A ``CreateProcessingJob`` request as ``ScriptProcessor.run(code=...)`` sends it."""
    code_uri = put_objects(
        server, f"{name}/input/code", {"process.py": textwrap.dedent(script).encode()}
    )
    request: dict[str, Any] = {
        "ProcessingJobName": name,
        "RoleArn": ROLE,
        "AppSpecification": {
            "ImageUri": PYTORCH_IMAGE,
            "ContainerEntrypoint": ["python3", f"{CODE_DIR}/process.py"],
        },
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": instance_count,
                "InstanceType": instance_type,
                "VolumeSizeInGB": 30,
            }
        },
        "ProcessingInputs": [*(inputs or []), s3_input("code", code_uri + "process.py", CODE_DIR)],
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
    }
    if arguments:
        request["AppSpecification"]["ContainerArguments"] = arguments
    if outputs:
        request["ProcessingOutputConfig"] = {"Outputs": outputs}
    request.update(overrides)
    return request


def submit(server: ServerProcess, name: str, script: str, **kwargs: Any) -> dict[str, Any]:
    request = processing_request(server, name, script, **kwargs)
    return dict(server.client("sagemaker").create_processing_job(**request))


def wait(server: ServerProcess, name: str, timeout: float = 60.0) -> dict[str, Any]:
    """Poll DescribeProcessingJob until the job is Completed, Failed or Stopped."""
    sm = server.client("sagemaker")
    deadline = time.monotonic() + timeout
    while True:
        job = sm.describe_processing_job(ProcessingJobName=name)
        if job["ProcessingJobStatus"] in TERMINAL:
            return dict(job)
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{name} still {job['ProcessingJobStatus']} after {timeout}s:\n{log_text(server, name)}"
            )
        time.sleep(0.05)


def log_lines(server: ServerProcess, name: str) -> list[str]:
    """Every event of every log stream of the job in ``/aws/sagemaker/ProcessingJobs``."""
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


def wait_log(server: ServerProcess, name: str, text: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(text in line for line in log_lines(server, name)):
            return
        time.sleep(0.05)
    raise AssertionError(f"{name} never logged {text!r}:\n{log_text(server, name)}")


def objects(server: ServerProcess, prefix: str, bucket: str = BUCKET) -> dict[str, bytes]:
    """Every object under ``prefix``, by key relative to it."""
    s3 = server.client("s3")
    out: dict[str, bytes] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            out[item["Key"][len(prefix) :].lstrip("/")] = body
    return out
