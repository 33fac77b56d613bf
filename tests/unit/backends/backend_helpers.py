"""Waiting helpers shared by the backend tests (real processes take real, short, time)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from sageport.backends.base import ExitInfo, HostHandle, LaunchSpec
from sageport.backends.local import LocalBackend

MakeSpec = Callable[..., LaunchSpec]
"""``make_spec(script, sandbox=False, **fields)`` (the fixture in conftest)."""


def wait_exit(backend: LocalBackend, handle: HostHandle, timeout: float = 10.0) -> ExitInfo:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = backend.poll(handle)
        if info is not None:
            return info
        time.sleep(0.02)
    raise AssertionError(f"host did not exit within {timeout}s")


def wait_file(path: Path, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return path.read_text()
        time.sleep(0.02)
    raise AssertionError(f"{path} did not appear within {timeout}s")


def running(pid: int) -> bool:
    """True while ``pid`` runs (a zombie nobody reaped counts as ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")
