"""``sageport jobs list|describe|stop`` and ``sageport logs JOB [-f]``: the HTTP API, from a shell.

These commands are clients like any other (``sageport.cli.remote``): boto3 against the
address the running server recorded in its data folder, with the keys kept there. Failures
become one line on stderr and exit status 1 — a missing job, or no server answering at the
recorded address. ``logs`` finds training and processing jobs alike.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import typer

from sageport.cli.remote import (
    EXIT_ERROR,
    LogReader,
    client,
    error_code,
    guarded,
    list_command,
    print_fields,
    sageport_api,
    to_json,
    when,
)
from sageport.settings import Settings

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
TERMINAL = ("Completed", "Failed", "Stopped")
#: how often ``logs -f`` asks for new events; the server ships job output every poll interval.
FOLLOW_INTERVAL_S = 0.5
#: GPU telemetry notes shown by ``jobs describe`` (the latest ones).
MAX_GPU_NOTES = 5


# -- jobs ------------------------------------------------------------------------------------


def list_jobs(
    settings: Settings, as_json: bool, name_contains: str | None, status: str | None, limit: int
) -> int:
    """Newest first, like the console: name, status, secondary status, created, ended."""
    columns = [
        ("NAME", lambda j: str(j["TrainingJobName"])),
        ("STATUS", lambda j: str(j["TrainingJobStatus"])),
        ("SECONDARY", lambda j: str(j.get("SecondaryStatus", ""))),
        ("CREATED", lambda j: when(j.get("CreationTime"))),
        ("ENDED", lambda j: when(j.get("TrainingEndTime"))),
    ]
    return list_command(
        settings,
        "list_training_jobs",
        "TrainingJobSummaries",
        columns,
        as_json=as_json,
        filters={"NameContains": name_contains, "StatusEquals": status},
        limit=limit,
    )


def describe_job(settings: Settings, name: str, as_json: bool) -> int:
    """The DescribeTrainingJob answer: all of it with ``--json``, the essentials otherwise."""

    def run() -> int:
        job = dict(client(settings, "sagemaker").describe_training_job(TrainingJobName=name))
        job.pop("ResponseMetadata", None)
        if as_json:
            typer.echo(to_json(job))
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
            ("Created", when(job.get("CreationTime"))),
            ("Started", when(job.get("TrainingStartTime"))),
            ("Ended", when(job.get("TrainingEndTime"))),
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
                ("  " + t["Status"], f"{when(t.get('StartTime'))}  {t.get('StatusMessage', '')}")
            )
        print_fields(fields)
        return 0

    return guarded(settings, run)


def stop_job(settings: Settings, name: str, as_json: bool) -> int:
    """Ask the server to stop the job; it answers at once, the job shows ``Stopping``."""

    def run() -> int:
        sm = client(settings, "sagemaker")
        sm.stop_training_job(TrainingJobName=name)
        status = sm.describe_training_job(TrainingJobName=name)["TrainingJobStatus"]
        if as_json:
            typer.echo(to_json({"TrainingJobName": name, "TrainingJobStatus": status}))
        else:
            typer.echo(f"{name}: {status}")
        return 0

    return guarded(settings, run)


# -- logs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _JobType:
    """One kind of job ``sageport logs`` knows: its name, log group and status call."""

    name: str
    log_group: str
    describe: str
    name_key: str
    status_key: str

    def status(self, sm: Any, job: str) -> str:
        return str(getattr(sm, self.describe)(**{self.name_key: job})[self.status_key])


JOB_TYPES = {
    "training": _JobType(
        "training", LOG_GROUP, "describe_training_job", "TrainingJobName", "TrainingJobStatus"
    ),
    "processing": _JobType(
        "processing",
        "/aws/sagemaker/ProcessingJobs",
        "describe_processing_job",
        "ProcessingJobName",
        "ProcessingJobStatus",
    ),
}


def show_logs(
    settings: Settings,
    name: str,
    follow: bool,
    interval: float = FOLLOW_INTERVAL_S,
    job_type: str | None = None,
) -> int:
    """Print the job's log events, host by host; with ``follow``, until the job has ended.

    The job is a training or a processing job (``job_type`` says which when both exist);
    a name that is neither is an error that says so.
    """

    def run() -> int:
        sm = client(settings, "sagemaker")
        found = _find_job(sm, name, job_type)
        if found is None:
            kinds = f"{job_type} job" if job_type else "training or processing job"
            typer.echo(f"error: no {kinds} named {name!r} on this server", err=True)
            return EXIT_ERROR
        reader = LogReader(client(settings, "logs"), found.log_group, f"{name}/")
        while True:
            # Read the status first: events shipped before it are then all read below.
            ended = found.status(sm, name) in TERMINAL
            events = list(reader.read())
            many = len(reader.tokens) > 1
            for stream, message in events:
                typer.echo((f"[{stream.split('/', 1)[-1]}] " if many else "") + message)
            if not follow or ended:
                return 0
            time.sleep(interval)

    return guarded(settings, run)


def _find_job(sm: Any, name: str, job_type: str | None) -> _JobType | None:
    """The kind of job ``name`` is (training first, as before processing jobs had logs);
    None when there is none of that name. When both kinds have one, stderr says so."""
    from botocore.exceptions import ClientError

    candidates = [JOB_TYPES[job_type]] if job_type else list(JOB_TYPES.values())
    found: list[_JobType] = []
    for kind in candidates:
        try:
            kind.status(sm, name)
        except ClientError as exc:
            if error_code(exc) != "ValidationException":
                raise
            continue
        found.append(kind)
    if len(found) > 1:
        typer.echo(
            f"note: {name!r} is a training job and a processing job; showing the training job's "
            "logs (--type processing for the other)",
            err=True,
        )
    return found[0] if found else None
