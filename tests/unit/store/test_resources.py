from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from sageport.store import resources, tags
from sageport.store.database import Connection, Database
from sageport.store.errors import DuplicateName, NotFound, StaleState, StatusConflict
from sageport.store.resources import ResourceFilter

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _make(db: Database, name: str, minutes: int = 0, status: str | None = None) -> None:
    with db.begin() as conn:
        resources.create(
            conn,
            kind="TrainingJob",
            name=name,
            arn=f"arn:job/{name.lower()}",
            spec={"Name": name},
            now=T0 + timedelta(minutes=minutes),
            status=status,
        )


def test_create_and_get(db: Database) -> None:
    _make(db, "a", status="InProgress")
    with db.begin() as conn:
        by_name = resources.get(conn, "TrainingJob", "a")
        by_arn = resources.get_by_arn(conn, "arn:job/a")
        other_kind = resources.get(conn, "Model", "a")
    assert by_name == by_arn
    assert by_name is not None
    assert by_name.spec == {"Name": "a"}
    assert by_name.status == "InProgress"
    assert by_name.created_at == T0
    assert other_kind is None


def test_duplicate_name_and_arn_are_refused(db: Database) -> None:
    _make(db, "a")
    with pytest.raises(DuplicateName):
        _make(db, "a")
    # the ARN lower-cases names, so a case variant collides too
    with pytest.raises(DuplicateName):
        _make(db, "A")


def test_list_filters_sort_and_paginate(db: Database) -> None:
    for i, name in enumerate(["bravo", "alpha", "charlie", "alphabet"]):
        _make(db, name, minutes=i, status="Completed" if i % 2 else "InProgress")
    with db.begin() as conn:

        def names(**kw: Any) -> list[str]:
            found = resources.list_resources(conn, "TrainingJob", ResourceFilter(**kw))
            return [r.name for r in found]

        assert names() == ["alphabet", "charlie", "alpha", "bravo"]
        assert names(descending=False) == ["bravo", "alpha", "charlie", "alphabet"]
        assert names(sort_by="name", descending=False) == ["alpha", "alphabet", "bravo", "charlie"]
        assert names(name_contains="ALPHA") == ["alphabet", "alpha"]
        assert names(statuses=("Completed",)) == ["alphabet", "alpha"]
        assert names(created_after=T0, created_before=T0 + timedelta(minutes=3)) == [
            "charlie",
            "alpha",
            "bravo",
        ]
        assert names(limit=2, offset=1) == ["charlie", "alpha"]
        assert names(name_contains="%") == []


def test_creation_time_after_is_inclusive_and_before_exclusive(db: Database) -> None:
    """CreationTimeAfter is ">=" (botocore's ListModels/ListEndpoints docs), Before is "<"."""
    for minutes, name in enumerate(["zero", "one", "two"]):
        _make(db, name, minutes=minutes)
    one = T0 + timedelta(minutes=1)
    with db.begin() as conn:

        def names(**kw: Any) -> list[str]:
            found = resources.list_resources(conn, "TrainingJob", ResourceFilter(**kw))
            return [r.name for r in found]

        assert names(created_after=one) == ["two", "one"]
        assert names(created_before=one) == ["zero"]
        assert names(created_after=one, created_before=one) == []
        assert names(created_after=one, created_before=one + timedelta(microseconds=1)) == ["one"]
        # a window and the next one ([a, b) then [b, c)) share no resource and miss none
        later = T0 + timedelta(minutes=2)
        assert names(created_after=T0, created_before=one) + names(
            created_after=one, created_before=later
        ) == ["zero", "one"]


def test_set_status_is_compare_and_set_with_history(db: Database) -> None:
    _make(db, "job", status="InProgress")
    later = T0 + timedelta(minutes=5)
    with db.begin() as conn:
        resources.set_status(
            conn, "TrainingJob", "job", "InProgress", "Completed",
            message="done", now=later, secondary_status="Completed",
        )  # fmt: skip
    with db.begin() as conn, pytest.raises(StatusConflict) as info:
        resources.set_status(conn, "TrainingJob", "job", "InProgress", "Stopped", now=later)
    assert info.value.actual == "Completed"
    with db.begin() as conn, pytest.raises(NotFound):
        resources.set_status(conn, "TrainingJob", "nope", None, "InProgress", now=later)
    with db.begin() as conn:
        found = resources.get(conn, "TrainingJob", "job")
        hist = resources.history(conn, "TrainingJob", "job")
    assert found is not None
    assert (found.status, found.status_message, found.modified_at) == ("Completed", "done", later)
    assert [(h.status, h.secondary_status, h.at) for h in hist] == [
        ("InProgress", None, T0),
        ("Completed", "Completed", later),
    ]


def _merge(conn: Connection, name: str, changes: dict[str, Any]) -> resources.Resource:
    found = resources.get(conn, "TrainingJob", name)
    assert found is not None
    return resources.write_state(
        conn,
        "TrainingJob",
        name,
        {**found.state, **changes},
        expected_status=found.status,
        expected_version=found.version,
        now=T0,
    )


def test_write_state_bumps_the_version(db: Database) -> None:
    _make(db, "job")
    with db.begin() as conn:
        _merge(conn, "job", {"a": 1})
        updated = _merge(conn, "job", {"b": 2})
    assert updated.state == {"a": 1, "b": 2, "version": 2}
    with db.begin() as conn:
        found = resources.get(conn, "TrainingJob", "job")
    assert found is not None
    assert found.state == {"a": 1, "b": 2, "version": 2}
    assert found.version == 2


def test_write_state_is_compare_and_set_on_status_and_version(db: Database) -> None:
    _make(db, "job")
    with db.begin() as conn:
        found = resources.get(conn, "TrainingJob", "job")
        assert found is not None
        assert found.version == 0
        resources.write_state(
            conn,
            "TrainingJob",
            "job",
            {"a": 1},
            expected_status=found.status,
            expected_version=0,
            now=T0,
        )
    # a writer that read version 0 lost the race
    with db.begin() as conn, pytest.raises(StaleState):
        resources.write_state(
            conn,
            "TrainingJob",
            "job",
            {"a": 2},
            expected_status=found.status,
            expected_version=0,
            now=T0,
        )
    # and one that read another status
    with db.begin() as conn, pytest.raises(StatusConflict):
        resources.write_state(
            conn,
            "TrainingJob",
            "job",
            {"a": 2},
            expected_status="Elsewhere",
            expected_version=1,
            now=T0,
        )
    with db.begin() as conn:
        stored = resources.get(conn, "TrainingJob", "job")
    assert stored is not None
    assert stored.state == {"a": 1, "version": 1}


def test_delete_removes_history_and_tags(db: Database) -> None:
    _make(db, "job", status="InProgress")
    with db.begin() as conn:
        tags.put(conn, "arn:job/job", [("k", "v")])
        resources.delete_resource(conn, "TrainingJob", "job")
    with db.begin() as conn:
        assert resources.get(conn, "TrainingJob", "job") is None
        assert tags.list_tags(conn, "arn:job/job") == []
        with pytest.raises(NotFound):
            resources.delete_resource(conn, "TrainingJob", "job")


def test_a_row_written_before_versions_loads(db: Database) -> None:
    """The SQL column is still ``extra``; a row without ``version`` reads as version 0."""
    _make(db, "old", status="InProgress")
    with db.begin() as conn:
        conn.execute(
            text("UPDATE resources SET extra = :extra WHERE name = 'old'"),
            {"extra": '{"grants": [{"gpus": [0]}], "stop_reason": "max_runtime"}'},
        )
    with db.read() as conn:
        found = resources.get(conn, "TrainingJob", "old")
    assert found is not None
    assert found.state == {"grants": [{"gpus": [0]}], "stop_reason": "max_runtime"}
    assert found.version == 0
    with db.begin() as conn:
        _merge(conn, "old", {"ended_at": "t"})
        stored = resources.get(conn, "TrainingJob", "old")
    assert stored is not None
    assert stored.version == 1
