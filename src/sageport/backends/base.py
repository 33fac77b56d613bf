"""What a backend is: start one host's process, watch it, stop it, read its log.

The scheduler speaks only this interface; ``local`` runs hosts as processes on this machine,
``fake`` scripts them for tests, and a Ray backend can follow. Everything that crosses the
interface is plain data that survives a JSON round trip, because the scheduler stores handles
in the database and, after the server restarts, goes on polling the hosts it started (a handle
is all ``poll``, ``terminate`` and ``read_log`` need; nothing is re-registered).

The files a launcher keeps in ``run_dir`` are part of this contract (the launcher is
stdlib-only and cannot import this module, so the names are repeated there):

- ``spec.json``: the :class:`LaunchSpec`, written by the backend before the launcher starts.
- ``log.jsonl``: one JSON object per line, ``{"t": epoch_ms, "s": stream, "m": text}``.
- ``child.json``: ``{"pid": ..., "pgid": ...}`` of the user's process, once it runs.
- ``exit.json``: ``{"returncode", "signal", "ended_at", "reason"}``, written atomically last.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, Protocol

SPEC_FILE: Final = "spec.json"
LOG_FILE: Final = "log.jsonl"
CHILD_FILE: Final = "child.json"
EXIT_FILE: Final = "exit.json"
LAUNCHER_LOG_FILE: Final = "launcher.log"
"""The launcher's own stdout/stderr (a traceback if it crashed), quoted in a vanish reason."""

DEFAULT_MAX_LOG_BYTES: Final = 1 << 30
"""1 GiB of log per host, then one truncation record: a flood must not fill the disk."""

TRUNCATION_NOTE: Final = "log truncated"
"""How the ``system`` record the launcher writes when a host's log reaches its cap starts."""

DEFAULT_STOP_GRACE_S: Final = 120.0
"""SageMaker's grace between SIGTERM and SIGKILL on StopTrainingJob."""

Stream = Literal["stdout", "stderr", "system"]
"""``system`` marks records the launcher writes itself (truncation, failure to start)."""


@dataclass(frozen=True)
class LaunchSpec:
    """Everything needed to start one host's process; the launcher reads it from spec.json.

    ``env`` is the child's complete environment: the backend adds nothing to it. ``cwd`` and
    every path in ``argv``/``env`` are as the child sees them: under ``/opt/ml`` when
    ``sandbox`` is true, real host paths otherwise. ``extra_binds`` (host path, sandbox path)
    are honoured only in the sandbox; without one the caller must point the child at host
    paths itself.
    """

    host_dir: Path
    argv: list[str]
    env: dict[str, str]
    cwd: str
    run_dir: Path
    sandbox: bool = False
    hostnames: dict[str, str] = field(default_factory=dict)
    extra_binds: list[tuple[str, str]] = field(default_factory=list)
    max_log_bytes: int = DEFAULT_MAX_LOG_BYTES
    stop_grace_s: float = DEFAULT_STOP_GRACE_S
    """After a SIGTERM the launcher itself SIGKILLs the process group once this has passed,
    so the escalation happens even if the server is down meanwhile."""
    cpus: list[int] = field(default_factory=list)
    """Logical CPUs the host's processes are pinned to (``cpu_affinity``); empty: not pinned."""
    network_isolated: bool = False
    """A network namespace of its own (only its own loopback): ``EnableNetworkIsolation``.
    Honoured only in the sandbox; the launcher refuses to start the host without one."""

    def to_json(self) -> dict[str, Any]:
        return {
            "host_dir": str(self.host_dir),
            "argv": list(self.argv),
            "env": dict(self.env),
            "cwd": self.cwd,
            "run_dir": str(self.run_dir),
            "sandbox": self.sandbox,
            "hostnames": dict(self.hostnames),
            "extra_binds": [[src, dst] for src, dst in self.extra_binds],
            "max_log_bytes": self.max_log_bytes,
            "stop_grace_s": self.stop_grace_s,
            "cpus": list(self.cpus),
            "network_isolated": self.network_isolated,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LaunchSpec:
        return cls(
            host_dir=Path(data["host_dir"]),
            argv=[str(a) for a in data["argv"]],
            env={str(k): str(v) for k, v in data["env"].items()},
            cwd=str(data["cwd"]),
            run_dir=Path(data["run_dir"]),
            sandbox=bool(data.get("sandbox", False)),
            hostnames={str(k): str(v) for k, v in data.get("hostnames", {}).items()},
            extra_binds=[(str(s), str(d)) for s, d in data.get("extra_binds", [])],
            max_log_bytes=int(data.get("max_log_bytes", DEFAULT_MAX_LOG_BYTES)),
            stop_grace_s=float(data.get("stop_grace_s", DEFAULT_STOP_GRACE_S)),
            cpus=[int(c) for c in data.get("cpus", [])],
            network_isolated=bool(data.get("network_isolated", False)),
        )


@dataclass(frozen=True)
class HostHandle:
    """How to find a started host again, also from a freshly restarted server."""

    run_dir: Path
    launcher_pid: int
    started_at: float
    """Epoch seconds when the backend started the launcher."""

    def to_json(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir),
            "launcher_pid": self.launcher_pid,
            "started_at": self.started_at,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HostHandle:
        return cls(
            run_dir=Path(data["run_dir"]),
            launcher_pid=int(data["launcher_pid"]),
            started_at=float(data["started_at"]),
        )


@dataclass(frozen=True)
class ExitInfo:
    """How a host's process ended.

    ``returncode`` is shell-style: the exit status, or 128 + N when signal N killed it (so 137
    is SIGKILL, typically the OOM killer); ``signal`` is N in that case. Inside bubblewrap only
    the shell-style status is visible, so there a child that calls ``exit(137)`` also reads as
    signal 9. ``returncode`` is None when the child never ran or nobody saw it end; ``reason``
    then says why, in words fit for a job's status message.
    """

    returncode: int | None
    signal: int | None
    ended_at: float
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "returncode": self.returncode,
            "signal": self.signal,
            "ended_at": self.ended_at,
            "reason": self.reason,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExitInfo:
        rc = data.get("returncode")
        sig = data.get("signal")
        reason = data.get("reason")
        return cls(
            returncode=None if rc is None else int(rc),
            signal=None if sig is None else int(sig),
            ended_at=float(data["ended_at"]),
            reason=None if reason is None else str(reason),
        )


@dataclass(frozen=True)
class LogRecord:
    """One line of a host's output, as the launcher recorded it."""

    timestamp_ms: int
    stream: Stream
    message: str


def parse_log_line(line: bytes) -> LogRecord | None:
    """One ``log.jsonl`` line → a record; None for a line that is not one (never raises)."""
    try:
        data = json.loads(line)
        stream = data["s"]
        if stream not in ("stdout", "stderr", "system"):
            return None
        return LogRecord(timestamp_ms=int(data["t"]), stream=stream, message=str(data["m"]))
    except (ValueError, KeyError, TypeError):
        return None


class Backend(Protocol):
    """Where a host's process runs. Every method returns promptly; none waits for the job."""

    def sandbox_available(self) -> tuple[bool, str]:
        """Whether ``LaunchSpec.sandbox`` can be honoured, and if not, why (for the job log).

        Ask before building the environment: without a sandbox the child needs
        ``SAGEMAKER_BASE_DIR`` and host paths instead of ``/opt/ml``.
        """
        ...

    def start(self, spec: LaunchSpec) -> HostHandle:
        """Start the host's process; it keeps running if the server dies."""
        ...

    def poll(self, handle: HostHandle) -> ExitInfo | None:
        """None while running; how it ended otherwise (also when the launcher vanished)."""
        ...

    def terminate(self, handle: HostHandle) -> None:
        """SIGTERM to the user's process group; SIGKILL follows after ``stop_grace_s``."""
        ...

    def kill(self, handle: HostHandle) -> None:
        """SIGKILL the user's whole process group now."""
        ...

    def read_log(self, handle: HostHandle, offset: int) -> tuple[list[LogRecord], int]:
        """Records written since byte ``offset``, and the offset to pass next time."""
        ...
