"""Training-job statuses: the secondary status is stored, the primary one derived from it.

SageMaker reports two statuses. ``SecondaryStatus`` is the finer one and determines
``TrainingJobStatus`` completely (Downloading ⇒ InProgress, MaxRuntimeExceeded ⇒ Stopped ...),
so only the secondary status is stored and moved through :data:`TRANSITIONS`; the primary
status is computed by :func:`primary`. Every move is a history row, from which
``SecondaryStatusTransitions`` is built.
"""

from __future__ import annotations

import enum

from sageport.domain.status import TransitionTable


class JobStatus(enum.StrEnum):
    """``TrainingJobStatus`` (and ``ProcessingJobStatus``): what a client polls."""

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

    def is_terminal(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.STOPPED)


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
    """StopTrainingJob received (or the runtime limit hit); SIGTERM sent, then artifacts stored."""
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


def secondaries_of(status: JobStatus) -> tuple[Secondary, ...]:
    """The secondary statuses that show as ``status`` (for ``StatusEquals`` filters)."""
    return tuple(s for s, p in _PRIMARY.items() if p is status)


S = Secondary

TRANSITIONS: TransitionTable[Secondary] = TransitionTable(
    {
        S.STARTING: {
            S.DOWNLOADING: "resources allocated; the host folders are being prepared",
            S.STOPPING: "stopped while still queued",
            S.FAILED: "could not be started (unmappable image, no such data, launch error)",
        },
        S.DOWNLOADING: {
            S.TRAINING: "code and channels staged; the process was started",
            S.STOPPING: "stopped while staging",
            S.FAILED: "staging failed: a channel's S3 prefix was empty, a download failed",
            S.MAX_RUNTIME_EXCEEDED: "staging itself ran past MaxRuntimeInSeconds",
        },
        S.TRAINING: {
            S.UPLOADING: "the process exited (any code); artifacts are stored even on failure",
            S.STOPPING: "StopTrainingJob, or MaxRuntimeInSeconds reached",
            S.FAILED: "the process vanished without an exit status",
        },
        S.UPLOADING: {
            S.COMPLETED: "exit 0 and artifacts stored",
            S.FAILED: "non-zero exit, or the upload itself failed",
        },
        S.STOPPING: {
            # Artifacts of a stopped job are stored while it shows Stopping, so the primary
            # status never goes back to InProgress.
            S.STOPPED: "the process ended after SIGTERM/SIGKILL and what it left is stored",
            S.MAX_RUNTIME_EXCEEDED: "as Stopped, but the stop came from MaxRuntimeInSeconds",
            S.FAILED: "the stop could not be carried out",
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
