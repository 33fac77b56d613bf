"""DescribeTrainingJob answers every member real SageMaker does, so the SDK can attach to a job.

``Estimator.attach(name)`` (and ``HyperparameterTuner.best_estimator()``, which calls it)
rebuilds an estimator from DescribeTrainingJob, reading ``OutputDataConfig.KmsKeyId``,
``ResourceConfig.VolumeSizeInGB``, ``StoppingCondition.MaxRuntimeInSeconds`` and more by key:
a request that left them out still gets AWS's defaults back.
"""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

import botocore.session
import pytest
from server_helpers import apply_sageport_env
from training_helpers import ROLE, TORCH_SCRIPT, npy, put_objects, submit, unique, wait_completed

from sageport.cli.process import ServerProcess

SHAPE = (
    botocore.session.get_session()
    .get_service_model("sagemaker")
    .shape_for("DescribeTrainingJobResponse")
)


def test_describe_fills_in_what_aws_defaults(server: ServerProcess) -> None:
    name = unique("defaults")
    submit(
        server,
        name,
        "print('done')\n",
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1},
        StoppingCondition={},
    )
    job = wait_completed(server, name)
    assert job["OutputDataConfig"]["KmsKeyId"] == ""  # what AWS answers when none was given
    assert job["OutputDataConfig"]["CompressionType"] == "GZIP"
    assert job["ResourceConfig"]["VolumeSizeInGB"] == 30
    assert job["StoppingCondition"]["MaxRuntimeInSeconds"] == 86400
    assert job["AlgorithmSpecification"]["TrainingInputMode"] == "File"
    for flag in ("EnableNetworkIsolation", "EnableManagedSpotTraining"):
        assert job[flag] is False
    assert "VpcConfig" not in job  # only when the request gave one
    body = {k for k in job if k != "ResponseMetadata"}
    assert set(SHAPE.required_members) <= body
    assert body <= set(SHAPE.members), body - set(SHAPE.members)


def test_describe_echoes_what_the_request_gave(server: ServerProcess) -> None:
    name = unique("echo")
    vpc = {"SecurityGroupIds": ["sg-0123456789abcdef0"], "Subnets": ["subnet-0123456789abcdef0"]}
    submit(
        server,
        name,
        "print('done')\n",
        OutputDataConfig={"S3OutputPath": "s3://training-tests/output", "KmsKeyId": "alias/k"},
        VpcConfig=vpc,
        DebugHookConfig={"S3OutputPath": "s3://training-tests/debug"},
    )
    job = server.client("sagemaker").describe_training_job(TrainingJobName=name)
    assert job["OutputDataConfig"]["KmsKeyId"] == "alias/k"
    assert job["ResourceConfig"]["VolumeSizeInGB"] == 10  # as given
    assert job["VpcConfig"] == vpc
    assert job["DebugHookConfig"] == {"S3OutputPath": "s3://training-tests/debug"}
    assert job["HyperParameters"]["sagemaker_program"] == '"train.py"'
    wait_completed(server, name)


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("torch") is None or importlib.util.find_spec("sagemaker") is None,
    reason="needs torch and the SageMaker SDK 2.x",
)
def test_sdk_attach_to_a_running_job_and_wait(
    server: ServerProcess, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``PyTorch(...).fit(wait=False)``, then ``PyTorch.attach(name)`` elsewhere: the
    estimator it builds has the job's entry point and instance type, and attach waits."""
    apply_sageport_env(server, monkeypatch)
    import numpy as np
    import sagemaker
    from sagemaker.pytorch import PyTorch

    rng = np.random.default_rng(2)
    x = rng.normal(size=(16, 4)).astype("float32")
    data = put_objects(
        server, unique("attach-data"), {"x.npy": npy(x), "y.npy": npy(x.sum(axis=1, keepdims=True))}
    )
    source = tmp_path / "src"
    source.mkdir()
    (source / "train.py").write_text(textwrap.dedent(TORCH_SCRIPT))
    estimator = PyTorch(
        entry_point="train.py",
        source_dir=str(source),
        framework_version="2.1",
        py_version="py310",
        instance_type="ml.m5.xlarge",
        instance_count=1,
        role=ROLE,
        hyperparameters={"epochs": 2},
        sagemaker_session=sagemaker.Session(),
        base_job_name="sdk-attach",
    )
    estimator.fit({"training": data}, wait=False)
    name = estimator.latest_training_job.name

    attached = PyTorch.attach(name, sagemaker_session=sagemaker.Session())  # waits for it
    assert attached.latest_training_job.name == name
    assert attached.entry_point == "train.py"
    assert attached.instance_type == "ml.m5.xlarge"
    assert attached.framework_version == "2.1"
    assert attached.hyperparameters()["epochs"] == "2"
    job = attached.latest_training_job.describe()
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert attached.model_data == job["ModelArtifacts"]["S3ModelArtifacts"]
