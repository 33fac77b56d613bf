"""AddTags / ListTags / DeleteTags through boto3 against a live server."""

from __future__ import annotations

import uuid

import pytest
from botocore.exceptions import ClientError

from sageport.cli.process import ServerProcess


@pytest.fixture
def model_arn(server: ServerProcess) -> str:
    created = server.client("sagemaker").create_model(
        ModelName=f"tagged-{uuid.uuid4().hex[:10]}",
        PrimaryContainer={"Image": "img"},
        ExecutionRoleArn="arn:aws:iam::000000000000:role/SageMakerRole",
        Tags=[{"Key": "created", "Value": "yes"}],
    )
    return str(created["ModelArn"])


def test_add_list_delete(server: ServerProcess, model_arn: str) -> None:
    sm = server.client("sagemaker")
    added = sm.add_tags(ResourceArn=model_arn, Tags=[{"Key": "team", "Value": "ml"}])
    assert added["Tags"] == [{"Key": "created", "Value": "yes"}, {"Key": "team", "Value": "ml"}]
    sm.delete_tags(ResourceArn=model_arn, TagKeys=["created"])
    assert sm.list_tags(ResourceArn=model_arn)["Tags"] == [{"Key": "team", "Value": "ml"}]


def test_list_tags_paginates(server: ServerProcess, model_arn: str) -> None:
    sm = server.client("sagemaker")
    sm.add_tags(ResourceArn=model_arn, Tags=[{"Key": f"k{i:02}", "Value": "v"} for i in range(49)])
    first = sm.list_tags(ResourceArn=model_arn, MaxResults=50)
    assert len(first["Tags"]) == 50
    assert "NextToken" not in first
    with pytest.raises(ClientError) as info:
        sm.add_tags(ResourceArn=model_arn, Tags=[{"Key": "one-too-many", "Value": "v"}])
    assert info.value.response["Error"]["Code"] == "ValidationException"


def test_unknown_arn(server: ServerProcess) -> None:
    sm = server.client("sagemaker")
    with pytest.raises(ClientError) as info:
        sm.list_tags(ResourceArn=f"arn:aws:sagemaker:{server.region}:000000000000:model/ghost")
    assert info.value.response["Error"]["Code"] == "ValidationException"


def test_deleting_a_model_deletes_its_tags(server: ServerProcess) -> None:
    sm = server.client("sagemaker")
    name = f"retag-{uuid.uuid4().hex[:10]}"
    kwargs = {
        "ModelName": name,
        "PrimaryContainer": {"Image": "img"},
        "ExecutionRoleArn": "arn:aws:iam::000000000000:role/SageMakerRole",
    }
    arn = sm.create_model(**kwargs, Tags=[{"Key": "old", "Value": "1"}])["ModelArn"]
    sm.delete_model(ModelName=name)
    sm.create_model(**kwargs)
    assert sm.list_tags(ResourceArn=arn)["Tags"] == []
