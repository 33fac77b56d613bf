"""A fresh database per test: SQLite always, and PostgreSQL too when one is named.

Set ``SAGEPORT_TEST_POSTGRES_URL`` (e.g. ``postgresql+psycopg://sp:sp@127.0.0.1/sageport``)
to run every store test against PostgreSQL as well; its tables are dropped after each test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sageport.store.database import Database
from sageport.store.tables import metadata

POSTGRES_URL = os.environ.get("SAGEPORT_TEST_POSTGRES_URL", "")


@pytest.fixture(params=["sqlite", *(["postgresql"] if POSTGRES_URL else [])])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    url = f"sqlite:///{tmp_path / 'test.db'}" if request.param == "sqlite" else POSTGRES_URL
    database = Database(url)
    database.create_all()
    yield database
    if request.param == "postgresql":
        metadata.drop_all(database.engine)
    database.close()
