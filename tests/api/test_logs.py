"""CloudWatch Logs through boto3's ``logs`` client against a live server.

The write side belongs to jobs (later); here the read side answers for absent groups and
streams the way CloudWatch does, which the SageMaker SDK tolerates while a job starts. The
read semantics are tested fully in ``tests/unit/services/test_log_service.py``.
"""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from sageport.cli.process import ServerProcess


def test_describe_log_streams_unknown_group(server: ServerProcess) -> None:
    logs = server.client("logs")
    with pytest.raises(ClientError) as info:
        logs.describe_log_streams(
            logGroupName="/aws/sagemaker/NoSuchGroup",
            logStreamNamePrefix="job/",
            orderBy="LogStreamName",
        )
    assert info.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert info.value.response["Error"]["Message"] == "The specified log group does not exist."


def test_get_and_filter_unknown_group(server: ServerProcess) -> None:
    logs = server.client("logs")
    with pytest.raises(ClientError) as got:
        logs.get_log_events(logGroupName="/nope", logStreamName="s", startFromHead=True)
    assert got.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as filtered:
        logs.filter_log_events(logGroupName="/nope", filterPattern="loss")
    assert filtered.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_describe_log_groups_with_unused_prefix(server: ServerProcess) -> None:
    logs = server.client("logs")
    assert logs.describe_log_groups(logGroupNamePrefix="/sageport/test/none")["logGroups"] == []
