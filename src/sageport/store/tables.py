"""The schema, as SQLAlchemy Core tables.

One generic ``resources`` table holds every SageMaker resource (models, endpoint configs,
training and processing jobs, endpoints): its ``spec`` is the validated request kept
verbatim, ``status`` is nullable for resources that have none, and ``extra`` (``c.state`` in
Python) holds the runtime state a resource kind adds, as its typed record's JSON with a
``version`` (``domain.runtime``: artifacts, failure reasons, host assignments). Status changes are
rows in ``status_history`` so that ``SecondaryStatusTransitions`` can be read back. Tags are
keyed by ARN because the Tag API addresses resources by ARN. Log events are numbered in
ingestion order (``id``); that number is what the CloudWatch Logs tokens carry. Job access
keys (``access_keys``) are rows too, so that a job re-adopted after a restart keeps its key.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

metadata = MetaData()

# SQLite has no 64-bit autoincrement BIGINT rowid alias; INTEGER is BIGINT elsewhere.
Id = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """Stores UTC, returns aware UTC datetimes on every backend (SQLite drops the offset)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use Clock.now()")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


resources = Table(
    "resources",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("kind", String(64), nullable=False),
    Column("name", String(256), nullable=False),
    Column("arn", String(2048), nullable=False, unique=True),
    Column("spec", JSON, nullable=False),
    Column("status", String(64), nullable=True),
    Column("status_message", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("modified_at", UtcDateTime, nullable=False),
    # Python calls it ``state`` (a kind's typed runtime record, with its ``version``); the SQL
    # name stays ``extra`` so that databases written before keep working unchanged.
    Column("extra", JSON, nullable=False, key="state"),
    UniqueConstraint("kind", "name", name="uq_resources_kind_name"),
    Index("ix_resources_kind_created", "kind", "created_at"),
    Index("ix_resources_kind_status", "kind", "status"),
)

status_history = Table(
    "status_history",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column(
        "resource_id",
        Id,
        ForeignKey("resources.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("status", String(64), nullable=True),
    Column("secondary_status", String(64), nullable=True),
    Column("message", Text, nullable=True),
    Column("at", UtcDateTime, nullable=False),
)

tags = Table(
    "tags",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("resource_arn", String(2048), nullable=False),
    Column("key", String(128), nullable=False),
    Column("value", String(256), nullable=False),
    UniqueConstraint("resource_arn", "key", name="uq_tags_arn_key"),
)

log_groups = Table(
    "log_groups",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(512), nullable=False, unique=True),
    Column("creation_time", BigInteger, nullable=False),
)

log_streams = Table(
    "log_streams",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("group_id", Id, ForeignKey("log_groups.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(512), nullable=False),
    Column("creation_time", BigInteger, nullable=False),
    Column("first_event_timestamp", BigInteger, nullable=True),
    Column("last_event_timestamp", BigInteger, nullable=True),
    Column("last_ingestion_time", BigInteger, nullable=True),
    Column("stored_bytes", BigInteger, nullable=False, default=0),
    UniqueConstraint("group_id", "name", name="uq_log_streams_group_name"),
)

log_events = Table(
    "log_events",
    metadata,
    # ingestion order; CloudWatch Logs tokens (f/<n>, b/<n>) carry this number
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("stream_id", Id, ForeignKey("log_streams.id", ondelete="CASCADE"), nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("ingestion_time", BigInteger, nullable=False),
    Column("message", Text, nullable=False),
    Index("ix_log_events_stream_ts", "stream_id", "timestamp"),
    Index("ix_log_events_stream_id", "stream_id", "id"),
)

access_keys = Table(
    "access_keys",
    metadata,
    # One row per key minted for a job, processing job or endpoint (``store.keys``); the
    # server user's own keys stay in credentials.json. Rows are kept after revocation (a
    # revoked id is never reissued and says whose it was).
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("access_key_id", String(64), nullable=False, unique=True),
    Column("secret_access_key", String(128), nullable=False),
    Column("owner_arn", String(2048), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime, nullable=True),
    Index("ix_access_keys_owner", "owner_arn"),
)
