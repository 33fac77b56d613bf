"""The SageMaker Python SDK 2.x, unchanged, trains a PyTorch model on the server.

``PyTorch(...).fit(..., logs=True)`` as tutorials write it. Only the session is pointed at
the server: the SageMaker client explicitly, S3 and Logs through ``AWS_ENDPOINT_URL`` (the
SDK builds those clients from the boto session), and the SDK config the server writes keeps
telemetry off. A default bucket and a role ARN keep the SDK away from STS and IAM.
The SDK sleeps 5 s before its first DescribeTrainingJob and reads logs every 10 s: slow.
"""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import pytest
from training_helpers import ROLE, TORCH_SCRIPT, model_files, npy, put_objects, unique

from sageport.cli.process import ServerProcess

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("torch") is None or importlib.util.find_spec("sagemaker") is None,
        reason="needs torch and the SageMaker SDK 2.x",
    ),
]


@pytest.fixture
def sdk_env(server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> ServerProcess:
    """The environment ``eval "$(sageport env)"`` would set, for this test only."""
    access, secret = server.keys
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", access)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_DEFAULT_REGION", server.region)
    monkeypatch.setenv("AWS_REGION", server.region)
    monkeypatch.setenv(
        "SAGEMAKER_USER_CONFIG_OVERRIDE", str(server.data_dir / "sagemaker-config.yaml")
    )
    monkeypatch.setenv("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"):
        monkeypatch.delenv(name, raising=False)
    return server


def test_sdk_pytorch_estimator_fits_with_logs(
    sdk_env: ServerProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import boto3
    import numpy as np
    import sagemaker
    import torch
    from sagemaker.pytorch import PyTorch
    from torch import nn

    server = sdk_env
    assert server.data_dir.joinpath("sagemaker-config.yaml").is_file()
    rng = np.random.default_rng(1)
    x = rng.normal(size=(32, 4)).astype("float32")
    prefix = unique("sdk-data")
    data = put_objects(
        server, prefix, {"x.npy": npy(x), "y.npy": npy(x.sum(axis=1, keepdims=True))}
    )
    source = tmp_path / "src"
    source.mkdir()
    (source / "train.py").write_text(__import__("textwrap").dedent(TORCH_SCRIPT))

    boto_session = boto3.Session(region_name=server.region)
    session = sagemaker.Session(
        boto_session=boto_session,
        sagemaker_client=server.client("sagemaker"),
        default_bucket="sdk-tests",
    )
    estimator = PyTorch(
        entry_point="train.py",
        source_dir=str(source),
        framework_version="2.1",
        py_version="py310",
        instance_type="ml.m5.xlarge",
        instance_count=1,
        role=ROLE,
        hyperparameters={"epochs": 3, "lr": 0.05},
        sagemaker_session=session,
        base_job_name="sdk-torch",
    )
    estimator.fit({"training": data}, logs=True)

    out = capsys.readouterr().out
    assert "epoch=2 loss=" in out  # the job's own log lines reached the SDK's log loop
    assert "Completed - Training job completed" in out
    job = estimator.latest_training_job.describe()
    assert job["TrainingJobStatus"] == "Completed"
    assert job["HyperParameters"]["sagemaker_program"] == '"train.py"'
    assert estimator.model_data == job["ModelArtifacts"]["S3ModelArtifacts"]

    state = torch.load(io.BytesIO(model_files(server, job)["model.pth"]), weights_only=True)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    model.load_state_dict(state)
    assert model(torch.zeros(2, 4)).shape == (2, 1)
