"""An in-memory backend for scheduler tests: hosts "run" until the test says how they end."""

from __future__ import annotations

import signal
from dataclasses import dataclass, field

from sageport.backends.base import ExitInfo, HostHandle, LaunchSpec, LogRecord, Stream


@dataclass
class FakeHost:
    """One started host: its spec, its log so far, and its exit once scripted."""

    spec: LaunchSpec
    log: list[LogRecord] = field(default_factory=list)
    exit: ExitInfo | None = None
    terminated: bool = False
    killed: bool = False


class FakeBackend:
    """Implements ``Backend`` without processes.

    ``exits`` scripts how the next started hosts end (one entry per ``start``, in order;
    None keeps a host running until ``finish``). ``honour_terminate`` decides whether a
    SIGTERM ends a host (signal 15) or is ignored, so that tests can reach ``kill``.
    """

    def __init__(
        self,
        *,
        sandbox: bool = True,
        exits: list[ExitInfo | None] | None = None,
        honour_terminate: bool = True,
        now: float = 1_767_225_600.0,
    ) -> None:
        self.sandbox = sandbox
        self.honour_terminate = honour_terminate
        self.now = now
        self.hosts: dict[int, FakeHost] = {}
        self._exits = list(exits or [])
        self._next_pid = 1000

    def sandbox_available(self) -> tuple[bool, str]:
        return (True, "fake sandbox") if self.sandbox else (False, "no sandbox in this fake")

    def start(self, spec: LaunchSpec) -> HostHandle:
        self._next_pid += 1
        host = FakeHost(spec=spec, exit=self._exits.pop(0) if self._exits else None)
        self.hosts[self._next_pid] = host
        return HostHandle(run_dir=spec.run_dir, launcher_pid=self._next_pid, started_at=self.now)

    def poll(self, handle: HostHandle) -> ExitInfo | None:
        host = self.hosts.get(handle.launcher_pid)
        if host is None:
            return ExitInfo(None, None, self.now, "the launcher exited without an exit status")
        return host.exit

    def terminate(self, handle: HostHandle) -> None:
        host = self._host(handle)
        host.terminated = True
        if self.honour_terminate and host.exit is None:
            host.exit = ExitInfo(128 + signal.SIGTERM, signal.SIGTERM, self.now)

    def kill(self, handle: HostHandle) -> None:
        host = self._host(handle)
        host.killed = True
        if host.exit is None:
            host.exit = ExitInfo(128 + signal.SIGKILL, signal.SIGKILL, self.now)

    def read_log(self, handle: HostHandle, offset: int) -> tuple[list[LogRecord], int]:
        """Offsets count records here, not bytes; callers treat them as opaque."""
        log = self._host(handle).log
        return log[offset:], len(log)

    # -- what tests call -----------------------------------------------------------------

    def finish(self, handle: HostHandle, returncode: int = 0, sig: int | None = None) -> None:
        self._host(handle).exit = ExitInfo(returncode, sig, self.now)

    def emit(self, handle: HostHandle, message: str, stream: Stream = "stdout") -> None:
        self._host(handle).log.append(LogRecord(int(self.now * 1000), stream, message))

    def vanish(self, handle: HostHandle) -> None:
        """The launcher died without an exit file (``poll`` then says so)."""
        self.hosts.pop(handle.launcher_pid, None)

    def _host(self, handle: HostHandle) -> FakeHost:
        return self.hosts[handle.launcher_pid]
