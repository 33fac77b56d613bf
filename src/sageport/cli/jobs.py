"""``sageport jobs list|describe|stop``: training and processing jobs, from a shell.

These commands are clients like any other (``sageport.cli.remote``): boto3 against the
address the running server recorded in its data folder, with the keys kept there. Failures
become one line on stderr and exit status 1 — a missing job, or no server answering at the
recorded address.

SageMaker keeps the two kinds apart, and one name may be a training job and a processing job
at once. ``list`` shows both, newest first, with a KIND column; ``describe`` and ``stop`` look
for the name among training jobs, then processing jobs, and when it is both they refuse to
guess: ``--kind`` says which. ``sageport logs`` (``sageport.cli.job_logs``) finds jobs the
same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import typer

from sageport.cli.remote import (
    CommandError,
    client,
    error_code,
    guarded,
    print_fields,
    sageport_api,
    summaries,
    table,
    to_json,
    when,
)
from sageport.settings import Settings

TERMINAL = ("Completed", "Failed", "Stopped")
#: GPU telemetry notes shown by ``jobs describe`` (the latest ones).
MAX_GPU_NOTES = 5


@dataclass(frozen=True)
class JobKind:
    """One kind of job: the SageMaker calls and the keys of its answers, and its log group.

    The names are spelled out, not derived, so a grep for ``describe_processing_job``
    finds its caller.
    """

    name: str
    log_group: str
    name_key: str
    status_key: str
    end_key: str
    list_call: str
    summaries_key: str
    describe_call: str
    stop_call: str

    def describe(self, sm: Any, job: str) -> dict[str, Any]:
        """The ``Describe*Job`` answer, without boto3's ``ResponseMetadata``."""
        answer = dict(getattr(sm, self.describe_call)(**{self.name_key: job}))
        answer.pop("ResponseMetadata", None)
        return answer

    def status(self, sm: Any, job: str) -> str:
        return str(self.describe(sm, job)[self.status_key])


TRAINING = JobKind(
    name="training",
    log_group="/aws/sagemaker/TrainingJobs",
    name_key="TrainingJobName",
    status_key="TrainingJobStatus",
    end_key="TrainingEndTime",
    list_call="list_training_jobs",
    summaries_key="TrainingJobSummaries",
    describe_call="describe_training_job",
    stop_call="stop_training_job",
)
PROCESSING = JobKind(
    name="processing",
    log_group="/aws/sagemaker/ProcessingJobs",
    name_key="ProcessingJobName",
    status_key="ProcessingJobStatus",
    end_key="ProcessingEndTime",
    list_call="list_processing_jobs",
    summaries_key="ProcessingJobSummaries",
    describe_call="describe_processing_job",
    stop_call="stop_processing_job",
)
#: in the order a name is looked for: training first, as before processing jobs were shown
KINDS = {k.name: k for k in (TRAINING, PROCESSING)}


def kinds(kind: str | None) -> list[JobKind]:
    """The kind asked for, or every kind (training first)."""
    return [KINDS[kind]] if kind else list(KINDS.values())


def find_jobs(sm: Any, name: str, kind: str | None) -> list[tuple[JobKind, dict[str, Any]]]:
    """The jobs called ``name`` among the kinds asked for, with their ``Describe*`` answers."""
    from botocore.exceptions import ClientError

    found = []
    for k in kinds(kind):
        try:
            found.append((k, k.describe(sm, name)))
        except ClientError as exc:
            if error_code(exc) != "ValidationException":  # how SageMaker says "not found"
                raise
    return found


def not_found(name: str, kind: str | None) -> CommandError:
    what = f"{kind} job" if kind else "training or processing job"
    return CommandError(f"no {what} named {name!r} on this server")


def the_job(sm: Any, name: str, kind: str | None) -> tuple[JobKind, dict[str, Any]]:
    """The one job called ``name``; a name that is none, or both kinds without ``kind``
    saying which, is a :class:`CommandError`."""
    found = find_jobs(sm, name, kind)
    if not found:
        raise not_found(name, kind)
    if len(found) > 1:
        raise CommandError(
            f"{name!r} is both a training job and a processing job: "
            "say which with --kind training or --kind processing"
        )
    return found[0]


# -- list ------------------------------------------------------------------------------------


Row = tuple[JobKind, Mapping[str, Any]]

COLUMNS: list[tuple[str, Callable[[JobKind, Mapping[str, Any]], str]]] = [
    ("NAME", lambda k, j: str(j[k.name_key])),
    ("KIND", lambda k, j: k.name),
    ("STATUS", lambda k, j: str(j[k.status_key])),
    # processing jobs have no secondary status: "-" keeps the columns apart for awk and cut
    ("SECONDARY", lambda k, j: str(j.get("SecondaryStatus") or "-")),
    ("CREATED", lambda k, j: when(j.get("CreationTime"))),
    ("ENDED", lambda k, j: when(j.get(k.end_key))),
]


def list_jobs(
    settings: Settings,
    as_json: bool,
    name_contains: str | None,
    status: str | None,
    limit: int,
    kind: str | None = None,
) -> int:
    """Training and processing jobs (or the ``kind`` asked for), newest first, at most
    ``limit``; ``--json`` gives each ``*JobSummary`` with a ``Kind`` key added."""

    def run() -> int:
        sm = client(settings, "sagemaker")
        filters = {"NameContains": name_contains, "StatusEquals": status}
        rows: list[Row] = []
        for k in kinds(kind):
            # each kind's newest ``limit``: the newest ``limit`` of all are among them
            rows.extend((k, s) for s in summaries(sm, k.list_call, k.summaries_key, filters, limit))
        rows.sort(key=lambda r: _created(r[1]), reverse=True)
        rows = rows[:limit]
        if as_json:
            typer.echo(to_json([{"Kind": k.name, **s} for k, s in rows]))
        else:
            table(
                tuple(h for h, _ in COLUMNS), [tuple(f(k, s) for _, f in COLUMNS) for k, s in rows]
            )
        return 0

    return guarded(settings, run)


def _created(summary: Mapping[str, Any]) -> float:
    created = summary.get("CreationTime")
    return created.timestamp() if isinstance(created, datetime) else 0.0


# -- describe --------------------------------------------------------------------------------


def describe_job(settings: Settings, name: str, as_json: bool, kind: str | None = None) -> int:
    """The ``Describe*Job`` answer: all of it with ``--json``, the essentials otherwise."""

    def run() -> int:
        sm = client(settings, "sagemaker")
        found, job = the_job(sm, name, kind)
        if as_json:
            typer.echo(to_json(job))
        elif found is TRAINING:
            print_fields(_training_fields(settings, name, job))
        else:
            print_fields(_processing_fields(job))
        return 0

    return guarded(settings, run)


def _training_fields(
    settings: Settings, name: str, job: Mapping[str, Any]
) -> list[tuple[str, str]]:
    resources = job.get("ResourceConfig") or {}
    fields = [
        ("Name", job["TrainingJobName"]),
        ("Kind", "training"),
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
    return fields


def _processing_fields(job: Mapping[str, Any]) -> list[tuple[str, str]]:
    app = job.get("AppSpecification") or {}
    cluster = (job.get("ProcessingResources") or {}).get("ClusterConfig") or {}
    fields = [
        ("Name", job["ProcessingJobName"]),
        ("Kind", "processing"),
        ("Status", str(job["ProcessingJobStatus"])),
        ("Image", app.get("ImageUri", "-")),
    ]
    if app.get("ContainerEntrypoint"):
        fields.append(("Entrypoint", " ".join(app["ContainerEntrypoint"])))
    fields += [
        ("Instances", f"{cluster.get('InstanceCount', 1)} x {cluster.get('InstanceType', '-')}"),
        ("Created", when(job.get("CreationTime"))),
        ("Started", when(job.get("ProcessingStartTime"))),
        ("Ended", when(job.get("ProcessingEndTime"))),
    ]
    for item in job.get("ProcessingInputs") or []:
        s3 = item.get("S3Input") or {}
        source = s3.get("S3Uri", "-") if s3 else "(dataset definition)"
        fields.append((f"Input {item['InputName']}", f"{source} -> {s3.get('LocalPath', '-')}"))
    for item in (job.get("ProcessingOutputConfig") or {}).get("Outputs") or []:
        s3 = item.get("S3Output") or {}
        fields.append(
            (
                f"Output {item['OutputName']}",
                f"{s3.get('LocalPath', '-')} -> {s3.get('S3Uri', '-')}",
            )
        )
    if job.get("ExitMessage"):
        fields.append(("Exit message", job["ExitMessage"]))
    if job.get("FailureReason"):
        fields.append(("Failure", job["FailureReason"]))
    return fields


# -- stop ------------------------------------------------------------------------------------


def stop_job(settings: Settings, name: str, as_json: bool, kind: str | None = None) -> int:
    """Ask the server to stop the job; it answers at once, the job shows ``Stopping``."""

    def run() -> int:
        sm = client(settings, "sagemaker")
        found, _ = the_job(sm, name, kind)
        getattr(sm, found.stop_call)(**{found.name_key: name})
        status = found.status(sm, name)
        if as_json:
            typer.echo(to_json({found.name_key: name, found.status_key: status}))
        else:
            typer.echo(f"{name}: {status}")
        return 0

    return guarded(settings, run)
