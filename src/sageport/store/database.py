"""The database handle: one SQLAlchemy engine, built from a URL, never global.

SQLite (the default, a file in the data folder) is opened in WAL mode so that readers — the
API's worker threads, ``sageport logs -f`` — never wait for the scheduler's writes; a
``postgresql+psycopg://`` URL works unchanged because every query goes through SQLAlchemy Core.
This package is the only place in sageport that imports SQLAlchemy.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import OperationalError

from sageport.errors import DatabaseFull
from sageport.store.tables import metadata

__all__ = ["Connection", "Database", "dumps"]

#: SQLite's "database or disk is full" (``SQLITE_FULL``), and PostgreSQL's ``disk_full``.
SQLITE_FULL = 13
POSTGRES_DISK_FULL = "53100"

#: How long a SQLite writer waits for another writer's lock before failing, in ms.
SQLITE_BUSY_TIMEOUT_MS = 10_000


def _json_default(value: object) -> str:
    """Specs are validated requests; their timestamps arrive as datetimes and are kept as ISO."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> str:
    """The JSON encoding used for every JSON column."""
    return json.dumps(value, default=_json_default, separators=(",", ":"))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not pysqlite, decide when a transaction begins (see _sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    """Writers take SQLite's write lock up front (``BEGIN IMMEDIATE``).

    A deferred transaction that reads and then writes fails at once with ``SQLITE_BUSY``
    when another writer committed in between (the busy timeout does not apply to that
    upgrade), so every read-then-write (compare-and-set, check-then-insert) would be racy.
    Read-only transactions stay deferred and never block a writer under WAL.
    """
    mode = "DEFERRED" if conn.get_execution_options().get("sageport_readonly") else "IMMEDIATE"
    conn.exec_driver_sql(f"BEGIN {mode}")


class Database:
    """An engine plus the two ways sageport uses it: a transaction, or a read connection."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"json_serializer": dumps}
        if self.is_sqlite:
            # Handlers run in worker threads; each gets its own pooled connection.
            kwargs["connect_args"] = {"check_same_thread": False}
        self.engine: Engine = create_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin)

    def create_all(self) -> None:
        """Create missing tables (idempotent); migrations can come when the schema settles."""
        metadata.create_all(self.engine)

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A write transaction: committed on success, rolled back on error.

        A disk (or quota) too full to write to is :class:`~sageport.errors.DatabaseFull`,
        here for every writer: the transaction was rolled back, so nothing of it is stored,
        and the next one succeeds once there is room again.
        """
        try:
            with self.engine.begin() as conn:
                yield conn
        except OperationalError as exc:
            if not self._is_full(exc):
                raise
            raise DatabaseFull(
                f"The sageport database ({self._where()}) has no space left to store this: its "
                "disk is full. Nothing was stored; free space there and retry."
            ) from exc

    @staticmethod
    def _is_full(exc: OperationalError) -> bool:
        orig = exc.orig
        if getattr(orig, "sqlite_errorcode", None) == SQLITE_FULL:
            return True
        return getattr(orig, "sqlstate", None) == POSTGRES_DISK_FULL

    def _where(self) -> str:
        if self.is_sqlite:
            return str(self.engine.url.database or "in memory")
        return self.engine.url.render_as_string(hide_password=True)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reads only: one consistent snapshot that blocks no writer."""
        with self.engine.connect() as raw:
            conn = raw.execution_options(sageport_readonly=True)
            with conn.begin():
                yield conn

    def close(self) -> None:
        self.engine.dispose()
