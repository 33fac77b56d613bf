"""Log groups, streams and events (the CloudWatch Logs data model), for job and endpoint logs.

Events are numbered in ingestion order by their primary key; reads page on that number, so a
reader that saw event ``n`` asks for ``id > n`` and never misses or repeats one, whatever the
events' own timestamps say. Times are epoch milliseconds, as on the wire.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, Row, and_, func, insert, or_, select, update

from sageport.store.tables import log_events, log_groups, log_streams

StreamOrder = Literal["name", "last_event_time"]


@dataclass(frozen=True)
class LogGroup:
    id: int
    name: str
    creation_time: int


@dataclass(frozen=True)
class LogStream:
    id: int
    group_id: int
    name: str
    creation_time: int
    first_event_timestamp: int | None
    last_event_timestamp: int | None
    last_ingestion_time: int | None
    stored_bytes: int


@dataclass(frozen=True)
class LogEvent:
    id: int
    stream_id: int
    timestamp: int
    ingestion_time: int
    message: str


def _stream(row: Row[Any]) -> LogStream:
    m = row._mapping
    return LogStream(
        id=m["id"],
        group_id=m["group_id"],
        name=m["name"],
        creation_time=m["creation_time"],
        first_event_timestamp=m["first_event_timestamp"],
        last_event_timestamp=m["last_event_timestamp"],
        last_ingestion_time=m["last_ingestion_time"],
        stored_bytes=m["stored_bytes"],
    )


def _event(row: Row[Any]) -> LogEvent:
    return LogEvent(row.id, row.stream_id, row.timestamp, row.ingestion_time, row.message)


# -- groups and streams ---------------------------------------------------------------------


def get_group(conn: Connection, name: str) -> LogGroup | None:
    row = conn.execute(select(log_groups).where(log_groups.c.name == name)).first()
    return LogGroup(row.id, row.name, row.creation_time) if row else None


def ensure_group(conn: Connection, name: str, now_ms: int) -> int:
    found = get_group(conn, name)
    if found is not None:
        return found.id
    result = conn.execute(insert(log_groups).values(name=name, creation_time=now_ms))
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def list_groups(conn: Connection, prefix: str | None, limit: int, offset: int) -> list[LogGroup]:
    g = log_groups.c
    query = select(log_groups).order_by(g.name).limit(limit).offset(offset)
    if prefix:
        query = query.where(g.name.startswith(prefix, autoescape=True))
    return [LogGroup(r.id, r.name, r.creation_time) for r in conn.execute(query)]


def get_stream(conn: Connection, group_id: int, name: str) -> LogStream | None:
    s = log_streams.c
    row = conn.execute(select(log_streams).where(s.group_id == group_id, s.name == name)).first()
    return _stream(row) if row else None


def ensure_stream(conn: Connection, group_id: int, name: str, now_ms: int) -> int:
    found = get_stream(conn, group_id, name)
    if found is not None:
        return found.id
    result = conn.execute(
        insert(log_streams).values(
            group_id=group_id, name=name, creation_time=now_ms, stored_bytes=0
        )
    )
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def list_streams(
    conn: Connection,
    group_id: int,
    *,
    prefix: str | None = None,
    names: Sequence[str] | None = None,
    order: StreamOrder = "name",
    descending: bool = False,
    limit: int | None = None,
    offset: int = 0,
) -> list[LogStream]:
    s = log_streams.c
    query = select(log_streams).where(s.group_id == group_id)
    if prefix:
        query = query.where(s.name.startswith(prefix, autoescape=True))
    if names is not None:
        query = query.where(s.name.in_(list(names)))
    # streams without events sort as the oldest
    column = s.name if order == "name" else func.coalesce(s.last_event_timestamp, -1)
    query = query.order_by(column.desc() if descending else column.asc(), s.id)
    if limit is not None:
        query = query.limit(limit).offset(offset)
    return [_stream(r) for r in conn.execute(query)]


# -- events ---------------------------------------------------------------------------------


def append(
    conn: Connection, stream_id: int, events: Sequence[tuple[int, str]], ingestion_ms: int
) -> None:
    """Add events (timestamp ms, message) in the given order and update the stream's summary."""
    if not events:
        return
    conn.execute(
        insert(log_events),
        [
            {"stream_id": stream_id, "timestamp": ts, "ingestion_time": ingestion_ms, "message": m}
            for ts, m in events
        ],
    )
    s = log_streams.c
    row = conn.execute(
        select(s.first_event_timestamp, s.last_event_timestamp).where(s.id == stream_id)
    ).one()
    first = min(ts for ts, _ in events)
    last = max(ts for ts, _ in events)
    if row.first_event_timestamp is not None:
        first = min(first, row.first_event_timestamp)
        last = max(last, row.last_event_timestamp)
    conn.execute(
        update(log_streams)
        .where(s.id == stream_id)
        .values(
            first_event_timestamp=first,
            last_event_timestamp=last,
            last_ingestion_time=ingestion_ms,
            stored_bytes=s.stored_bytes + sum(len(m.encode()) for _, m in events),
        )
    )


def read_stream(
    conn: Connection,
    stream_id: int,
    *,
    after_id: int | None = None,
    before_id: int | None = None,
    start_time: int | None = None,
    end_time: int | None = None,
    limit: int,
    from_head: bool,
) -> list[LogEvent]:
    """Up to ``limit`` events in ingestion order.

    ``from_head`` takes the first ``limit`` events after ``after_id``; otherwise the last
    ``limit`` before ``before_id`` (the tail). Either way the result is oldest first.
    """
    e = log_events.c
    query = select(log_events).where(e.stream_id == stream_id)
    if after_id is not None:
        query = query.where(e.id > after_id)
    if before_id is not None:
        query = query.where(e.id < before_id)
    if start_time is not None:
        query = query.where(e.timestamp >= start_time)
    if end_time is not None:
        query = query.where(e.timestamp < end_time)
    query = query.order_by(e.id.asc() if from_head else e.id.desc()).limit(limit)
    found = [_event(r) for r in conn.execute(query)]
    return found if from_head else found[::-1]


def filter_events(
    conn: Connection,
    stream_ids: Sequence[int],
    *,
    after: tuple[int, int] | None,
    start_time: int | None,
    end_time: int | None,
    contains: Sequence[str],
    limit: int,
) -> list[LogEvent]:
    """Events of several streams interleaved by (timestamp, id), after the ``after`` key.

    ``contains`` terms are matched with LIKE, which may be case-insensitive (SQLite); the
    caller re-checks the exact, case-sensitive match.
    """
    if not stream_ids:
        return []
    e = log_events.c
    query = select(log_events).where(e.stream_id.in_(list(stream_ids)))
    if after is not None:
        ts, last_id = after
        query = query.where(or_(e.timestamp > ts, and_(e.timestamp == ts, e.id > last_id)))
    if start_time is not None:
        query = query.where(e.timestamp >= start_time)
    if end_time is not None:
        query = query.where(e.timestamp < end_time)
    for term in contains:
        query = query.where(e.message.contains(term, autoescape=True))
    query = query.order_by(e.timestamp, e.id).limit(limit)
    return [_event(r) for r in conn.execute(query)]
