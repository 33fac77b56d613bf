"""CloudWatch Logs: the write side jobs use, and the read side the SDK and CLI call.

Jobs and endpoints append lines with :meth:`LogService.put_events`; the SageMaker SDK reads
them back the way it reads CloudWatch (``DescribeLogStreams`` on
``/aws/sagemaker/TrainingJobs`` with prefix ``<job>/``, then ``GetLogEvents`` with
``startFromHead`` until a page comes back empty). Tokens have AWS's shapes: ``f/<digits>`` and
``b/<digits>`` for GetLogEvents (the digits are an event's ingestion number), opaque base64 for
the others. Reading forward past the end returns no events and the same forward token, which
is what ends the SDK's loop.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import shlex
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

from sageport.clock import Clock
from sageport.errors import LogsInvalidParameter, LogsResourceNotFound
from sageport.store import logs as store
from sageport.store.database import Connection, Database

DEFAULT_EVENTS_LIMIT = 10_000
DEFAULT_DESCRIBE_LIMIT = 50
TOKEN_DIGITS = 56


@dataclass(frozen=True)
class FilterPattern:
    """A plain-term filter pattern: all ``required`` terms, any ``optional`` (``?term``),
    none of ``excluded`` (``-term``); quoted terms may contain spaces. Matching is
    case-sensitive, as in CloudWatch Logs."""

    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()

    @classmethod
    def parse(cls, pattern: str | None) -> FilterPattern:
        text = (pattern or "").strip()
        if text.startswith(("{", "[")):
            raise LogsInvalidParameter(
                "JSON and space-delimited filter patterns are not supported; use plain terms."
            )
        try:
            words = shlex.split(text)
        except ValueError as exc:
            raise LogsInvalidParameter(f"Invalid filter pattern: {exc}.") from None
        required = [w for w in words if not w.startswith(("?", "-")) and w]
        optional = [w[1:] for w in words if w.startswith("?") and len(w) > 1]
        excluded = [w[1:] for w in words if w.startswith("-") and len(w) > 1]
        return cls(tuple(required), tuple(optional), tuple(excluded))

    def matches(self, message: str) -> bool:
        return (
            all(t in message for t in self.required)
            and (not self.optional or any(t in message for t in self.optional))
            and not any(t in message for t in self.excluded)
        )


class LogService:
    """Log groups, streams and events in the database."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock
        # (group, stream) → stream id: a job writes many small batches to one stream.
        self._streams: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def _now_ms(self) -> int:
        return int(self._clock.now().timestamp() * 1000)

    # -- write side -------------------------------------------------------------------------

    def _stream_id(self, group: str, stream: str) -> int:
        """The stream's id, created (and committed) on first use, then cached.

        Creation runs in its own transaction under a lock, so two writers starting the same
        stream at once cannot both insert it.
        """
        key = (group, stream)
        with self._lock:
            found = self._streams.get(key)
            if found is None:
                now = self._now_ms()
                with self._db.begin() as conn:
                    group_id = store.ensure_group(conn, group, now)
                    found = store.ensure_stream(conn, group_id, stream, now)
                self._streams[key] = found
        return found

    def create_stream(self, group: str, stream: str) -> None:
        """Make a (still empty) stream visible to DescribeLogStreams."""
        self._stream_id(group, stream)

    def put_events(self, group: str, stream: str, events: Sequence[tuple[int, str]]) -> None:
        """Append events (epoch ms, message), creating the group and stream as needed."""
        stream_id = self._stream_id(group, stream)
        with self._db.begin() as conn:
            store.append(conn, stream_id, events, self._now_ms())

    def tail(self, group: str, stream: str, lines: int) -> list[str]:
        """The last ``lines`` messages of a stream (for failure reasons); [] if none."""
        with self._db.read() as conn:
            found = store.get_group(conn, group)
            if found is None:
                return []
            s = store.get_stream(conn, found.id, stream)
            if s is None:
                return []
            events = store.read_stream(conn, s.id, limit=lines, from_head=False)
        return [e.message for e in events]

    # -- read side --------------------------------------------------------------------------

    def describe_log_groups(self, params: dict[str, Any]) -> dict[str, Any]:
        limit = int(params.get("limit") or DEFAULT_DESCRIBE_LIMIT)
        offset = _decode_offset(params.get("nextToken"))
        with self._db.read() as conn:
            groups = store.list_groups(
                conn, params.get("logGroupNamePrefix"), limit=limit + 1, offset=offset
            )
        result: dict[str, Any] = {
            "logGroups": [
                {"logGroupName": g.name, "creationTime": g.creation_time, "storedBytes": 0}
                for g in groups[:limit]
            ]
        }
        if len(groups) > limit:
            result["nextToken"] = _encode_offset(offset + limit)
        return result

    def describe_log_streams(self, params: dict[str, Any]) -> dict[str, Any]:
        order = params.get("orderBy", "LogStreamName")
        prefix = params.get("logStreamNamePrefix")
        if prefix and order == "LastEventTime":
            raise LogsInvalidParameter("Cannot order by LastEventTime with a logStreamNamePrefix.")
        limit = int(params.get("limit") or DEFAULT_DESCRIBE_LIMIT)
        offset = _decode_offset(params.get("nextToken"))
        with self._db.read() as conn:
            group = _group(conn, params)
            streams = store.list_streams(
                conn,
                group.id,
                prefix=prefix,
                order="name" if order == "LogStreamName" else "last_event_time",
                descending=bool(params.get("descending", False)),
                limit=limit + 1,
                offset=offset,
            )
        result: dict[str, Any] = {"logStreams": [_stream_out(s) for s in streams[:limit]]}
        if len(streams) > limit:
            result["nextToken"] = _encode_offset(offset + limit)
        return result

    def get_log_events(self, params: dict[str, Any]) -> dict[str, Any]:
        limit = int(params.get("limit") or DEFAULT_EVENTS_LIMIT)
        token = params.get("nextToken")
        after: int | None = None
        before: int | None = None
        if token:
            direction, position = _parse_event_token(token)
            if direction == "f":
                after = position
            else:
                before = position
            from_head = direction == "f"
        else:
            from_head = bool(params.get("startFromHead", False))
        with self._db.read() as conn:
            group = _group(conn, params)
            stream = store.get_stream(conn, group.id, params["logStreamName"])
            if stream is None:
                raise LogsResourceNotFound("The specified log stream does not exist.")
            events = store.read_stream(
                conn,
                stream.id,
                after_id=after,
                before_id=before,
                start_time=params.get("startTime"),
                end_time=params.get("endTime"),
                limit=limit,
                from_head=from_head,
            )
        if events:
            forward, backward = events[-1].id, events[0].id
        elif before is not None:
            forward, backward = max(before - 1, 0), before
        else:
            forward = after or 0
            backward = forward + 1
        return {
            "events": [
                {"timestamp": e.timestamp, "message": e.message, "ingestionTime": e.ingestion_time}
                for e in events
            ],
            "nextForwardToken": f"f/{forward:0{TOKEN_DIGITS}d}",
            "nextBackwardToken": f"b/{backward:0{TOKEN_DIGITS}d}",
        }

    def filter_log_events(self, params: dict[str, Any]) -> dict[str, Any]:
        names = params.get("logStreamNames")
        prefix = params.get("logStreamNamePrefix")
        if names and prefix:
            raise LogsInvalidParameter(
                "logStreamNames and logStreamNamePrefix are mutually exclusive."
            )
        pattern = FilterPattern.parse(params.get("filterPattern"))
        limit = int(params.get("limit") or DEFAULT_EVENTS_LIMIT)
        after = _decode_key(params.get("nextToken"))
        found: list[store.LogEvent] = []
        with self._db.read() as conn:
            group = _group(conn, params)
            streams = store.list_streams(conn, group.id, prefix=prefix, names=names)
            stream_names = {s.id: s.name for s in streams}
            while len(found) < limit:
                batch = store.filter_events(
                    conn,
                    list(stream_names),
                    after=after,
                    start_time=params.get("startTime"),
                    end_time=params.get("endTime"),
                    contains=pattern.required,
                    limit=limit,
                )
                for event in batch:
                    after = (event.timestamp, event.id)
                    if pattern.matches(event.message):
                        found.append(event)
                        if len(found) == limit:
                            break
                if len(batch) < limit:
                    break
        result: dict[str, Any] = {
            "events": [
                {
                    "logStreamName": stream_names[e.stream_id],
                    "timestamp": e.timestamp,
                    "message": e.message,
                    "ingestionTime": e.ingestion_time,
                    "eventId": f"{e.id:0{TOKEN_DIGITS}d}",
                }
                for e in found
            ],
            "searchedLogStreams": [
                {"logStreamName": name, "searchedCompletely": True}
                for name in stream_names.values()
            ],
        }
        if len(found) == limit and after is not None:
            result["nextToken"] = _encode_key(after)
        return result


def _group(conn: Connection, params: dict[str, Any]) -> store.LogGroup:
    name = params.get("logGroupName") or params.get("logGroupIdentifier") or ""
    if name.startswith("arn:"):
        # arn:aws:logs:<region>:<account>:log-group:<name>[:*]
        name = name.split(":log-group:", 1)[-1].removesuffix(":*")
    group = store.get_group(conn, name)
    if group is None:
        raise LogsResourceNotFound("The specified log group does not exist.")
    return group


def _stream_out(stream: store.LogStream) -> dict[str, Any]:
    out: dict[str, Any] = {
        "logStreamName": stream.name,
        "creationTime": stream.creation_time,
        "storedBytes": stream.stored_bytes,
    }
    if stream.first_event_timestamp is not None:
        out["firstEventTimestamp"] = stream.first_event_timestamp
        out["lastEventTimestamp"] = stream.last_event_timestamp
        out["lastIngestionTime"] = stream.last_ingestion_time
    return out


def _parse_event_token(token: str) -> tuple[str, int]:
    direction, _, digits = token.partition("/")
    # ASCII digits only (str.isdigit also takes '²'), and a position SQL can hold
    if direction not in ("f", "b") or not _TOKEN_DIGITS.fullmatch(digits):
        raise LogsInvalidParameter("The specified nextToken is invalid.")
    position = int(digits)
    if not _position(position):
        raise LogsInvalidParameter("The specified nextToken is invalid.")
    return direction, position


_TOKEN_DIGITS = re.compile(f"[0-9]{{1,{TOKEN_DIGITS}}}")


def _position(value: Any) -> TypeGuard[int]:
    """Whether a token's number is a row position or id SQL can hold (0 <= n < 2**53)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**53


def _encode_offset(offset: int) -> str:
    return _encode({"offset": offset})


def _decode_offset(token: str | None) -> int:
    if not token:
        return 0
    offset = _decode(token).get("offset")
    if not _position(offset):
        raise LogsInvalidParameter("The specified nextToken is invalid.")
    return offset


def _encode_key(key: tuple[int, int]) -> str:
    return _encode({"after": list(key)})


def _decode_key(token: str | None) -> tuple[int, int] | None:
    if not token:
        return None
    key = _decode(token).get("after")
    if not (isinstance(key, list) and len(key) == 2 and all(_position(k) for k in key)):
        raise LogsInvalidParameter("The specified nextToken is invalid.")
    return key[0], key[1]


def _encode(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode()


def _decode(token: str) -> dict[str, Any]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, ValueError, RecursionError) as exc:
        raise LogsInvalidParameter("The specified nextToken is invalid.") from exc
    if not isinstance(data, dict):
        raise LogsInvalidParameter("The specified nextToken is invalid.")
    return data
