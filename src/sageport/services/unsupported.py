"""Request members sageport cannot honour: refused at create, never accepted and dropped.

A member the API model allows but sageport does not implement is a promise nobody would
keep: an endpoint configuration with ``DataCaptureConfig`` would serve without capturing
anything, a training job with ``TensorBoardOutputConfig`` would end without its TensorBoard
files in S3. Each such member is listed here once, with what it would have done, and a
request that uses it gets a ``ValidationException`` naming the field (the SDK raises it as
a ``ClientError`` from ``deploy`` or ``fit``).

Members whose absence changes nothing a job or an endpoint produces are accepted and echoed
by ``Describe*``: KMS keys, VPC settings, warm-pool and timeout hints, ``DebugHookConfig``
and ``ProfilerConfig`` (the SDK sends both by default), ``RetryStrategy``, ``RoutingConfig``,
``CoreDumpConfig``, ``MetricsConfig`` (docs/endpoints.md and docs/training.md list them).
``EnableNetworkIsolation`` is honoured for a training or processing job (``services.isolation``)
and refused for a model (:data:`MODEL`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sageport.errors import ValidationException


@dataclass(frozen=True)
class Unsupported:
    """One member sageport refuses: where it is, when it counts as used, what it would do."""

    member: str
    """The member's name in its structure (``DataCaptureConfig``, ``ServerlessConfig``)."""
    what: str
    """What SageMaker would do with it, said in the refusal."""
    used: Callable[[Any], bool] = lambda value: value is not None
    """Whether the given value asks for the feature (``ManagedInstanceScaling`` with
    ``Status: DISABLED`` does not)."""


ENDPOINT_CONFIG: tuple[Unsupported, ...] = (
    Unsupported(
        "DataCaptureConfig",
        "data capture (requests and responses written to S3 for Model Monitor)",
    ),
    Unsupported(
        "AsyncInferenceConfig",
        "asynchronous inference (InvokeEndpointAsync, results written to S3)",
    ),
    Unsupported("ExplainerConfig", "SageMaker Clarify online explainability"),
    Unsupported(
        "ShadowProductionVariants",
        "shadow variants (a copy of the traffic sent to a second model)",
    ),
)

PRODUCTION_VARIANT: tuple[Unsupported, ...] = (
    Unsupported(
        "ServerlessConfig",
        "serverless inference; give InstanceType and InitialInstanceCount instead",
    ),
    Unsupported("AcceleratorType", "Elastic Inference accelerators (retired by AWS)"),
    Unsupported("InstancePools", "instance pools of several instance types"),
    Unsupported(
        "ManagedInstanceScaling",
        "managed instance scaling (instances added and removed with the load)",
        lambda value: isinstance(value, Mapping) and value.get("Status") == "ENABLED",
    ),
)

TRAINING_JOB: tuple[Unsupported, ...] = (
    Unsupported(
        "TensorBoardOutputConfig",
        "TensorBoard output uploaded to S3 (write to the model or output/data folder, or "
        "CheckpointConfig, which sageport uploads)",
    ),
    Unsupported(
        "DebugRuleConfigurations",
        "SageMaker Debugger rules (evaluated by processing jobs, with their actions)",
    ),
    Unsupported(
        "ProfilerRuleConfigurations",
        "SageMaker Debugger profiler rules and their reports",
    ),
    Unsupported("ServerlessJobConfig", "serverless foundation-model customization jobs"),
    Unsupported("MlflowConfig", "logging the job to a SageMaker MLflow tracking server"),
    Unsupported("ModelPackageConfig", "registering the trained model as a model package"),
    Unsupported(
        "RemoteDebugConfig",
        "remote debugging (an SSM session into the container)",
        lambda value: isinstance(value, Mapping) and value.get("EnableRemoteDebug") is True,
    ),
)


MODEL: tuple[Unsupported, ...] = (
    Unsupported(
        "EnableNetworkIsolation",
        "a model server without network access (this server reaches each endpoint "
        "instance's model server over loopback TCP, which a network namespace of its own "
        "would cut off; the SDK sends false unless enable_network_isolation=True is given)",
        lambda value: value is True,
    ),
)


def _refuse(where: str, params: Mapping[str, Any], table: Iterable[Unsupported]) -> None:
    for item in table:
        value = params.get(item.member)
        if value is not None and item.used(value):
            raise ValidationException(
                f"{where}{item.member} is not supported by sageport: {item.what} would not "
                "happen. Leave it out of the request."
            )


def check_endpoint_config(params: Mapping[str, Any]) -> None:
    """CreateEndpointConfig: refuse what would be stored and never served."""
    _refuse("", params, ENDPOINT_CONFIG)
    for i, variant in enumerate(params.get("ProductionVariants") or []):
        _refuse(f"ProductionVariants[{i}].", variant, PRODUCTION_VARIANT)
        if not variant.get("InstanceType"):
            raise ValidationException(
                f"ProductionVariants[{i}].InstanceType must be given: sageport runs each "
                "variant on instances (InstanceType and InitialInstanceCount)."
            )


def check_training_job(params: Mapping[str, Any]) -> None:
    """CreateTrainingJob: refuse what would be accepted and never done."""
    _refuse("", params, TRAINING_JOB)
    output = params.get("OutputDataConfig") or {}
    if output.get("CompressionType") == "NONE":
        raise ValidationException(
            "OutputDataConfig.CompressionType NONE is not supported by sageport: the model is "
            "always stored as model.tar.gz. Leave it out, or give GZIP."
        )
    for i, channel in enumerate(params.get("InputDataConfig") or []):
        source = (channel.get("DataSource") or {}).get("S3DataSource") or {}
        if source.get("S3DataType") == "AugmentedManifestFile":
            raise ValidationException(
                f"InputDataConfig[{i}].DataSource.S3DataSource.S3DataType AugmentedManifestFile "
                "is not supported by sageport; use S3Prefix or ManifestFile."
            )


def check_model(params: Mapping[str, Any]) -> None:
    """CreateModel: refuse what the endpoints would not do."""
    _refuse("", params, MODEL)
