"""Tags, keyed by resource ARN (the Tag API addresses resources by ARN), in insertion order."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, delete, func, insert, select, update

from sageport.store.tables import tags


def put(conn: Connection, arn: str, pairs: Iterable[tuple[str, str]]) -> None:
    """Add tags, overwriting the value of a key that exists (AddTags semantics)."""
    for key, value in pairs:
        changed = conn.execute(
            update(tags).where(tags.c.resource_arn == arn, tags.c.key == key).values(value=value)
        ).rowcount
        if not changed:
            conn.execute(insert(tags).values(resource_arn=arn, key=key, value=value))


def list_tags(
    conn: Connection, arn: str, limit: int | None = None, offset: int = 0
) -> list[tuple[str, str]]:
    query = select(tags.c.key, tags.c.value).where(tags.c.resource_arn == arn).order_by(tags.c.id)
    if limit is not None:
        query = query.limit(limit).offset(offset)
    return [(row.key, row.value) for row in conn.execute(query)]


def count(conn: Connection, arn: str) -> int:
    return int(conn.execute(select(func.count()).where(tags.c.resource_arn == arn)).scalar_one())


def keys(conn: Connection, arn: str) -> set[str]:
    return {row.key for row in conn.execute(select(tags.c.key).where(tags.c.resource_arn == arn))}


def remove(conn: Connection, arn: str, tag_keys: Iterable[str]) -> None:
    """Delete the named keys; keys the resource does not have are ignored, as in SageMaker."""
    wanted = list(tag_keys)
    if wanted:
        conn.execute(delete(tags).where(tags.c.resource_arn == arn, tags.c.key.in_(wanted)))


def remove_all(conn: Connection, arn: str) -> None:
    conn.execute(delete(tags).where(tags.c.resource_arn == arn))
