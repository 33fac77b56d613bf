from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from sageport.store import resources
from sageport.store.database import Database
from sageport.store.resources import ResourceFilter


def test_sqlite_pragmas_are_set(db: Database) -> None:
    if not db.is_sqlite:
        pytest.skip("SQLite pragmas: this database is PostgreSQL")
    with db.begin() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 10_000


def test_create_all_is_idempotent_and_data_survives_reopen(db: Database) -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    with db.begin() as conn:
        resources.create(conn, kind="Model", name="m", arn="arn:m", spec={"a": now}, now=now)
    db.close()
    again = Database(db.url)
    again.create_all()
    with again.begin() as conn:
        found = resources.get(conn, "Model", "m")
    again.close()
    assert found is not None
    assert found.created_at == now
    assert found.created_at.tzinfo is not None
    assert found.spec == {"a": now.isoformat()}


def test_failed_transaction_rolls_back(db: Database) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    try:
        with db.begin() as conn:
            resources.create(conn, kind="Model", name="m", arn="arn:m", spec={}, now=now)
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    with db.begin() as conn:
        assert resources.get(conn, "Model", "m") is None


def test_concurrent_read_then_write_transactions_do_not_fail(db: Database) -> None:
    """Writers begin IMMEDIATE, so check-then-insert races wait instead of SQLITE_BUSY."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    errors: list[BaseException] = []

    def writer(worker: int) -> None:
        try:
            for i in range(20):
                with db.begin() as conn:
                    name = f"m{worker}-{i}"
                    assert resources.get(conn, "Model", name) is None
                    resources.create(
                        conn, kind="Model", name=name, arn=f"arn:{name}", spec={}, now=now
                    )
                with db.read() as conn:
                    assert resources.get(conn, "Model", name) is not None
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with db.read() as conn:
        count = len(resources.list_resources(conn, "Model", ResourceFilter(limit=1000)))
    assert count == 120


def test_reads_do_not_wait_for_an_open_writer(db: Database) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    with db.begin() as writer:
        resources.create(writer, kind="Model", name="m", arn="arn:m", spec={}, now=now)
        started = time.monotonic()
        with db.read() as reader:
            # the uncommitted row is invisible, and the read did not block on the write lock
            assert resources.get(reader, "Model", "m") is None
        assert time.monotonic() - started < 1.0
