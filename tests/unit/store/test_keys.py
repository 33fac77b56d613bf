from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sageport.store import keys
from sageport.store.database import Database

T0 = datetime(2026, 1, 1, tzinfo=UTC)
JOB = "arn:aws:sagemaker:us-east-1:000000000000:training-job/a"


def test_a_key_is_live_until_its_owner_is_revoked(db: Database) -> None:
    with db.begin() as conn:
        keys.insert_key(conn, "SPJAAA", "s1", JOB, T0)
        keys.insert_key(conn, "SPJBBB", "s2", "arn:other", T0)
    with db.read() as conn:
        live = keys.live_key_of(conn, JOB)
        assert live is not None
        assert (live.access_key_id, live.secret_access_key, live.live) == ("SPJAAA", "s1", True)
        assert keys.get_key(conn, "SPJNONE") is None
    with db.begin() as conn:
        assert keys.revoke_owner(conn, JOB, T0 + timedelta(seconds=5)) == ["SPJAAA"]
        assert keys.revoke_owner(conn, JOB, T0 + timedelta(seconds=9)) == []  # idempotent
    with db.read() as conn:
        assert keys.live_key_of(conn, JOB) is None
        gone = keys.get_key(conn, "SPJAAA")
        assert gone is not None
        assert gone.revoked_at == T0 + timedelta(seconds=5)  # the first revocation's time
        assert not gone.live
        other = keys.get_key(conn, "SPJBBB")
        assert other is not None
        assert other.live  # another owner's key is untouched


def test_the_secret_stays_out_of_repr(db: Database) -> None:
    with db.begin() as conn:
        stored = keys.insert_key(conn, "SPJCCC", "very-secret", JOB, T0)
    assert "very-secret" not in repr(stored)
