"""The fake backend behaves like the protocol says, so scheduler tests can trust it."""

from __future__ import annotations

import signal
from pathlib import Path

from sageport.backends.base import Backend, ExitInfo, LaunchSpec
from sageport.backends.fake import FakeBackend


def _spec(tmp_path: Path) -> LaunchSpec:
    return LaunchSpec(tmp_path, ["train"], {}, "/opt/ml/code", tmp_path / "run")


def test_scripted_exit_and_log(tmp_path: Path) -> None:
    backend: Backend = FakeBackend(exits=[None, ExitInfo(2, None, 5.0, None)])
    assert isinstance(backend, FakeBackend)
    running = backend.start(_spec(tmp_path))
    failing = backend.start(_spec(tmp_path))
    assert backend.poll(running) is None
    assert backend.poll(failing) == ExitInfo(2, None, 5.0, None)
    backend.emit(running, "epoch 1")
    backend.emit(running, "warning", "stderr")
    records, offset = backend.read_log(running, 0)
    assert [(r.stream, r.message) for r in records] == [
        ("stdout", "epoch 1"),
        ("stderr", "warning"),
    ]
    assert backend.read_log(running, offset) == ([], 2)
    backend.finish(running, 0)
    info = backend.poll(running)
    assert info is not None
    assert info.returncode == 0


def test_terminate_then_kill(tmp_path: Path) -> None:
    backend = FakeBackend(honour_terminate=False)
    handle = backend.start(_spec(tmp_path))
    backend.terminate(handle)
    assert backend.poll(handle) is None
    backend.kill(handle)
    info = backend.poll(handle)
    assert info is not None
    assert (info.returncode, info.signal) == (137, signal.SIGKILL)


def test_vanish(tmp_path: Path) -> None:
    backend = FakeBackend(sandbox=False)
    handle = backend.start(_spec(tmp_path))
    assert backend.poll(handle) is None
    backend.vanish(handle)
    info = backend.poll(handle)
    assert info is not None
    assert info.returncode is None
    assert backend.sandbox_available()[0] is False
