"""Training-job statuses: the secondary status is stored, the primary one derived from it.

SageMaker reports two statuses. ``SecondaryStatus`` is the finer one and determines
``TrainingJobStatus`` completely (Downloading ⇒ InProgress, MaxRuntimeExceeded ⇒ Stopped ...),
so only the secondary status is stored and moved through :data:`TRANSITIONS`; the primary
status is computed by :func:`primary`. Every move is a history row, from which
``SecondaryStatusTransitions`` is built. :data:`MACHINE` names the steps for the job runner.
Processing jobs have statuses of their own (``domain.processing``).
"""

from __future__ import annotations

import enum

from sageport.domain.jobs import JobMachine
from sageport.domain.status import TransitionTable


class JobStatus(enum.StrEnum):
    """``TrainingJobStatus``: what a client polls. Which ones are final is the table's to say
    (:data:`TRANSITIONS`, of the secondary status)."""

    IN_PROGRESS = "InProgress"
    """Accepted, and not yet at an end: queued, staging, running or uploading."""
    COMPLETED = "Completed"
    """The user code exited 0 and its artifacts are stored."""
    FAILED = "Failed"
    """The job could not run or its code exited non-zero; ``FailureReason`` says why."""
    STOPPING = "Stopping"
    """A stop was asked for; the code has SIGTERM and a grace period."""
    STOPPED = "Stopped"
    """Stopped on request or at ``MaxRuntimeInSeconds``; artifacts uploaded as they were."""


class Secondary(enum.StrEnum):
    """``SecondaryStatus``: the step a training job is at."""

    STARTING = "Starting"
    """Created; waiting in the queue for GPUs, CPUs and memory."""
    DOWNLOADING = "Downloading"
    """Host folders prepared, code and channels being staged."""
    TRAINING = "Training"
    """The user code runs."""
    UPLOADING = "Uploading"
    """The code exited; model and output being packed and stored."""
    STOPPING = "Stopping"
    """StopTrainingJob received (or the runtime limit hit): SIGTERM sent, then artifacts stored;
    a stop during Uploading lets the upload finish."""
    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPED = "Stopped"
    MAX_RUNTIME_EXCEEDED = "MaxRuntimeExceeded"
    """Stopped because it ran past ``StoppingCondition.MaxRuntimeInSeconds``."""


_PRIMARY = {
    Secondary.STARTING: JobStatus.IN_PROGRESS,
    Secondary.DOWNLOADING: JobStatus.IN_PROGRESS,
    Secondary.TRAINING: JobStatus.IN_PROGRESS,
    Secondary.UPLOADING: JobStatus.IN_PROGRESS,
    Secondary.STOPPING: JobStatus.STOPPING,
    Secondary.COMPLETED: JobStatus.COMPLETED,
    Secondary.FAILED: JobStatus.FAILED,
    Secondary.STOPPED: JobStatus.STOPPED,
    Secondary.MAX_RUNTIME_EXCEEDED: JobStatus.STOPPED,
}


def primary(secondary: Secondary) -> JobStatus:
    """The ``TrainingJobStatus`` a secondary status implies."""
    return _PRIMARY[secondary]


S = Secondary

# Each edge names the code that takes it (tests/unit/scheduler/test_status_walk.py drives
# every one through the runner).
TRANSITIONS: TransitionTable[Secondary] = TransitionTable(
    {
        S.STARTING: {
            S.DOWNLOADING: "admitted: resources granted (JobRunner._starting)",
            S.STOPPING: "StopTrainingJob while queued (JobService.stop)",
            S.FAILED: "it can never fit on this machine (Admit.admit, JobRunner._fail_early)",
        },
        S.DOWNLOADING: {
            S.TRAINING: "code and channels staged, the processes started (JobRunner)",
            # MaxRuntimeInSeconds counts staging too; it ends MaxRuntimeExceeded via Stopping
            S.STOPPING: "StopTrainingJob or MaxRuntimeInSeconds while staging (JobRunner)",
            S.FAILED: "staging failed: no such data, a download or launch error (JobRunner)",
        },
        S.TRAINING: {
            # a failed host ends the job through Uploading too: its artifacts are stored
            S.UPLOADING: "every host exited, with any code (JobRunner._running)",
            S.STOPPING: "StopTrainingJob, or MaxRuntimeInSeconds reached (JobRunner._running)",
        },
        S.UPLOADING: {
            S.COMPLETED: "every host exited 0 and the artifacts are stored (JobRunner._finish)",
            S.FAILED: "a host exited non-zero, or the upload failed (JobRunner._finish)",
            # SageMaker accepts a stop while the job is InProgress, Uploading included
            S.STOPPING: "StopTrainingJob during the upload: it finishes, the job ends Stopped",
        },
        S.STOPPING: {
            # Artifacts of a stopped job are stored while it shows Stopping, so the primary
            # status never goes back to InProgress. A failed upload still ends it Stopped.
            S.STOPPED: "its processes ended (or none had started) and what they left is stored",
            S.MAX_RUNTIME_EXCEEDED: "as Stopped, but the stop came from MaxRuntimeInSeconds",
        },
        S.COMPLETED: {},
        S.FAILED: {},
        S.STOPPED: {},
        S.MAX_RUNTIME_EXCEEDED: {},
    }
)

#: the status messages real SageMaker shows in ``SecondaryStatusTransitions``.
MESSAGES: dict[Secondary, str] = {
    S.STARTING: "Preparing the instances for training",
    S.DOWNLOADING: "Downloading input data",
    S.TRAINING: "Training image download completed. Training in progress.",
    S.UPLOADING: "Uploading generated training model",
    S.STOPPING: "Stopping the training job",
    S.COMPLETED: "Training job completed",
    S.FAILED: "Training job failed",
    S.STOPPED: "Training job stopped",
    S.MAX_RUNTIME_EXCEEDED: "Training job exceeded MaxRuntimeInSeconds provided",
}

MACHINE: JobMachine[Secondary] = JobMachine(
    kind=Secondary,
    table=TRANSITIONS,
    messages=MESSAGES,
    public={s: p.value for s, p in _PRIMARY.items()},
    starting=S.STARTING,
    downloading=S.DOWNLOADING,
    running=S.TRAINING,
    uploading=S.UPLOADING,
    stopping=S.STOPPING,
    completed=S.COMPLETED,
    failed=S.FAILED,
    stopped=S.STOPPED,
    max_runtime_exceeded=S.MAX_RUNTIME_EXCEEDED,
)
