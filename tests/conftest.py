"""Fixtures: a real ``sageport serve`` process on loopback, and boto3 clients pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sageport.cli.process import ServerProcess


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the whole session; tests use unique resource names."""
    proc = ServerProcess(tmp_path_factory.mktemp("sageport-data"))
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server of its own, for tests that restart it or count what it holds."""
    proc = ServerProcess(tmp_path / "data")
    proc.start()
    yield proc
    proc.stop()
