"""CloudWatch Logs through boto3's ``logs`` client against a live server.

The read side answers for absent groups and streams the way CloudWatch does, which the
SageMaker SDK tolerates while a job starts; events written to the server's log store (as jobs
write them) page forward and backward with CloudWatch's tokens. The read semantics are
tested fully in ``tests/unit/services/test_log_service.py``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from server_helpers import aws_error

from sageport.cli.process import ServerProcess
from sageport.clock import SystemClock
from sageport.services.logs import LogService
from sageport.store.database import Database


def test_describe_log_streams_unknown_group(server: ServerProcess) -> None:
    logs = server.client("logs")
    with aws_error("ResourceNotFoundException") as info:
        logs.describe_log_streams(
            logGroupName="/aws/sagemaker/NoSuchGroup",
            logStreamNamePrefix="job/",
            orderBy="LogStreamName",
        )
    assert info.value.response["Error"]["Message"] == "The specified log group does not exist."


def test_get_and_filter_unknown_group(server: ServerProcess) -> None:
    logs = server.client("logs")
    with aws_error("ResourceNotFoundException"):
        logs.get_log_events(logGroupName="/nope", logStreamName="s", startFromHead=True)
    with aws_error("ResourceNotFoundException"):
        logs.filter_log_events(logGroupName="/nope", filterPattern="loss")


def test_describe_log_groups_with_unused_prefix(server: ServerProcess) -> None:
    logs = server.client("logs")
    assert logs.describe_log_groups(logGroupNamePrefix="/sageport/test/none")["logGroups"] == []


# -- events written by the log store, read back through the server ---------------------------


@pytest.fixture
def log_writer(server: ServerProcess) -> Iterator[LogService]:
    """The server's own log store (its database), as a job writes it."""
    db = Database(f"sqlite:///{server.data_dir / 'sageport.db'}")
    yield LogService(db, SystemClock())
    db.close()


def _group() -> str:
    return f"/aws/sagemaker/TrainingJobs/test-{uuid.uuid4().hex[:8]}"


def test_get_log_events_backward_pages_end_in_an_empty_page(
    server: ServerProcess, log_writer: LogService
) -> None:
    group, stream = _group(), "job/algo-1-1700000000"
    log_writer.put_events(group, stream, [(1_700_000_000_000 + i, f"line {i}") for i in range(25)])
    logs = server.client("logs")
    page = logs.get_log_events(
        logGroupName=group, logStreamName=stream, startFromHead=False, limit=10
    )
    seen = [[e["message"] for e in page["events"]]]
    assert seen[0] == [f"line {i}" for i in range(15, 25)]
    assert page["nextBackwardToken"].startswith("b/")
    assert page["nextForwardToken"].startswith("f/")
    # going forward from the tail finds nothing new, and says so with the same token
    ahead = logs.get_log_events(
        logGroupName=group, logStreamName=stream, nextToken=page["nextForwardToken"]
    )
    assert ahead["events"] == []
    assert ahead["nextForwardToken"] == page["nextForwardToken"]
    token = page["nextBackwardToken"]
    while True:
        page = logs.get_log_events(
            logGroupName=group, logStreamName=stream, nextToken=token, limit=10
        )
        seen.append([e["message"] for e in page["events"]])
        if not page["events"]:
            # the end: an empty page whose backward token stays where it was
            assert page["nextBackwardToken"] == token
            break
        token = page["nextBackwardToken"]
    assert seen[1:] == [[f"line {i}" for i in range(5, 15)], [f"line {i}" for i in range(5)], []]
    # and back forward again from the oldest page
    first = logs.get_log_events(
        logGroupName=group, logStreamName=stream, startFromHead=True, limit=5
    )
    again = logs.get_log_events(
        logGroupName=group, logStreamName=stream, nextToken=first["nextForwardToken"], limit=5
    )
    assert [e["message"] for e in again["events"]] == [f"line {i}" for i in range(5, 10)]


def test_filter_log_events_pages_across_streams(
    server: ServerProcess, log_writer: LogService
) -> None:
    group = _group()
    base = 1_700_000_000_000
    log_writer.put_events(group, "job/algo-1", [(base + 2 * i, f"loss={i} a") for i in range(12)])
    log_writer.put_events(
        group, "job/algo-2", [(base + 2 * i + 1, f"loss={i} b") for i in range(12)]
    )
    log_writer.put_events(group, "job/algo-2", [(base + 100, "no match here")])
    logs = server.client("logs")
    first = logs.filter_log_events(logGroupName=group, filterPattern="loss", limit=5)
    assert [e["message"] for e in first["events"]] == [
        "loss=0 a", "loss=0 b", "loss=1 a", "loss=1 b", "loss=2 a"
    ]  # fmt: skip
    assert [e["logStreamName"] for e in first["events"][:2]] == ["job/algo-1", "job/algo-2"]
    assert "nextToken" in first
    pages = list(
        logs.get_paginator("filter_log_events").paginate(
            logGroupName=group, filterPattern="loss", PaginationConfig={"PageSize": 5}
        )
    )
    messages = [e["message"] for p in pages for e in p["events"]]
    assert len(messages) == 24
    assert len(set(messages)) == 24
    assert [len(p["events"]) for p in pages] == [5, 5, 5, 5, 4]
    assert "nextToken" not in pages[-1]
    only_b = logs.filter_log_events(
        logGroupName=group,
        logStreamNames=["job/algo-2"],
        filterPattern="b",
        startTime=base + 10,
        endTime=base + 20,
    )
    assert [e["message"] for e in only_b["events"]] == [f"loss={i} b" for i in range(5, 10)]
    with aws_error("InvalidParameterException"):
        logs.filter_log_events(logGroupName=group, nextToken="not-a-token")
