"""Processing-job statuses: a step is stored, ``ProcessingJobStatus`` derived from it.

A processing job shows clients only ``ProcessingJobStatus`` (botocore's enum: InProgress,
Completed, Failed, Stopping, Stopped). The runner needs finer steps (queued, staging,
running, uploading), so those are stored and moved through :data:`TRANSITIONS`; the public
status is :data:`PUBLIC` of the step.

The stored values are the ones processing jobs were written with when they shared the
training statuses (``Training`` for a running job, ``MaxRuntimeExceeded`` for one stopped by
its limit), so a job stored then reads, and one running across an upgrade moves on from where
it was. No client sees them: DescribeProcessingJob has no secondary status and no status
transitions.
"""

from __future__ import annotations

import enum

from sageport.domain.jobs import JobMachine
from sageport.domain.status import TransitionTable


class ProcessingJobStatus(enum.StrEnum):
    """``ProcessingJobStatus``: what a client polls (the SDK's ``wait`` until a final one)."""

    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPING = "Stopping"
    STOPPED = "Stopped"


class ProcessingStep(enum.StrEnum):
    """The step a processing job is at (stored; never shown)."""

    STARTING = "Starting"
    """Created; waiting in the queue for GPUs, CPUs and memory."""
    DOWNLOADING = "Downloading"
    """Resources granted; inputs being staged at their LocalPaths."""
    RUNNING = "Training"
    """The container's processes run (stored as ``Training``: see the module docstring)."""
    UPLOADING = "Uploading"
    """Every process exited; outputs being stored (shown InProgress: see :data:`PUBLIC`)."""
    STOPPING = "Stopping"
    """StopProcessingJob received (or the runtime limit hit); SIGTERM sent, outputs stored."""
    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPED = "Stopped"
    MAX_RUNTIME_EXCEEDED = "MaxRuntimeExceeded"
    """Stopped because it ran past ``StoppingCondition.MaxRuntimeInSeconds``; shown Stopped."""


P = ProcessingStep

#: The public status of each step. Uploading shows InProgress: SDK 2.x's ``wait`` polls
#: while the status is InProgress or Stopping, and would end its wait on anything else.
PUBLIC: dict[ProcessingStep, ProcessingJobStatus] = {
    P.STARTING: ProcessingJobStatus.IN_PROGRESS,
    P.DOWNLOADING: ProcessingJobStatus.IN_PROGRESS,
    P.RUNNING: ProcessingJobStatus.IN_PROGRESS,
    P.UPLOADING: ProcessingJobStatus.IN_PROGRESS,
    P.STOPPING: ProcessingJobStatus.STOPPING,
    P.COMPLETED: ProcessingJobStatus.COMPLETED,
    P.FAILED: ProcessingJobStatus.FAILED,
    P.STOPPED: ProcessingJobStatus.STOPPED,
    P.MAX_RUNTIME_EXCEEDED: ProcessingJobStatus.STOPPED,
}

# The runner carries a processing job through the same steps as a training job, so the
# edges are the same; each names the code that takes it (test_status_walk drives them all).
TRANSITIONS: TransitionTable[ProcessingStep] = TransitionTable(
    {
        P.STARTING: {
            P.DOWNLOADING: "admitted: resources granted (JobRunner._starting)",
            P.STOPPING: "StopProcessingJob while queued (JobService.stop)",
            P.FAILED: "it can never fit on this machine (Admit.admit, JobRunner._fail_early)",
        },
        P.DOWNLOADING: {
            P.RUNNING: "inputs staged, the processes started (JobRunner._stage_and_launch)",
            P.STOPPING: "StopProcessingJob or MaxRuntimeInSeconds while staging (JobRunner)",
            P.FAILED: "staging failed: no such input, a download or launch error (JobRunner)",
        },
        P.RUNNING: {
            P.UPLOADING: "every host exited, with any code (JobRunner._running)",
            P.STOPPING: "StopProcessingJob, or MaxRuntimeInSeconds reached (JobRunner._running)",
        },
        P.UPLOADING: {
            P.COMPLETED: "every host exited 0 and the outputs are stored (JobRunner._finish)",
            P.FAILED: "a host exited non-zero, or the upload failed (JobRunner._finish)",
            P.STOPPING: "StopProcessingJob during the upload: it finishes, the job ends Stopped",
        },
        P.STOPPING: {
            P.STOPPED: "its processes ended (or none had started) and what they left is stored",
            P.MAX_RUNTIME_EXCEEDED: "as Stopped, but the stop came from MaxRuntimeInSeconds",
        },
        P.COMPLETED: {},
        P.FAILED: {},
        P.STOPPED: {},
        P.MAX_RUNTIME_EXCEEDED: {},
    }
)

#: Recorded with each step; a processing job shows no status message, so these are for the
#: history and the server's own views.
MESSAGES: dict[ProcessingStep, str] = {
    P.STARTING: "Preparing the instances for the processing job",
    P.DOWNLOADING: "Downloading input data",
    P.RUNNING: "Processing job in progress",
    P.UPLOADING: "Uploading processing outputs",
    P.STOPPING: "Stopping the processing job",
    P.COMPLETED: "Processing job completed",
    P.FAILED: "Processing job failed",
    P.STOPPED: "Processing job stopped",
    P.MAX_RUNTIME_EXCEEDED: "Processing job exceeded MaxRuntimeInSeconds provided",
}

MACHINE: JobMachine[ProcessingStep] = JobMachine(
    kind=ProcessingStep,
    table=TRANSITIONS,
    messages=MESSAGES,
    public={s: p.value for s, p in PUBLIC.items()},
    starting=P.STARTING,
    downloading=P.DOWNLOADING,
    running=P.RUNNING,
    uploading=P.UPLOADING,
    stopping=P.STOPPING,
    completed=P.COMPLETED,
    failed=P.FAILED,
    stopped=P.STOPPED,
    max_runtime_exceeded=P.MAX_RUNTIME_EXCEEDED,
)
