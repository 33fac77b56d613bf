"""Live servers with settings of their own, and the AWS errors their clients raise.

Shared by the API tests: :func:`start_server` writes ``sageport.toml`` and starts a server
on it, :func:`module_server` is the fixture of a test module that wants one for itself,
:func:`apply_sageport_env` gives a test the environment ``eval "$(sageport env)"`` sets, and
:func:`aws_error` expects a boto3 call to fail with one AWS error code, and
:func:`dead_pid` is the pid of a process that has ended (for a stale ``server.json``).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from sageport.cli.process import ServerProcess

#: four fake GPUs, and CPU/memory accounting loose enough that GPUs are the only limit
FAKE_GPUS = 'fake_gpus = "4"\ncpu_overcommit = 100.0\nmemory_overcommit = 100.0\n'


def start_server(data_dir: Path, settings: str = FAKE_GPUS, **kwargs: Any) -> ServerProcess:
    """A started server whose ``sageport.toml`` is ``settings`` (``kwargs`` go to
    :class:`ServerProcess`); the caller stops it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "sageport.toml").write_text(settings)
    proc = ServerProcess(data_dir, **kwargs)
    proc.start()
    return proc


def apply_sageport_env(server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    """For this test only, the environment ``eval "$(sageport env --data-dir ...)"`` sets.

    boto3 keeps one default session per process, with the credentials it resolved first, and
    ``sagemaker.Session()`` reuses it: in a test process that talked to another server before,
    it would sign with that server's keys. A user's process has one environment; a test gets a
    fresh default session to match.
    """
    import boto3

    from sageport.cli.serverinfo import env_lines
    from sageport.settings import Settings

    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"):
        monkeypatch.delenv(name, raising=False)
    for line in env_lines(Settings(data_dir=server.data_dir)):
        key, _, value = line.removeprefix("export ").partition("=")
        monkeypatch.setenv(key, value.strip("'"))
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)


def module_server(
    label: str, settings: str = FAKE_GPUS, name: str = "server"
) -> Callable[..., Any]:
    """A module-scoped fixture ``name``: a server of the module's own on ``settings``.

    Use as ``server = module_server("routing")`` at the top of a test module (and pass
    ``name`` when the fixture has another one).
    """

    @pytest.fixture(scope="module", name=name)
    def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
        proc = start_server(tmp_path_factory.mktemp(label) / "data", settings)
        yield proc
        proc.stop()

    return server


@contextmanager
def aws_error(code: str) -> Iterator[pytest.ExceptionInfo[ClientError]]:
    """Expect the block to raise a :class:`ClientError` whose ``Error.Code`` is ``code``."""
    with pytest.raises(ClientError) as exc:
        yield exc
    assert exc.value.response["Error"]["Code"] == code


def dead_pid() -> int:
    """The pid of a process that has just ended (a crashed server's record names one)."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)
