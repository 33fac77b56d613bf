from __future__ import annotations

from collections.abc import Callable

import pytest

from sageport.clock import FakeClock
from sageport.errors import ValidationException
from sageport.services.models import ModelService
from sageport.services.tags import TagService
from sageport.settings import Settings
from sageport.store.database import Database


@pytest.fixture
def arn(db: Database, clock: FakeClock, settings: Settings) -> str:
    created = ModelService(db, clock, settings).create(
        {"ModelName": "m", "PrimaryContainer": {"Image": "img"}}
    )
    return str(created["ModelArn"])


@pytest.fixture
def tags(db: Database, clock: FakeClock) -> TagService:
    return TagService(db, clock)


def test_add_returns_full_list_and_overwrites(tags: TagService, arn: str) -> None:
    tags.add_tags({"ResourceArn": arn, "Tags": [{"Key": "a", "Value": "1"}]})
    result = tags.add_tags(
        {"ResourceArn": arn, "Tags": [{"Key": "b", "Value": "2"}, {"Key": "a", "Value": "3"}]}
    )
    assert result == {"Tags": [{"Key": "a", "Value": "3"}, {"Key": "b", "Value": "2"}]}


def test_list_pages_and_delete(tags: TagService, arn: str) -> None:
    tags.add_tags(
        {"ResourceArn": arn, "Tags": [{"Key": f"k{i:02}", "Value": "v"} for i in range(50)]}
    )
    first = tags.list_tags({"ResourceArn": arn, "MaxResults": 30})
    second = tags.list_tags({"ResourceArn": arn, "MaxResults": 30, "NextToken": first["NextToken"]})
    assert len(first["Tags"]) == 30
    assert len(second["Tags"]) == 20
    assert "NextToken" not in second
    tags.delete_tags({"ResourceArn": arn, "TagKeys": [f"k{i:02}" for i in range(49)]})
    assert tags.list_tags({"ResourceArn": arn}) == {"Tags": [{"Key": "k49", "Value": "v"}]}


def test_at_most_fifty_tags(tags: TagService, arn: str) -> None:
    tags.add_tags({"ResourceArn": arn, "Tags": [{"Key": f"k{i}", "Value": "v"} for i in range(50)]})
    # overwriting an existing key is fine at the limit
    tags.add_tags({"ResourceArn": arn, "Tags": [{"Key": "k0", "Value": "new"}]})
    with pytest.raises(ValidationException, match="more than 50 tags"):
        tags.add_tags({"ResourceArn": arn, "Tags": [{"Key": "one-more", "Value": "v"}]})


def test_unknown_arn(tags: TagService) -> None:
    ghost = "arn:aws:sagemaker:eu-west-1:123456789012:model/ghost"
    calls: list[Callable[[], object]] = [
        lambda: tags.add_tags({"ResourceArn": ghost, "Tags": [{"Key": "k", "Value": "v"}]}),
        lambda: tags.list_tags({"ResourceArn": ghost}),
        lambda: tags.delete_tags({"ResourceArn": ghost, "TagKeys": ["k"]}),
    ]
    for call in calls:
        with pytest.raises(ValidationException, match="Could not find resource"):
            call()
