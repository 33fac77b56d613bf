"""Job access keys: minted per running resource, revoked when it ends.

Functions take a :class:`sqlalchemy.Connection` as the other repositories do. A key is
live while ``revoked_at`` is null; :func:`revoke_owner` stamps every live key of an owner
at once and returns their ids, so the caller can drop them from whatever it caches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from sageport.store.tables import access_keys


@dataclass(frozen=True)
class StoredKey:
    """One minted key as stored (the secret stays out of ``repr``)."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    owner_arn: str
    created_at: datetime
    revoked_at: datetime | None

    @property
    def live(self) -> bool:
        return self.revoked_at is None


def _key(row: Row[Any]) -> StoredKey:
    m = row._mapping
    return StoredKey(
        access_key_id=m["access_key_id"],
        secret_access_key=m["secret_access_key"],
        owner_arn=m["owner_arn"],
        created_at=m["created_at"],
        revoked_at=m["revoked_at"],
    )


def insert_key(
    conn: Connection, access_key_id: str, secret_access_key: str, owner_arn: str, now: datetime
) -> StoredKey:
    conn.execute(
        insert(access_keys).values(
            access_key_id=access_key_id,
            secret_access_key=secret_access_key,
            owner_arn=owner_arn,
            created_at=now,
            revoked_at=None,
        )
    )
    return StoredKey(access_key_id, secret_access_key, owner_arn, now, None)


def get_key(conn: Connection, access_key_id: str) -> StoredKey | None:
    """The key of this id, live or revoked; None if it was never minted."""
    row = conn.execute(
        select(access_keys).where(access_keys.c.access_key_id == access_key_id)
    ).first()
    return _key(row) if row is not None else None


def live_key_of(conn: Connection, owner_arn: str) -> StoredKey | None:
    """The owner's live key (the newest, should there ever be two), or None."""
    row = conn.execute(
        select(access_keys)
        .where(access_keys.c.owner_arn == owner_arn, access_keys.c.revoked_at.is_(None))
        .order_by(access_keys.c.id.desc())
    ).first()
    return _key(row) if row is not None else None


def revoke_owner(conn: Connection, owner_arn: str, now: datetime) -> list[str]:
    """Revoke every live key of ``owner_arn``; the ids revoked (none when already done)."""
    live = access_keys.c.revoked_at.is_(None)
    ids = [
        str(r.access_key_id)
        for r in conn.execute(
            select(access_keys.c.access_key_id).where(access_keys.c.owner_arn == owner_arn, live)
        )
    ]
    if ids:
        conn.execute(
            update(access_keys)
            .where(access_keys.c.access_key_id.in_(ids), live)
            .values(revoked_at=now)
        )
    return ids
