"""Stop and Delete on jobs in every status answer as SageMaker does, with boto3.

A stop is accepted while a job is InProgress, at any step — Uploading too, where the upload
finishes and the job ends Stopped — and refused with SageMaker's ValidationException wording
otherwise; a delete is refused until the job has ended. No answer carries the status table's
own wording ("cannot move from ...").
"""

from __future__ import annotations

import processing_helpers as processing
import pytest
from server_helpers import aws_error
from training_helpers import submit, unique, wait, wait_for

from sageport.cli.process import ServerProcess

SLEEPS = "import time\ntime.sleep(60)\n"

#: a model large (and random) enough that packing it takes a few seconds
BIG_MODEL = """\
import os
with open(os.path.join(os.environ["SM_MODEL_DIR"], "weights.bin"), "wb") as f:
    for _ in range(48):
        f.write(os.urandom(1 << 20))
"""


def test_stop_on_a_completed_training_job_is_refused_in_sagemakers_words(
    server: ServerProcess,
) -> None:
    sm = server.client("sagemaker")
    name = unique("pre-done")
    submit(server, name, "print('quick')\n")
    assert wait(server, name)["TrainingJobStatus"] == "Completed"
    with aws_error("ValidationException") as exc:
        sm.stop_training_job(TrainingJobName=name)
    assert exc.value.response["Error"]["Message"] == (
        "The request was rejected because the training job is in status Completed."
    )


def test_stop_on_a_completed_processing_job_is_refused_in_sagemakers_words(
    server: ServerProcess,
) -> None:
    sm = server.client("sagemaker")
    name = unique("pre-pdone")
    processing.submit(server, name, "print('quick')\n")
    assert processing.wait(server, name)["ProcessingJobStatus"] == "Completed"
    with aws_error("ValidationException") as exc:
        sm.stop_processing_job(ProcessingJobName=name)
    assert exc.value.response["Error"]["Message"] == (
        "The request was rejected because the processing job is in status Completed."
    )


def test_delete_while_in_progress_is_refused_then_allowed_once_stopped(
    server: ServerProcess,
) -> None:
    sm = server.client("sagemaker")
    name = unique("pre-del")
    submit(server, name, SLEEPS)
    with aws_error("ValidationException") as exc:
        sm.delete_training_job(TrainingJobName=name)
    message = exc.value.response["Error"]["Message"]
    assert "InProgress" in message
    assert "cannot move" not in message
    sm.stop_training_job(TrainingJobName=name)
    with aws_error("ValidationException") as exc:  # a second stop: Stopping, or Stopped
        sm.stop_training_job(TrainingJobName=name)
    assert "cannot move" not in exc.value.response["Error"]["Message"]
    assert wait(server, name, timeout=30)["TrainingJobStatus"] == "Stopped"
    sm.delete_training_job(TrainingJobName=name)
    with aws_error("ValidationException"):
        sm.describe_training_job(TrainingJobName=name)


def test_delete_of_a_running_processing_job_is_refused(server: ServerProcess) -> None:
    sm = server.client("sagemaker")
    name = unique("pre-pdel")
    processing.submit(server, name, SLEEPS)
    with aws_error("ValidationException") as exc:
        sm.delete_processing_job(ProcessingJobName=name)
    assert "InProgress" in exc.value.response["Error"]["Message"]
    sm.stop_processing_job(ProcessingJobName=name)
    assert processing.wait(server, name, timeout=30)["ProcessingJobStatus"] == "Stopped"
    sm.delete_processing_job(ProcessingJobName=name)


@pytest.mark.slow
def test_stop_during_uploading_is_accepted_and_the_upload_finishes(server: ServerProcess) -> None:
    """StopTrainingJob is accepted while the job is InProgress, Uploading included: the model
    is still stored and the job ends Stopped (it once leaked "cannot move from Uploading")."""
    sm = server.client("sagemaker")
    name = unique("pre-upl")
    submit(server, name, BIG_MODEL)
    wait_for(server, name, "Uploading", timeout=60)
    sm.stop_training_job(TrainingJobName=name)
    assert sm.describe_training_job(TrainingJobName=name)["TrainingJobStatus"] in (
        "Stopping",
        "Stopped",
    )
    job = wait(server, name, timeout=60)
    assert (job["TrainingJobStatus"], job["SecondaryStatus"]) == ("Stopped", "Stopped")
    steps = [t["Status"] for t in job["SecondaryStatusTransitions"]]
    assert steps[-3:] == ["Uploading", "Stopping", "Stopped"]
    assert job["ModelArtifacts"]["S3ModelArtifacts"].endswith("model.tar.gz")
    assert "FailureReason" not in job
