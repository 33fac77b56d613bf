from __future__ import annotations

from typing import Any

import pytest

from sageport.clock import FakeClock
from sageport.errors import LogsInvalidParameter, LogsResourceNotFound
from sageport.services.logs import FilterPattern, LogService
from sageport.store.database import Database

GROUP = "/aws/sagemaker/TrainingJobs"


@pytest.fixture
def logs(db: Database, clock: FakeClock) -> LogService:
    return LogService(db, clock)


def _messages(result: dict[str, Any]) -> list[str]:
    return [e["message"] for e in result["events"]]


def test_put_events_creates_group_and_stream(logs: LogService, clock: FakeClock) -> None:
    logs.put_events(GROUP, "job/algo-1-1", [(1000, "hello")])
    logs.put_events(GROUP, "job/algo-1-1", [(2000, "world")])
    logs.create_stream(GROUP, "job/algo-2-1")
    groups = logs.describe_log_groups({"logGroupNamePrefix": "/aws/sagemaker/"})
    assert [g["logGroupName"] for g in groups["logGroups"]] == [GROUP]
    assert logs.describe_log_groups({"logGroupNamePrefix": "/other"}) == {"logGroups": []}
    streams = logs.describe_log_streams({"logGroupName": GROUP, "logStreamNamePrefix": "job/"})
    first = streams["logStreams"][0]
    assert [s["logStreamName"] for s in streams["logStreams"]] == ["job/algo-1-1", "job/algo-2-1"]
    assert first["firstEventTimestamp"] == 1000
    assert first["lastEventTimestamp"] == 2000
    assert first["lastIngestionTime"] == int(clock.now().timestamp() * 1000)
    assert "firstEventTimestamp" not in streams["logStreams"][1]


def test_describe_log_streams_order_and_pages(logs: LogService) -> None:
    logs.put_events(GROUP, "a", [(3, "x")])
    logs.put_events(GROUP, "b", [(1, "x")])
    logs.put_events(GROUP, "c", [(2, "x")])
    by_time = logs.describe_log_streams(
        {"logGroupName": GROUP, "orderBy": "LastEventTime", "descending": True}
    )
    assert [s["logStreamName"] for s in by_time["logStreams"]] == ["a", "c", "b"]
    page1 = logs.describe_log_streams({"logGroupName": GROUP, "limit": 2})
    page2 = logs.describe_log_streams(
        {"logGroupName": GROUP, "limit": 2, "nextToken": page1["nextToken"]}
    )
    assert [s["logStreamName"] for s in page1["logStreams"] + page2["logStreams"]] == [
        "a",
        "b",
        "c",
    ]
    assert "nextToken" not in page2
    with pytest.raises(LogsInvalidParameter):
        logs.describe_log_streams(
            {"logGroupName": GROUP, "orderBy": "LastEventTime", "logStreamNamePrefix": "a"}
        )


def test_unknown_group_and_stream(logs: LogService) -> None:
    with pytest.raises(LogsResourceNotFound) as group:
        logs.describe_log_streams({"logGroupName": "/nope"})
    assert group.value.message == "The specified log group does not exist."
    logs.put_events(GROUP, "s", [(1, "x")])
    with pytest.raises(LogsResourceNotFound) as stream:
        logs.get_log_events({"logGroupName": GROUP, "logStreamName": "other"})
    assert stream.value.message == "The specified log stream does not exist."


def test_get_log_events_sdk_loop_ends(logs: LogService) -> None:
    """The SageMaker SDK reads with startFromHead until a page is empty."""
    logs.put_events(GROUP, "s", [(i, f"line {i}") for i in range(5)])
    seen: list[str] = []
    token: str | None = None
    for _ in range(10):
        params: dict[str, Any] = {
            "logGroupName": GROUP,
            "logStreamName": "s",
            "startFromHead": True,
            "limit": 2,
        }
        if token:
            params["nextToken"] = token
        result = logs.get_log_events(params)
        assert result["nextForwardToken"].startswith("f/")
        assert result["nextBackwardToken"].startswith("b/")
        if not result["events"]:
            assert result["nextForwardToken"] == token
            break
        seen += _messages(result)
        token = result["nextForwardToken"]
    assert seen == [f"line {i}" for i in range(5)]
    # new events appear when following the same token
    logs.put_events(GROUP, "s", [(9, "late")])
    assert token is not None
    later = logs.get_log_events({"logGroupName": GROUP, "logStreamName": "s", "nextToken": token})
    assert _messages(later) == ["late"]
    assert later["events"][0]["timestamp"] == 9
    assert "ingestionTime" in later["events"][0]


def test_get_log_events_tail_backward_and_time_range(logs: LogService) -> None:
    logs.put_events(GROUP, "s", [(i, f"m{i}") for i in range(6)])
    tail = logs.get_log_events({"logGroupName": GROUP, "logStreamName": "s", "limit": 2})
    assert _messages(tail) == ["m4", "m5"]
    back = logs.get_log_events(
        {
            "logGroupName": GROUP,
            "logStreamName": "s",
            "limit": 2,
            "nextToken": tail["nextBackwardToken"],
        }
    )
    assert _messages(back) == ["m2", "m3"]
    ranged = logs.get_log_events(
        {
            "logGroupName": GROUP,
            "logStreamName": "s",
            "startTime": 1,
            "endTime": 3,
            "startFromHead": True,
        }
    )
    assert _messages(ranged) == ["m1", "m2"]
    with pytest.raises(LogsInvalidParameter):
        logs.get_log_events({"logGroupName": GROUP, "logStreamName": "s", "nextToken": "x/1"})


def test_filter_log_events(logs: LogService) -> None:
    logs.put_events(GROUP, "job/algo-1", [(1, "epoch 1 loss=0.5"), (3, "epoch 2 loss=0.4")])
    logs.put_events(GROUP, "job/algo-2", [(2, "epoch 1 Loss=0.6"), (4, "done")])
    logs.put_events(GROUP, "other/algo-1", [(5, "loss=9")])
    result = logs.filter_log_events(
        {"logGroupName": GROUP, "logStreamNamePrefix": "job/", "filterPattern": "loss"}
    )
    assert _messages(result) == ["epoch 1 loss=0.5", "epoch 2 loss=0.4"]
    assert result["events"][0]["logStreamName"] == "job/algo-1"
    assert {s["logStreamName"] for s in result["searchedLogStreams"]} == {
        "job/algo-1",
        "job/algo-2",
    }
    everything = logs.filter_log_events(
        {"logGroupName": GROUP, "logStreamNames": ["job/algo-2", "job/algo-1"]}
    )
    assert _messages(everything) == [
        "epoch 1 loss=0.5",
        "epoch 1 Loss=0.6",
        "epoch 2 loss=0.4",
        "done",
    ]
    page1 = logs.filter_log_events({"logGroupName": GROUP, "limit": 3})
    page2 = logs.filter_log_events(
        {"logGroupName": GROUP, "limit": 3, "nextToken": page1["nextToken"]}
    )
    assert len(page1["events"]) == 3
    assert _messages(page2) == ["done", "loss=9"]
    timed = logs.filter_log_events({"logGroupName": GROUP, "startTime": 2, "endTime": 4})
    assert _messages(timed) == ["epoch 1 Loss=0.6", "epoch 2 loss=0.4"]
    # a case-sensitive term that LIKE alone would over-match, limited to one result
    one = logs.filter_log_events({"logGroupName": GROUP, "filterPattern": "Loss", "limit": 1})
    assert _messages(one) == ["epoch 1 Loss=0.6"]


def test_filter_pattern_terms() -> None:
    pattern = FilterPattern.parse('"epoch 1" ?loss ?acc -debug')
    assert pattern.matches("epoch 1 loss")
    assert pattern.matches("epoch 1 acc")
    assert not pattern.matches("epoch 1 other")
    assert not pattern.matches("epoch 1 loss debug")
    assert FilterPattern.parse(None).matches("anything")
    with pytest.raises(LogsInvalidParameter):
        FilterPattern.parse('{ $.level = "ERROR" }')
