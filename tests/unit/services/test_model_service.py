from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from sageport.clock import FakeClock
from sageport.errors import ValidationException
from sageport.services.models import ModelService
from sageport.services.tags import TagService
from sageport.settings import Settings
from sageport.store.database import Database

ARN = "arn:aws:sagemaker:eu-west-1:123456789012:model/{}"


def _request(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "ModelName": name,
        "PrimaryContainer": {"Image": "img", "ModelDataUrl": "s3://b/model.tar.gz"},
        "ExecutionRoleArn": "arn:aws:iam::123456789012:role/r",
        **extra,
    }


@pytest.fixture
def models(db: Database, clock: FakeClock, settings: Settings) -> ModelService:
    return ModelService(db, clock, settings)


def test_create_describe_delete(models: ModelService, clock: FakeClock) -> None:
    assert models.create(_request("MyModel")) == {"ModelArn": ARN.format("mymodel")}
    described = models.describe({"ModelName": "MyModel"})
    assert described == {
        **_request("MyModel"),
        "ModelArn": ARN.format("mymodel"),
        "CreationTime": clock.now(),
    }
    assert described["CreationTime"].tzinfo is not None
    models.delete({"ModelName": "MyModel"})
    with pytest.raises(ValidationException, match="Could not find model"):
        models.describe({"ModelName": "MyModel"})


def test_duplicate_uses_sagemaker_wording(models: ModelService) -> None:
    models.create(_request("m"))
    with pytest.raises(ValidationException) as info:
        models.create(_request("m"))
    assert info.value.message == f'Cannot create already existing model "{ARN.format("m")}".'


def test_missing_uses_sagemaker_wording(models: ModelService) -> None:
    with pytest.raises(ValidationException) as info:
        models.delete({"ModelName": "Nope"})
    assert info.value.message == f'Could not find model "{ARN.format("nope")}".'


def test_needs_a_container(models: ModelService) -> None:
    with pytest.raises(ValidationException, match="PrimaryContainer or Containers"):
        models.create({"ModelName": "m"})


def test_tags_go_to_the_tag_store(models: ModelService, db: Database, clock: FakeClock) -> None:
    models.create(_request("m", Tags=[{"Key": "team", "Value": "ml"}]))
    assert "Tags" not in models.describe({"ModelName": "m"})
    listed = TagService(db, clock).list_tags({"ResourceArn": ARN.format("m")})
    assert listed == {"Tags": [{"Key": "team", "Value": "ml"}]}


def test_list_defaults_filters_and_pages(models: ModelService, clock: FakeClock) -> None:
    start = clock.now()
    for name in ["b-model", "a-model", "c-other"]:
        models.create(_request(name))
        clock.advance(60)
    listed = models.list({})
    assert [m["ModelName"] for m in listed["Models"]] == ["c-other", "a-model", "b-model"]
    assert "NextToken" not in listed
    assert set(listed["Models"][0]) == {"ModelName", "ModelArn", "CreationTime"}
    by_name = models.list({"SortBy": "Name", "SortOrder": "Ascending", "NameContains": "model"})
    assert [m["ModelName"] for m in by_name["Models"]] == ["a-model", "b-model"]
    after = models.list({"CreationTimeAfter": start + timedelta(seconds=30)})
    assert [m["ModelName"] for m in after["Models"]] == ["c-other", "a-model"]
    first = models.list({"MaxResults": 2})
    assert len(first["Models"]) == 2
    second = models.list({"MaxResults": 2, "NextToken": first["NextToken"]})
    assert [m["ModelName"] for m in second["Models"]] == ["b-model"]
    assert "NextToken" not in second
    with pytest.raises(ValidationException, match="Invalid pagination token"):
        models.list({"NextToken": "not-a-token"})
