"""CreateModel / DescribeModel / ListModels / DeleteModel through boto3 against a live server."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from sageport.cli.process import ServerProcess

ROLE = "arn:aws:iam::000000000000:role/SageMakerRole"


def _name(prefix: str = "model") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _create(sm: Any, name: str, **extra: Any) -> dict[str, Any]:
    return dict(
        sm.create_model(
            ModelName=name,
            PrimaryContainer={
                "Image": "123.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.1-cpu",
                "ModelDataUrl": "s3://bucket/model.tar.gz",
                "Environment": {"SAGEMAKER_PROGRAM": "inference.py"},
            },
            ExecutionRoleArn=ROLE,
            **extra,
        )
    )


def test_create_describe_delete(server: ServerProcess) -> None:
    sm = server.client("sagemaker")
    name = _name("MyModel")
    arn = _create(sm, name)["ModelArn"]
    assert arn == f"arn:aws:sagemaker:{server.region}:000000000000:model/{name.lower()}"
    described = sm.describe_model(ModelName=name)
    assert described["ModelName"] == name
    assert described["ModelArn"] == arn
    assert described["ExecutionRoleArn"] == ROLE
    assert described["PrimaryContainer"]["Environment"] == {"SAGEMAKER_PROGRAM": "inference.py"}
    assert isinstance(described["CreationTime"], datetime)
    assert described["CreationTime"].tzinfo is not None
    sm.delete_model(ModelName=name)
    with pytest.raises(ClientError) as info:
        sm.describe_model(ModelName=name)
    error = info.value.response["Error"]
    assert error["Code"] == "ValidationException"
    # the SageMaker SDK's _deployment_entity_exists matches this text
    assert error["Message"] == f'Could not find model "{arn}".'


def test_duplicate_and_missing_errors(server: ServerProcess) -> None:
    sm = server.client("sagemaker")
    name = _name()
    arn = _create(sm, name)["ModelArn"]
    with pytest.raises(ClientError) as info:
        _create(sm, name)
    assert info.value.response["Error"]["Code"] == "ValidationException"
    assert info.value.response["Error"]["Message"] == (
        f'Cannot create already existing model "{arn}".'
    )
    with pytest.raises(ClientError) as missing:
        sm.delete_model(ModelName=_name("ghost"))
    assert missing.value.response["Error"]["Code"] == "ValidationException"
    assert "Could not find model" in missing.value.response["Error"]["Message"]


def test_list_models_filters_sorts_and_paginates(server: ServerProcess) -> None:
    sm = server.client("sagemaker")
    marker = uuid.uuid4().hex[:8]
    names = [f"lm-{marker}-{i}" for i in range(5)]
    for name in names:
        _create(sm, name)
    newest_first = sm.list_models(NameContains=marker)["Models"]
    assert [m["ModelName"] for m in newest_first] == names[::-1]
    by_name = sm.list_models(NameContains=marker, SortBy="Name", SortOrder="Ascending")
    assert [m["ModelName"] for m in by_name["Models"]] == names
    paged = [
        m["ModelName"]
        for page in sm.get_paginator("list_models").paginate(
            NameContains=marker,
            SortBy="Name",
            SortOrder="Ascending",
            PaginationConfig={"PageSize": 2},
        )
        for m in page["Models"]
    ]
    assert paged == names
    with pytest.raises(ClientError) as info:
        sm.list_models(NextToken="not-a-token")
    assert info.value.response["Error"]["Code"] == "ValidationException"


def test_models_and_tags_survive_restart(fresh_server: ServerProcess) -> None:
    sm = fresh_server.client("sagemaker")
    arn = _create(sm, "kept", Tags=[{"Key": "team", "Value": "ml"}])["ModelArn"]
    sm.create_endpoint_config(
        EndpointConfigName="kept-config",
        ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": "kept", "InitialInstanceCount": 1,
             "InstanceType": "ml.m5.large"}
        ],
    )  # fmt: skip
    fresh_server.restart()
    sm = fresh_server.client("sagemaker")
    assert sm.describe_model(ModelName="kept")["ModelArn"] == arn
    assert (
        sm.describe_endpoint_config(EndpointConfigName="kept-config")["ProductionVariants"][0][
            "ModelName"
        ]
        == "kept"
    )
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "team", "Value": "ml"}]


def _endpoint_config(sm: Any, name: str, model: str) -> None:
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": model, "InitialInstanceCount": 1,
             "InstanceType": "ml.m5.large"}
        ],
    )  # fmt: skip


def _cut_after(times: list[datetime]) -> datetime:
    """The first whole second after all of ``times`` (timestamps travel in whole seconds)."""
    latest = max(times)
    return latest.replace(microsecond=0) + timedelta(seconds=1)


def test_list_models_and_endpoint_configs_by_creation_time(server: ServerProcess) -> None:
    sm = server.client("sagemaker")
    marker = uuid.uuid4().hex[:8]
    batches: list[list[str]] = [[f"ct-{marker}-{b}{i}" for i in range(2)] for b in "abc"]
    created: list[list[datetime]] = []
    for n, batch in enumerate(batches):
        if n:
            time.sleep(1.1)  # so the batches fall into different seconds
        times = []
        for name in batch:
            _create(sm, name)
            _endpoint_config(sm, name, name)
            times.append(sm.describe_model(ModelName=name)["CreationTime"])
            times.append(sm.describe_endpoint_config(EndpointConfigName=name)["CreationTime"])
        created.append(times)
    cut1, cut2 = _cut_after(created[0]), _cut_after(created[1])
    assert cut1 <= min(created[1])
    assert cut2 <= min(created[2])
    a, b, c = batches

    def models(**kwargs: Any) -> list[str]:
        pages = sm.get_paginator("list_models").paginate(
            NameContains=marker, PaginationConfig={"PageSize": 1}, **kwargs
        )
        return [m["ModelName"] for page in pages for m in page["Models"]]

    def configs(**kwargs: Any) -> list[str]:
        pages = sm.get_paginator("list_endpoint_configs").paginate(
            NameContains=marker, PaginationConfig={"PageSize": 1}, **kwargs
        )
        return [m["EndpointConfigName"] for page in pages for m in page["EndpointConfigs"]]

    for listing in (models, configs):
        assert listing(CreationTimeBefore=cut1, SortBy="Name", SortOrder="Ascending") == a
        assert listing(CreationTimeAfter=cut1, CreationTimeBefore=cut2, SortBy="Name") == b[::-1]
        assert listing(CreationTimeAfter=cut2, SortBy="CreationTime", SortOrder="Ascending") == c
        newest_first = listing(CreationTimeAfter=cut1)
        assert newest_first == (b + c)[::-1]
        assert listing(CreationTimeAfter=cut2 + timedelta(days=1)) == []
    one = sm.list_endpoint_configs(NameContains=marker, MaxResults=2, SortBy="Name")
    assert [e["EndpointConfigName"] for e in one["EndpointConfigs"]] == (c[::-1])
    assert one["NextToken"]
    rest = sm.list_endpoint_configs(
        NameContains=marker, MaxResults=2, SortBy="Name", NextToken=one["NextToken"]
    )
    assert [e["EndpointConfigName"] for e in rest["EndpointConfigs"]] == b[::-1]
