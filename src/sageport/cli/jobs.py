"""``sageport jobs list|describe|stop`` and ``sageport logs JOB [-f]``: the HTTP API, from a shell.

These commands are clients like any other: they call the running server with boto3, using
the address it recorded in its data folder (``server.json``) and the keys kept there, so
what they show is exactly what the SDK would see. Failures become one line on stderr and
exit status 1 — a missing job, or no server answering at the recorded address.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import typer

from sageport.settings import Settings

EXIT_ERROR = 1
LOG_GROUP = "/aws/sagemaker/TrainingJobs"
TERMINAL = ("Completed", "Failed", "Stopped")
#: how often ``logs -f`` asks for new events; the server ships job output every poll interval.
FOLLOW_INTERVAL_S = 0.5
#: GPU telemetry notes shown by ``jobs describe`` (the latest ones).
MAX_GPU_NOTES = 5


def client(settings: Settings, service: str) -> Any:
    """A boto3 client for ``service`` on the server that runs on ``settings.data_dir``."""
    import boto3
    from botocore.config import Config

    from sageport.api.credentials import load_or_create
    from sageport.cli.serverinfo import read_endpoint_url

    key = load_or_create(settings.credentials_file)[0]
    return boto3.client(
        service,
        endpoint_url=read_endpoint_url(settings),
        region_name=_region(settings),
        aws_access_key_id=key.access_key_id,
        aws_secret_access_key=key.secret_access_key,
        config=Config(retries={"max_attempts": 2}, connect_timeout=5, read_timeout=60),
    )


def sageport_api(settings: Settings, path: str) -> dict[str, Any]:
    """GET sageport's own API (``/_sageport/<path>``), signed like every request."""
    import urllib.request

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from sageport.api.credentials import load_or_create
    from sageport.cli.serverinfo import read_endpoint_url

    key = load_or_create(settings.credentials_file)[0]
    req = AWSRequest(method="GET", url=f"{read_endpoint_url(settings)}/_sageport/{path}")
    SigV4Auth(
        Credentials(key.access_key_id, key.secret_access_key), "sagemaker", _region(settings)
    ).add_auth(req)
    prepared = req.prepare()
    http = urllib.request.Request(prepared.url, headers=dict(prepared.headers), method="GET")
    try:
        with urllib.request.urlopen(http, timeout=10) as resp:
            data: dict[str, Any] = json.loads(resp.read())
            return data
    except OSError:
        return {}  # an older server, or none: describe still shows the rest


def _region(settings: Settings) -> str:
    try:
        return str(json.loads(settings.server_file.read_text())["region"])
    except (OSError, ValueError, KeyError):
        return settings.region


def guarded(settings: Settings, action: Callable[[], int]) -> int:
    """Run ``action``; AWS errors and an absent server become one line on stderr."""
    from botocore.exceptions import ClientError, EndpointConnectionError

    from sageport.cli.serverinfo import read_endpoint_url

    try:
        return action()
    except ClientError as exc:
        error = exc.response.get("Error", {})
        typer.echo(f"error: {error.get('Code')}: {error.get('Message')}", err=True)
    except EndpointConnectionError:
        typer.echo(
            f"error: no sageport server answers at {read_endpoint_url(settings)} "
            f"(start one with: sageport serve --data-dir {settings.data_dir})",
            err=True,
        )
    return EXIT_ERROR


def _json(value: Any) -> str:
    def default(obj: Any) -> str:
        if isinstance(obj, datetime):
            return obj.isoformat()
        raise TypeError(f"not JSON serializable: {type(obj).__name__}")

    return json.dumps(value, indent=2, default=default)


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if isinstance(value, datetime) else "-"


# -- jobs ------------------------------------------------------------------------------------


def list_jobs(
    settings: Settings, as_json: bool, name_contains: str | None, status: str | None, limit: int
) -> int:
    """Newest first, like the console: name, status, secondary status, created, ended."""

    def run() -> int:
        sm = client(settings, "sagemaker")
        kwargs: dict[str, Any] = {"SortBy": "CreationTime", "SortOrder": "Descending"}
        if name_contains:
            kwargs["NameContains"] = name_contains
        if status:
            kwargs["StatusEquals"] = status
        jobs: list[dict[str, Any]] = []
        for page in sm.get_paginator("list_training_jobs").paginate(**kwargs):
            jobs.extend(page["TrainingJobSummaries"])
            if len(jobs) >= limit:
                break
        jobs = jobs[:limit]
        if as_json:
            typer.echo(_json(jobs))
            return 0
        rows: list[tuple[str, ...]] = [
            (
                str(j["TrainingJobName"]),
                str(j["TrainingJobStatus"]),
                str(j.get("SecondaryStatus", "")),
                _when(j.get("CreationTime")),
                _when(j.get("TrainingEndTime")),
            )
            for j in jobs
        ]
        _table(("NAME", "STATUS", "SECONDARY", "CREATED", "ENDED"), rows)
        return 0

    return guarded(settings, run)


def describe_job(settings: Settings, name: str, as_json: bool) -> int:
    """The DescribeTrainingJob answer: all of it with ``--json``, the essentials otherwise."""

    def run() -> int:
        job = dict(client(settings, "sagemaker").describe_training_job(TrainingJobName=name))
        job.pop("ResponseMetadata", None)
        if as_json:
            typer.echo(_json(job))
            return 0
        resources = job.get("ResourceConfig") or {}
        fields = [
            ("Name", job["TrainingJobName"]),
            ("Status", f"{job['TrainingJobStatus']} ({job.get('SecondaryStatus', '')})"),
            ("Image", (job.get("AlgorithmSpecification") or {}).get("TrainingImage", "-")),
            (
                "Instances",
                f"{resources.get('InstanceCount', 1)} x {resources.get('InstanceType', '-')}",
            ),
            ("Created", _when(job.get("CreationTime"))),
            ("Started", _when(job.get("TrainingStartTime"))),
            ("Ended", _when(job.get("TrainingEndTime"))),
            ("Model", (job.get("ModelArtifacts") or {}).get("S3ModelArtifacts", "-")),
        ]
        if job.get("FailureReason"):
            fields.append(("Failure", job["FailureReason"]))
        gpu = sageport_api(settings, f"training-jobs/{name}/gpu")
        fields.append(("GPUs", ", ".join(str(g) for g in gpu.get("Gpus", [])) or "none"))
        for row in gpu.get("Summary", []):
            fields.append(
                (
                    f"  GPU {row['gpu']}",
                    f"{row['samples']} samples, mean {row['mean_utilization_percent']}% "
                    f"peak {row['max_utilization_percent']}% util, "
                    f"peak {row['max_memory_used_mib']} MiB",
                )
            )
        if gpu.get("IdleWarning"):
            fields.append(("  WARNING", gpu["IdleWarning"]))
        notes = list(gpu.get("Notes") or [])
        for note in notes[-MAX_GPU_NOTES:]:  # a GPU that stopped answering NVML, and when
            fields.append(("  NOTE", note))
        if len(notes) > MAX_GPU_NOTES:
            fields.append(("  NOTE", f"... and {len(notes) - MAX_GPU_NOTES} earlier ones"))
        for t in job.get("SecondaryStatusTransitions") or []:
            fields.append(
                ("  " + t["Status"], f"{_when(t.get('StartTime'))}  {t.get('StatusMessage', '')}")
            )
        width = max(len(k) for k, _ in fields)
        for key, value in fields:
            typer.echo(f"{key:<{width}}  {value}")
        return 0

    return guarded(settings, run)


def stop_job(settings: Settings, name: str, as_json: bool) -> int:
    """Ask the server to stop the job; it answers at once, the job shows ``Stopping``."""

    def run() -> int:
        sm = client(settings, "sagemaker")
        sm.stop_training_job(TrainingJobName=name)
        status = sm.describe_training_job(TrainingJobName=name)["TrainingJobStatus"]
        if as_json:
            typer.echo(_json({"TrainingJobName": name, "TrainingJobStatus": status}))
        else:
            typer.echo(f"{name}: {status}")
        return 0

    return guarded(settings, run)


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        typer.echo(
            "  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        )


# -- logs ------------------------------------------------------------------------------------


def show_logs(
    settings: Settings, name: str, follow: bool, interval: float = FOLLOW_INTERVAL_S
) -> int:
    """Print the job's log events, host by host; with ``follow``, until the job has ended."""

    def run() -> int:
        sm = client(settings, "sagemaker")
        logs = client(settings, "logs")
        sm.describe_training_job(TrainingJobName=name)  # an unknown job is an error, not silence
        tokens: dict[str, str | None] = {}
        while True:
            # Read the status first: events shipped before it are then all read below.
            ended = sm.describe_training_job(TrainingJobName=name)["TrainingJobStatus"] in TERMINAL
            streams = _streams(logs, name)
            for stream in streams:
                tokens.setdefault(stream, None)
            for stream in sorted(tokens):
                prefix = f"[{stream.split('/', 1)[-1]}] " if len(tokens) > 1 else ""
                for message, token in _events(logs, stream, tokens[stream]):
                    typer.echo(prefix + message)
                    tokens[stream] = token
            if not follow or ended:
                return 0
            time.sleep(interval)

    return guarded(settings, run)


def _streams(logs: Any, name: str) -> list[str]:
    from botocore.exceptions import ClientError

    try:
        found = logs.describe_log_streams(logGroupName=LOG_GROUP, logStreamNamePrefix=f"{name}/")
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return []  # no job has logged yet
        raise
    return [s["logStreamName"] for s in found["logStreams"]]


def _events(logs: Any, stream: str, token: str | None) -> Iterator[tuple[str, str]]:
    """(message, token after it) for every event after ``token``, oldest first."""
    while True:
        kwargs: dict[str, Any] = {"nextToken": token} if token else {"startFromHead": True}
        page = logs.get_log_events(logGroupName=LOG_GROUP, logStreamName=stream, **kwargs)
        next_token = page["nextForwardToken"]
        for event in page["events"]:
            yield event["message"], next_token
        if not page["events"] or next_token == token:
            return
        token = next_token
