from __future__ import annotations

from sageport.store import logs
from sageport.store.database import Database


def test_groups_streams_and_append(db: Database) -> None:
    with db.begin() as conn:
        g = logs.ensure_group(conn, "/aws/sagemaker/TrainingJobs", 1)
        assert logs.ensure_group(conn, "/aws/sagemaker/TrainingJobs", 2) == g
        s = logs.ensure_stream(conn, g, "job/algo-1", 1)
        assert logs.ensure_stream(conn, g, "job/algo-1", 2) == s
        logs.append(conn, s, [(20, "b"), (10, "a")], 100)
        logs.append(conn, s, [(30, "ccc")], 200)
        stream = logs.get_stream(conn, g, "job/algo-1")
    assert stream is not None
    assert (stream.first_event_timestamp, stream.last_event_timestamp) == (10, 30)
    assert stream.last_ingestion_time == 200
    assert stream.stored_bytes == 5


def test_read_stream_head_tail_and_time_range(db: Database) -> None:
    with db.begin() as conn:
        s = logs.ensure_stream(conn, logs.ensure_group(conn, "g", 0), "s", 0)
        logs.append(conn, s, [(i, f"m{i}") for i in range(10)], 0)
        head = logs.read_stream(conn, s, limit=3, from_head=True)
        tail = logs.read_stream(conn, s, limit=3, from_head=False)
        ranged = logs.read_stream(conn, s, start_time=4, end_time=6, limit=10, from_head=True)
        after = logs.read_stream(conn, s, after_id=head[-1].id, limit=2, from_head=True)
    assert [e.message for e in head] == ["m0", "m1", "m2"]
    assert [e.message for e in tail] == ["m7", "m8", "m9"]
    assert [e.message for e in ranged] == ["m4", "m5"]
    assert [e.message for e in after] == ["m3", "m4"]


def test_filter_events_interleaves_streams(db: Database) -> None:
    with db.begin() as conn:
        g = logs.ensure_group(conn, "g", 0)
        a = logs.ensure_stream(conn, g, "a", 0)
        b = logs.ensure_stream(conn, g, "b", 0)
        logs.append(conn, a, [(1, "a1 loss"), (3, "a3 loss")], 0)
        logs.append(conn, b, [(2, "b2 loss"), (4, "b4 acc")], 0)
        both = logs.filter_events(
            conn, [a, b], after=None, start_time=None, end_time=None, contains=["loss"], limit=10
        )
        rest = logs.filter_events(
            conn, [a, b], after=(2, both[1].id), start_time=None, end_time=None, contains=[],
            limit=10,
        )  # fmt: skip
        names = [
            s.name for s in logs.list_streams(conn, g, order="last_event_time", descending=True)
        ]
    assert [e.message for e in both] == ["a1 loss", "b2 loss", "a3 loss"]
    assert [e.message for e in rest] == ["a3 loss", "b4 acc"]
    assert names == ["b", "a"]
