"""Endpoint configuration operations through boto3 against a live server."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from sageport.cli.process import ServerProcess


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _variants(model: str) -> list[dict[str, Any]]:
    return [
        {
            "VariantName": "AllTraffic",
            "ModelName": model,
            "InitialInstanceCount": 1,
            "InstanceType": "ml.g5.xlarge",
            "InitialVariantWeight": 1.0,
        }
    ]


@pytest.fixture
def model(server: ServerProcess) -> str:
    name = _name("ecmodel")
    server.client("sagemaker").create_model(
        ModelName=name,
        PrimaryContainer={"Image": "img"},
        ExecutionRoleArn="arn:aws:iam::000000000000:role/SageMakerRole",
    )
    return name


def test_create_describe_list_delete(server: ServerProcess, model: str) -> None:
    sm = server.client("sagemaker")
    name = _name("Config")
    arn = sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=_variants(model))[
        "EndpointConfigArn"
    ]
    assert arn.endswith(f":endpoint-config/{name.lower()}")
    described = sm.describe_endpoint_config(EndpointConfigName=name)
    assert described["EndpointConfigName"] == name
    assert described["EndpointConfigArn"] == arn
    assert described["ProductionVariants"][0]["InstanceType"] == "ml.g5.xlarge"
    assert described["ProductionVariants"][0]["InitialVariantWeight"] == 1.0
    assert described["CreationTime"].tzinfo is not None
    listed = sm.list_endpoint_configs(NameContains=name)["EndpointConfigs"]
    assert [c["EndpointConfigName"] for c in listed] == [name]
    sm.delete_endpoint_config(EndpointConfigName=name)
    with pytest.raises(ClientError) as info:
        sm.describe_endpoint_config(EndpointConfigName=name)
    assert info.value.response["Error"]["Code"] == "ValidationException"
    assert info.value.response["Error"]["Message"] == (
        f'Could not find endpoint configuration "{arn}".'
    )


def test_duplicate_and_unknown_model(server: ServerProcess, model: str) -> None:
    sm = server.client("sagemaker")
    name = _name("dup")
    arn = sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=_variants(model))[
        "EndpointConfigArn"
    ]
    with pytest.raises(ClientError) as dup:
        sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=_variants(model))
    assert dup.value.response["Error"]["Message"] == (
        f'Cannot create already existing endpoint configuration "{arn}".'
    )
    with pytest.raises(ClientError) as ghost:
        sm.create_endpoint_config(
            EndpointConfigName=_name("ghost"), ProductionVariants=_variants("no-such-model")
        )
    assert ghost.value.response["Error"]["Code"] == "ValidationException"
    assert ghost.value.response["Error"]["Message"].startswith('Could not find model "arn:aws:')
