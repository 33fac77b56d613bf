"""The resource repository: every SageMaker resource kind, one generic table.

Functions take a :class:`sqlalchemy.Connection` so a service can compose several of them
(create a resource and its tags) into one transaction opened with ``Database.begin()``.
Status changes are compare-and-set: ``set_status`` refuses when the stored status is not the
one the caller saw, so two writers (an API call and the scheduler) cannot both win.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, Row, and_, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from sageport.store.errors import DuplicateName, NotFound, StaleState, StatusConflict
from sageport.store.tables import resources, status_history, tags

SortKey = Literal["name", "creation_time", "status"]


@dataclass(frozen=True)
class Resource:
    """One stored resource."""

    id: int
    kind: str
    name: str
    arn: str
    spec: dict[str, Any]
    status: str | None
    status_message: str | None
    created_at: datetime
    modified_at: datetime
    state: dict[str, Any]
    """Runtime state as stored (the ``extra`` column); read it through the kind's type."""

    @property
    def version(self) -> int:
        """The record version of ``state`` (0 for rows written before versions existed)."""
        return int(self.state.get("version") or 0)


@dataclass(frozen=True)
class HistoryEntry:
    """One status change, in the order it happened."""

    status: str | None
    secondary_status: str | None
    message: str | None
    at: datetime


@dataclass(frozen=True)
class ResourceFilter:
    """What a List* call asks for; ``None`` means no constraint.

    ``created_after`` (``CreationTimeAfter``) is inclusive: the botocore model documents it
    as "a creation time greater than or equal to the specified time" for ListModels,
    ListEndpoints and ListEndpointConfigs, and every SageMaker List* operation that states
    the bound at all states it so (the others say only "created after"). The other times are
    exclusive bounds, as documented ("created before", "modified after/before"), so
    consecutive windows ``[after, before)`` neither overlap nor leave a gap.
    """

    name_contains: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    modified_after: datetime | None = None
    modified_before: datetime | None = None
    statuses: tuple[str, ...] = field(default=())
    sort_by: SortKey = "creation_time"
    descending: bool = True
    limit: int = 100
    offset: int = 0


def _resource(row: Row[Any]) -> Resource:
    m = row._mapping
    return Resource(
        id=m["id"],
        kind=m["kind"],
        name=m["name"],
        arn=m["arn"],
        spec=m["spec"],
        status=m["status"],
        status_message=m["status_message"],
        created_at=m["created_at"],
        modified_at=m["modified_at"],
        state=m[resources.c.state],
    )


def create(
    conn: Connection,
    *,
    kind: str,
    name: str,
    arn: str,
    spec: dict[str, Any],
    now: datetime,
    status: str | None = None,
    status_message: str | None = None,
    secondary_status: str | None = None,
    state: dict[str, Any] | None = None,
) -> Resource:
    """Insert a resource; a first status is also the first history row.

    Raises :class:`DuplicateName` when the kind/name or ARN is taken (the ARN lower-cases the
    name, so names differing only in case collide, as in SageMaker).
    """
    values: dict[str, Any] = {
        "kind": kind,
        "name": name,
        "arn": arn,
        "spec": spec,
        "status": status,
        "status_message": status_message,
        "created_at": now,
        "modified_at": now,
        "state": state or {},
    }
    # No savepoint (pysqlite's are unreliable): a violation aborts the caller's transaction,
    # which is what a failed Create* wants anyway.
    try:
        result = conn.execute(insert(resources).values(**values))
    except IntegrityError as exc:
        raise DuplicateName(f"{kind} {name} already exists") from exc
    (resource_id,) = result.inserted_primary_key or (None,)
    assert resource_id is not None
    if status is not None:
        conn.execute(
            insert(status_history).values(
                resource_id=resource_id,
                status=status,
                secondary_status=secondary_status,
                message=status_message,
                at=now,
            )
        )
    return Resource(
        id=int(resource_id),
        kind=kind,
        name=name,
        arn=arn,
        spec=spec,
        status=status,
        status_message=status_message,
        created_at=now,
        modified_at=now,
        state=state or {},
    )


def get(conn: Connection, kind: str, name: str) -> Resource | None:
    row = conn.execute(
        select(resources).where(resources.c.kind == kind, resources.c.name == name)
    ).first()
    return _resource(row) if row else None


def get_by_arn(conn: Connection, arn: str) -> Resource | None:
    row = conn.execute(select(resources).where(resources.c.arn == arn)).first()
    return _resource(row) if row else None


def list_resources(conn: Connection, kind: str, flt: ResourceFilter) -> list[Resource]:
    """One page of resources of ``kind``; ties in the sort key are broken by id."""
    c = resources.c
    conditions = [c.kind == kind]
    if flt.name_contains:
        conditions.append(func.lower(c.name).contains(flt.name_contains.lower(), autoescape=True))
    if flt.created_after is not None:
        conditions.append(c.created_at >= flt.created_after)
    if flt.created_before is not None:
        conditions.append(c.created_at < flt.created_before)
    if flt.modified_after is not None:
        conditions.append(c.modified_at > flt.modified_after)
    if flt.modified_before is not None:
        conditions.append(c.modified_at < flt.modified_before)
    if flt.statuses:
        conditions.append(c.status.in_(flt.statuses))
    column = {"name": c.name, "creation_time": c.created_at, "status": c.status}[flt.sort_by]
    order = [column.desc(), c.id.desc()] if flt.descending else [column.asc(), c.id.asc()]
    query = (
        select(resources)
        .where(and_(*conditions))
        .order_by(*order)
        .limit(flt.limit)
        .offset(flt.offset)
    )
    return [_resource(row) for row in conn.execute(query)]


def delete_resource(conn: Connection, kind: str, name: str) -> Resource:
    """Delete a resource with its history and tags; raises :class:`NotFound`."""
    found = get(conn, kind, name)
    if found is None:
        raise NotFound(f"{kind} {name}")
    conn.execute(delete(status_history).where(status_history.c.resource_id == found.id))
    conn.execute(delete(tags).where(tags.c.resource_arn == found.arn))
    conn.execute(delete(resources).where(resources.c.id == found.id))
    return found


def set_status(
    conn: Connection,
    kind: str,
    name: str,
    expected: str | None,
    new: str | None,
    *,
    message: str | None = None,
    now: datetime,
    secondary_status: str | None = None,
) -> None:
    """Move ``status`` from ``expected`` to ``new`` and record it, or raise.

    Raises :class:`NotFound` for an unknown resource and :class:`StatusConflict` when the stored
    status is not ``expected``. Whether the move is legal is the domain's
    ``TransitionTable``'s call, made by the service before it gets here.
    """
    c = resources.c
    current = c.status.is_(None) if expected is None else c.status == expected
    result = conn.execute(
        update(resources)
        .where(c.kind == kind, c.name == name, current)
        .values(status=new, status_message=message, modified_at=now)
        .returning(c.id)
    )
    row = result.first()
    if row is None:
        found = get(conn, kind, name)
        if found is None:
            raise NotFound(f"{kind} {name}")
        raise StatusConflict(kind, name, expected, found.status)
    conn.execute(
        insert(status_history).values(
            resource_id=row[0],
            status=new,
            secondary_status=secondary_status,
            message=message,
            at=now,
        )
    )


def write_state(
    conn: Connection,
    kind: str,
    name: str,
    state: dict[str, Any],
    *,
    expected_status: str | None,
    expected_version: int,
    now: datetime,
) -> Resource:
    """Replace the runtime state, compare-and-set on status plus version; bumps ``version``.

    Raises :class:`NotFound` for an unknown resource and :class:`StaleState` when the stored
    status or version is not the one the caller read.
    """
    c = resources.c
    current = c.status.is_(None) if expected_status is None else c.status == expected_status
    stored_version = func.coalesce(c.state["version"].as_integer(), 0)
    written = {**state, "version": expected_version + 1}
    row = conn.execute(
        update(resources)
        .where(c.kind == kind, c.name == name, current, stored_version == expected_version)
        .values(state=written, modified_at=now)
        .returning(c.id)
    ).first()
    found = get(conn, kind, name)
    if found is None:
        raise NotFound(f"{kind} {name}")
    if row is None:
        raise StaleState(kind, name, expected_status, expected_version, found.status, found.version)
    return found


def history(conn: Connection, kind: str, name: str) -> list[HistoryEntry]:
    """Every recorded status change of the resource, oldest first; raises :class:`NotFound`."""
    found = get(conn, kind, name)
    if found is None:
        raise NotFound(f"{kind} {name}")
    h = status_history.c
    rows = conn.execute(
        select(h.status, h.secondary_status, h.message, h.at)
        .where(h.resource_id == found.id)
        .order_by(h.id)
    )
    return [HistoryEntry(r.status, r.secondary_status, r.message, r.at) for r in rows]
