from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sageport.api.service_models import ServiceModels
from sageport.api.validate import Validator
from sageport.errors import ValidationException


@pytest.fixture(scope="module")
def sagemaker() -> ServiceModels:
    return ServiceModels()


def _input(models: ServiceModels, op: str):  # type: ignore[no-untyped-def]
    return models.get("sagemaker").operation_model(op).input_shape


def test_pattern_violation_uses_aws_message_form(sagemaker: ServiceModels) -> None:
    shape = _input(sagemaker, "DescribeModel")
    with pytest.raises(ValidationException) as info:
        Validator().validate(shape, {"ModelName": "bad name!"})
    assert info.value.message.startswith(
        "1 validation error detected: Value 'bad name!' at 'modelName' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: "
    )


def test_every_violation_is_reported_at_once(sagemaker: ServiceModels) -> None:
    shape = _input(sagemaker, "CreateModel")
    with pytest.raises(ValidationException) as info:
        Validator().validate(shape, {"ModelName": "x" * 64, "ExecutionRoleArn": "role"})
    message = info.value.message
    assert message.startswith("3 validation errors detected: ")
    assert "Member must have length less than or equal to 63" in message
    assert (
        "at 'executionRoleArn' failed to satisfy constraint: Member must have length greater than or equal to 20"
        in message
    )


def test_missing_required_member(sagemaker: ServiceModels) -> None:
    with pytest.raises(ValidationException) as info:
        Validator().validate(_input(sagemaker, "DescribeModel"), {})
    assert info.value.message == (
        "1 validation error detected: Value null at 'modelName' failed to satisfy constraint: "
        "Member must not be null"
    )


def test_enum_and_range_and_nested_paths(sagemaker: ServiceModels) -> None:
    shape = _input(sagemaker, "ListModels")
    with pytest.raises(ValidationException) as info:
        Validator().validate(shape, {"SortBy": "Size", "MaxResults": 1000})
    message = info.value.message
    assert (
        "Value 'Size' at 'sortBy' failed to satisfy constraint: "
        "Member must satisfy enum value set: [Name, CreationTime]" in message
    )
    assert (
        "Value 1000 at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to 100"
        in message
    )

    create = _input(sagemaker, "CreateModel")
    with pytest.raises(ValidationException) as nested:
        Validator().validate(
            create,
            {
                "ModelName": "m",
                "ExecutionRoleArn": "arn:aws:iam::1:role/r",
                "Containers": [{"Image": "x" * 300}],
            },
        )
    assert "at 'containers.1.member.image'" in nested.value.message


def test_wire_values_become_python_values(sagemaker: ServiceModels) -> None:
    shape = _input(sagemaker, "ListModels")
    out = Validator().validate(shape, {"CreationTimeAfter": 1767225600, "NameContains": "abc"})
    assert out["CreationTimeAfter"] == datetime(2026, 1, 1, tzinfo=UTC)
    assert out["NameContains"] == "abc"


def test_type_mismatch_is_a_validation_error(sagemaker: ServiceModels) -> None:
    shape = _input(sagemaker, "ListModels")
    with pytest.raises(ValidationException, match="Member must be an integer"):
        Validator().validate(shape, {"MaxResults": "ten"})
    with pytest.raises(ValidationException, match="JSON object"):
        Validator().validate(shape, ["not", "an", "object"])
