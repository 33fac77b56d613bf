from __future__ import annotations

from datetime import UTC, datetime

from sageport.api.serialize import to_json
from sageport.api.service_models import ServiceModels


def test_output_shape_filters_members_and_converts_timestamps() -> None:
    shape = ServiceModels().get("sagemaker").operation_model("DescribeModel").output_shape
    out = to_json(
        shape,
        {
            "ModelName": "m",
            "ModelArn": "arn:aws:sagemaker:us-east-1:000000000000:model/m",
            "CreationTime": datetime(2026, 1, 1, tzinfo=UTC),
            "Tags": [{"Key": "a", "Value": "b"}],  # request-only member: not in the output
            "ExecutionRoleArn": None,
        },
    )
    assert out == {
        "ModelName": "m",
        "ModelArn": "arn:aws:sagemaker:us-east-1:000000000000:model/m",
        "CreationTime": 1767225600.0,
    }


def test_iso_text_timestamps_from_stored_specs_are_accepted() -> None:
    shape = ServiceModels().get("sagemaker").operation_model("DescribeModel").output_shape
    out = to_json(shape, {"ModelName": "m", "CreationTime": "2026-01-01T00:00:00+00:00"})
    assert out["CreationTime"] == 1767225600.0
