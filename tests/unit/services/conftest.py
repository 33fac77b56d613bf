"""Services over a fresh SQLite database and a fake clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sageport.clock import FakeClock
from sageport.settings import Settings
from sageport.store.database import Database


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, region="eu-west-1", account_id="123456789012")


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    database = Database(settings.db_url)
    database.create_all()
    yield database
    database.close()
