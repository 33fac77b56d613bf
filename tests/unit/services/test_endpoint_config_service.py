from __future__ import annotations

from typing import Any

import pytest

from sageport.clock import FakeClock
from sageport.errors import ValidationException
from sageport.services.endpoint_configs import EndpointConfigService
from sageport.services.models import ModelService
from sageport.services.tags import TagService
from sageport.settings import Settings
from sageport.store.database import Database

ARN = "arn:aws:sagemaker:eu-west-1:123456789012:endpoint-config/{}"


def _request(name: str, model: str = "m", **extra: Any) -> dict[str, Any]:
    return {
        "EndpointConfigName": name,
        "ProductionVariants": [
            {
                "VariantName": "AllTraffic",
                "ModelName": model,
                "InitialInstanceCount": 1,
                "InstanceType": "ml.g5.xlarge",
            }
        ],
        **extra,
    }


@pytest.fixture
def configs(db: Database, clock: FakeClock, settings: Settings) -> EndpointConfigService:
    ModelService(db, clock, settings).create(
        {"ModelName": "m", "PrimaryContainer": {"Image": "img"}}
    )
    return EndpointConfigService(db, clock, settings)


def test_create_describe_list_delete(configs: EndpointConfigService, clock: FakeClock) -> None:
    assert configs.create(_request("Cfg")) == {"EndpointConfigArn": ARN.format("cfg")}
    assert configs.describe({"EndpointConfigName": "Cfg"}) == {
        **_request("Cfg"),
        "EndpointConfigArn": ARN.format("cfg"),
        "CreationTime": clock.now(),
    }
    listed = configs.list({})
    assert listed == {
        "EndpointConfigs": [
            {
                "EndpointConfigName": "Cfg",
                "EndpointConfigArn": ARN.format("cfg"),
                "CreationTime": clock.now(),
            }
        ]
    }
    configs.delete({"EndpointConfigName": "Cfg"})
    with pytest.raises(ValidationException) as info:
        configs.describe({"EndpointConfigName": "Cfg"})
    assert info.value.message == f'Could not find endpoint configuration "{ARN.format("cfg")}".'


def test_duplicate(configs: EndpointConfigService) -> None:
    configs.create(_request("c"))
    with pytest.raises(ValidationException) as info:
        configs.create(_request("c"))
    assert info.value.message == (
        f'Cannot create already existing endpoint configuration "{ARN.format("c")}".'
    )


def test_unknown_model_is_refused(configs: EndpointConfigService) -> None:
    with pytest.raises(ValidationException) as info:
        configs.create(_request("c", model="Ghost"))
    assert info.value.message == (
        'Could not find model "arn:aws:sagemaker:eu-west-1:123456789012:model/ghost".'
    )
    with pytest.raises(ValidationException, match="Could not find endpoint configuration"):
        configs.describe({"EndpointConfigName": "c"})


def test_tags_and_delete_removes_them(
    configs: EndpointConfigService, db: Database, clock: FakeClock
) -> None:
    configs.create(_request("c", Tags=[{"Key": "k", "Value": "v"}]))
    tags = TagService(db, clock)
    assert tags.list_tags({"ResourceArn": ARN.format("c")})["Tags"] == [{"Key": "k", "Value": "v"}]
    configs.delete({"EndpointConfigName": "c"})
    configs.create(_request("c"))
    assert tags.list_tags({"ResourceArn": ARN.format("c")})["Tags"] == []
