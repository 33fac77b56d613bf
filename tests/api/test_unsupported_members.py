"""Features sageport does not implement are refused at create, naming the field.

An endpoint configuration with data capture, async or serverless inference or shadow
variants, or a training job with TensorBoard output or Debugger rules, would otherwise be
accepted and quietly do less than asked. Each is a ``ValidationException`` whose message
starts with the member's path, and nothing is stored; the SDK's ``model.deploy(...)`` raises
it as a ``ClientError``.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest
from botocore.exceptions import ClientError
from server_helpers import apply_sageport_env, aws_error
from training_helpers import BUCKET, PYTORCH_IMAGE, ROLE, submit, unique

from sageport.cli.process import ServerProcess

INFERENCE_IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.1.0-cpu-py310"


@pytest.fixture(scope="module")
def model(server: ServerProcess) -> str:
    name = unique("unsupported-model")
    server.client("sagemaker").create_model(
        ModelName=name,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": INFERENCE_IMAGE, "ModelDataUrl": f"s3://{BUCKET}/m.tar.gz"},
    )
    return name


def _variant(model: str, **extra: Any) -> dict[str, Any]:
    return {
        "VariantName": "AllTraffic",
        "ModelName": model,
        "InstanceType": "ml.m5.large",
        "InitialInstanceCount": 1,
        **extra,
    }


CAPTURE = {
    "EnableCapture": False,  # refused all the same: sageport captures nothing
    "InitialSamplingPercentage": 100,
    "DestinationS3Uri": f"s3://{BUCKET}/capture",
    "CaptureOptions": [{"CaptureMode": "Input"}],
}
MLFLOW = "arn:aws:sagemaker:us-east-1:000000000000:mlflow-tracking-server/x"
ASYNC = {"OutputConfig": {"S3OutputPath": f"s3://{BUCKET}/async"}}


@pytest.mark.parametrize(
    ("extra", "variant", "field"),
    [
        pytest.param({"DataCaptureConfig": CAPTURE}, {}, "DataCaptureConfig", id="capture"),
        pytest.param({"AsyncInferenceConfig": ASYNC}, {}, "AsyncInferenceConfig", id="async"),
        pytest.param(
            {
                "ExplainerConfig": {
                    "ClarifyExplainerConfig": {"ShapConfig": {"ShapBaselineConfig": {}}}
                }
            },
            {},
            "ExplainerConfig",
            id="explainer",
        ),
        pytest.param(
            {
                "ShadowProductionVariants": [
                    {"VariantName": "Shadow", "InstanceType": "ml.m5.large"}
                ]
            },
            {},
            "ShadowProductionVariants",
            id="shadow",
        ),
        pytest.param(
            {},
            {"ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 2}},
            "ProductionVariants[0].ServerlessConfig",
            id="serverless",
        ),
        pytest.param(
            {},
            {"AcceleratorType": "ml.eia2.medium"},
            "ProductionVariants[0].AcceleratorType",
            id="elastic-inference",
        ),
        pytest.param(
            {},
            {"ManagedInstanceScaling": {"Status": "ENABLED", "MaxInstanceCount": 3}},
            "ProductionVariants[0].ManagedInstanceScaling",
            id="managed-scaling",
        ),
        pytest.param(
            {},
            {"InstanceType": None},
            "ProductionVariants[0].InstanceType",
            id="no-instance-type",
        ),
    ],
)
def test_endpoint_config_features_not_served_are_refused(
    server: ServerProcess, model: str, extra: dict[str, Any], variant: dict[str, Any], field: str
) -> None:
    sm = server.client("sagemaker")
    name = unique("unsupported")
    for key in extra.get("ShadowProductionVariants", []):
        key["ModelName"] = model
    production = {k: v for k, v in _variant(model, **variant).items() if v is not None}
    with aws_error("ValidationException") as info:
        sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[production], **extra)
    message = info.value.response["Error"]["Message"]
    assert message.startswith(field), message
    with aws_error("ValidationException") as missing:
        sm.describe_endpoint_config(EndpointConfigName=name)
    assert "Could not find" in missing.value.response["Error"]["Message"]


def test_endpoint_config_members_that_change_nothing_are_accepted(
    server: ServerProcess, model: str
) -> None:
    sm = server.client("sagemaker")
    name = unique("accepted")
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            _variant(
                model,
                RoutingConfig={"RoutingStrategy": "RANDOM"},
                ManagedInstanceScaling={"Status": "DISABLED"},
                VolumeSizeInGB=20,
            )
        ],
        KmsKeyId="alias/k",
    )
    config = sm.describe_endpoint_config(EndpointConfigName=name)
    assert config["ProductionVariants"][0]["RoutingConfig"] == {"RoutingStrategy": "RANDOM"}


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        pytest.param(
            {"TensorBoardOutputConfig": {"S3OutputPath": f"s3://{BUCKET}/tb"}},
            "TensorBoardOutputConfig",
            id="tensorboard",
        ),
        pytest.param(
            {
                "DebugRuleConfigurations": [
                    {"RuleConfigurationName": "LossNotDecreasing", "RuleEvaluatorImage": "img:1"}
                ]
            },
            "DebugRuleConfigurations",
            id="debugger-rules",
        ),
        pytest.param(
            {"MlflowConfig": {"MlflowResourceArn": MLFLOW}},
            "MlflowConfig",
            id="mlflow",
        ),
        pytest.param(
            {"RemoteDebugConfig": {"EnableRemoteDebug": True}},
            "RemoteDebugConfig",
            id="remote-debug",
        ),
        pytest.param(
            {
                "OutputDataConfig": {
                    "S3OutputPath": f"s3://{BUCKET}/output",
                    "CompressionType": "NONE",
                }
            },
            "OutputDataConfig.CompressionType",
            id="uncompressed-model",
        ),
        pytest.param(
            {
                "InputDataConfig": [
                    {
                        "ChannelName": "train",
                        "DataSource": {
                            "S3DataSource": {
                                "S3DataType": "AugmentedManifestFile",
                                "S3Uri": f"s3://{BUCKET}/manifest",
                                "AttributeNames": ["source-ref"],
                            }
                        },
                    }
                ]
            },
            "InputDataConfig[0].DataSource.S3DataSource.S3DataType",
            id="augmented-manifest",
        ),
    ],
)
def test_training_features_not_done_are_refused(
    server: ServerProcess, overrides: dict[str, Any], field: str
) -> None:
    name = unique("unsupported-job")
    with aws_error("ValidationException") as info:
        submit(server, name, "print('never runs')\n", **overrides)
    message = info.value.response["Error"]["Message"]
    assert message.startswith(field), message
    with aws_error("ValidationException"):
        server.client("sagemaker").describe_training_job(TrainingJobName=name)


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("sagemaker") is None, reason="needs the SageMaker SDK 2.x"
)
def test_sdk_deploy_with_an_unsupported_feature_raises_client_error(
    server: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    apply_sageport_env(server, monkeypatch)
    import sagemaker
    from sagemaker.async_inference import AsyncInferenceConfig
    from sagemaker.model import Model
    from sagemaker.model_monitor import DataCaptureConfig
    from sagemaker.serverless import ServerlessInferenceConfig

    session = sagemaker.Session()
    cases = [
        ({"serverless_inference_config": ServerlessInferenceConfig()}, "ServerlessConfig"),
        (
            {
                "async_inference_config": AsyncInferenceConfig(
                    output_path=f"s3://{BUCKET}/async-out"
                ),
                "instance_type": "ml.m5.large",
                "initial_instance_count": 1,
            },
            "AsyncInferenceConfig",
        ),
        (
            {
                "data_capture_config": DataCaptureConfig(
                    enable_capture=True, destination_s3_uri=f"s3://{BUCKET}/capture"
                ),
                "instance_type": "ml.m5.large",
                "initial_instance_count": 1,
            },
            "DataCaptureConfig",
        ),
    ]
    for kwargs, field in cases:
        model = Model(
            image_uri=PYTORCH_IMAGE,
            model_data=f"s3://{BUCKET}/model.tar.gz",
            role=ROLE,
            sagemaker_session=session,
            name=unique("sdk-unsupported"),
        )
        with pytest.raises(ClientError) as info:
            model.deploy(endpoint_name=unique("sdk-unsupported-ep"), wait=False, **kwargs)
        error = info.value.response["Error"]
        assert error["Code"] == "ValidationException"
        assert field in error["Message"], error["Message"]
        assert "not supported by sageport" in error["Message"]
