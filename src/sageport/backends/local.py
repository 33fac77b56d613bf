"""Hosts as processes on this machine, each owned by a launcher that outlives the server.

The backend itself keeps no state a restart would lose: a handle (run folder, launcher pid,
start time) and the files in the run folder say everything. The only in-memory state is the
``Popen`` of launchers this process started, kept so that they can be reaped (a zombie would
otherwise look alive forever).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sageport.backends import launcher as launcher_module
from sageport.backends import sandbox
from sageport.backends.base import (
    CHILD_FILE,
    EXIT_FILE,
    LAUNCHER_LOG_FILE,
    LOG_FILE,
    SPEC_FILE,
    ExitInfo,
    HostHandle,
    LaunchSpec,
    LogRecord,
    parse_log_line,
)

READ_CHUNK_BYTES = 1 << 20
"""At most this much log per ``read_log`` call, so one flood cannot stall the server."""

PROBE_TIMEOUT_S = 10.0
REAP_TIMEOUT_S = 2.0


INSTALL_HINT = (
    'install bubblewrap (apt-get install -y bubblewrap), or set sandbox = "off" in '
    "sageport.toml to run jobs unsandboxed with the server's privileges"
)
DEFAULT_SANDBOX_UID = 64055
"""The job's uid (and gid) when the server runs as root: no account of the host's, so a
job's files are told apart from everyone else's (``sandbox_uid`` in the settings)."""


def hidden_folders(data_dir: Path, home: Path | None = None) -> list[str]:
    """What a sandbox must not show: the data folder, or the whole home when it holds it
    (``~/.sageport``: the home's keys and history are the server user's too)."""
    data = data_dir.resolve()
    home = (home or Path.home()).resolve()
    return [str(home if data.is_relative_to(home) and home != Path("/") else data)]


class SandboxUnavailable(OSError):
    """``sandbox = "auto"`` and bubblewrap cannot sandbox here: the job must not run."""


def probe_sandbox(bwrap: str | None = None, uid: int = DEFAULT_SANDBOX_UID) -> tuple[bool, str]:
    """Runs ``true`` in a sandbox with the launcher's namespaces, privileges and kind of
    mounts; why not, if it fails."""
    path = bwrap or shutil.which("bwrap")
    if path is None:
        return False, "bubblewrap (bwrap) is not installed"
    argv = [path, "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    argv += [*sandbox.privilege_args(), "--ro-bind", "/", "/"]
    argv += ["--dev", "/dev", "--proc", "/proc"]
    argv += ["--tmpfs", "/tmp", "--dir", "/tmp/probe", "--new-session", "--"]
    if os.geteuid() == 0:
        argv += sandbox.user_shim((uid, uid))
    argv.append("true")
    try:
        done = subprocess.run(argv, capture_output=True, timeout=PROBE_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"bubblewrap could not run: {exc}"
    if done.returncode != 0:
        detail = done.stderr.decode("utf-8", "replace").strip() or f"exit {done.returncode}"
        return False, f"bubblewrap cannot create a sandbox here: {detail}"
    return True, f"bubblewrap at {path}"


CAP_DAC_OVERRIDE = 1


def read_only_holds(sandbox: bool) -> bool:
    """Whether a job's process is refused writes to a file without write permission.

    In the sandbox it always is (it runs with no capabilities, see the launcher);
    without one, it inherits this process's capabilities, so not when we hold that one (root).
    Hard links into the object store are only safe for a job when this is true.
    """
    if sandbox:
        return True
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return not (int(line.split()[1], 16) >> CAP_DAC_OVERRIDE) & 1
    except (OSError, ValueError, IndexError):
        pass
    return os.geteuid() != 0


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        with contextlib.suppress(ProcessLookupError):  # it may not have made its group yet
            os.kill(pgid, signum)
    except PermissionError:
        pass


class LocalBackend:
    """Runs each host under ``launcher.py`` with ``python`` (any Python 3.9+ will do).

    ``hidden``: folders no sandboxed process may see (the data folder, or the home holding
    it), mounted empty in each sandbox. ``uid``: whom a sandboxed process runs as when this
    server is root (otherwise it runs as this server's user, in a user namespace).
    """

    def __init__(
        self,
        python: str = sys.executable,
        bwrap: str | None = None,
        hidden: list[str] | None = None,
        uid: int = DEFAULT_SANDBOX_UID,
    ) -> None:
        self._python = python
        self._bwrap = bwrap
        self._hidden = [str(h) for h in hidden or []]
        self._uid = uid
        self._sandbox: tuple[bool, str] | None = None
        self._launchers: dict[int, subprocess.Popen[bytes]] = {}

    def sandbox_available(self) -> tuple[bool, str]:
        if self._sandbox is None:
            self._sandbox = probe_sandbox(self._bwrap, self._uid)
        return self._sandbox

    def start(self, spec: LaunchSpec) -> HostHandle:
        if spec.sandbox:
            available, why = self.sandbox_available()
            if not available:
                raise SandboxUnavailable(f"No sandbox for this job: {why}; {INSTALL_HINT}")
        run_dir = spec.run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        for stale in (EXIT_FILE, CHILD_FILE):
            (run_dir / stale).unlink(missing_ok=True)
        policy = {"hidden": self._hidden, "uid": self._uid, "gid": self._uid}
        launcher_module.write_json_atomic(run_dir / SPEC_FILE, {**spec.to_json(), **policy})
        env = dict(os.environ)
        if self._bwrap:  # the launcher finds bwrap on its PATH
            env["PATH"] = f"{Path(self._bwrap).parent}{os.pathsep}{env.get('PATH', '')}"
        script = str(Path(launcher_module.__file__).resolve())
        with open(run_dir / LAUNCHER_LOG_FILE, "ab") as out:
            proc = subprocess.Popen(
                # -S: the launcher is stdlib-only; skipping site saves ~15 ms per host start.
                [self._python, "-S", script, str(run_dir)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                cwd=run_dir,
                env=env,
                start_new_session=True,  # its own session: a dying server takes nothing along
            )
        self._launchers[proc.pid] = proc
        return HostHandle(run_dir=run_dir, launcher_pid=proc.pid, started_at=time.time())

    def poll(self, handle: HostHandle) -> ExitInfo | None:
        info = self._exit_file(handle)
        if info is not None:
            self._reap(handle)
            return info
        if self._launcher_alive(handle):
            return None
        info = self._exit_file(handle)  # it may have written the file just before exiting
        if info is not None:
            return info
        # Nobody will record this child's end: make sure nothing runs unobserved, and say so.
        pgid = self._child_pgid(handle)
        if pgid is not None:
            _signal_group(pgid, signal.SIGKILL)
        return ExitInfo(
            returncode=None,
            signal=None,
            ended_at=time.time(),
            reason=f"the launcher exited without recording an exit status{self._tail(handle)}",
        )

    def terminate(self, handle: HostHandle) -> None:
        if self._launcher_alive(handle):
            # The launcher forwards it to the child's group and arms the SIGKILL after grace.
            # Only the launcher itself: its group holds bwrap, whose death skips the grace.
            try:
                os.kill(handle.launcher_pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            else:
                return
        pgid = self._child_pgid(handle)
        if pgid is not None:
            _signal_group(pgid, signal.SIGTERM)

    def kill(self, handle: HostHandle) -> None:
        pgid = self._child_pgid(handle)
        init = self._child_pgid(handle, "init")
        if init is not None and _is_bwrap(init):  # the sandbox's init: all of it goes
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(init, signal.SIGKILL)
        if pgid is not None:
            _signal_group(pgid, signal.SIGKILL)
        elif self._launcher_alive(handle):
            # Not started yet (or bwrap still setting up): the launcher's group holds it all.
            _signal_group(handle.launcher_pid, signal.SIGKILL)

    def launcher_alive(self, handle: HostHandle) -> bool:
        """Whether the host's launcher still runs, for a handle an earlier server process
        started too. Not part of :class:`Backend`: the scheduler needs only ``poll`` (the
        launcher records the exit before it exits); this is for checks that nothing lingers."""
        return self._launcher_alive(handle)

    def read_log(self, handle: HostHandle, offset: int) -> tuple[list[LogRecord], int]:
        try:
            with open(handle.run_dir / LOG_FILE, "rb") as f:
                f.seek(offset)
                data = f.read(READ_CHUNK_BYTES)
        except FileNotFoundError:
            return [], offset
        end = data.rfind(b"\n") + 1  # only whole lines; the rest comes next time
        if end == 0 and len(data) == READ_CHUNK_BYTES:
            end = len(data)  # a line longer than a chunk cannot be ours: skip it
        records = [r for line in data[:end].splitlines() if (r := parse_log_line(line))]
        return records, offset + end

    def _exit_file(self, handle: HostHandle) -> ExitInfo | None:
        data = _read_json(handle.run_dir / EXIT_FILE)
        if data is None:
            return None
        try:
            return ExitInfo.from_json(data)
        except (KeyError, TypeError, ValueError):
            return None

    def _child_pgid(self, handle: HostHandle, key: str = "pgid") -> int | None:
        data = _read_json(handle.run_dir / CHILD_FILE)
        try:
            return None if data is None else int(data[key])
        except (KeyError, TypeError, ValueError):
            return None

    def _reap(self, handle: HostHandle) -> None:
        """Collects our launcher once its exit file exists (the file is its last act)."""
        proc = self._launchers.pop(handle.launcher_pid, None)
        if proc is not None:
            try:
                proc.wait(timeout=REAP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._launchers[handle.launcher_pid] = proc

    def _launcher_alive(self, handle: HostHandle) -> bool:
        proc = self._launchers.get(handle.launcher_pid)
        if proc is not None:
            return proc.poll() is None
        # Not our child (the server restarted): the pid must still be our launcher, running
        # for this run folder, and not a zombie or a recycled pid.
        proc_dir = Path("/proc") / str(handle.launcher_pid)
        try:
            cmdline = (proc_dir / "cmdline").read_bytes().split(b"\0")
            state = (proc_dir / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return _pid_exists(handle.launcher_pid) and not Path("/proc/self").exists()
        return str(handle.run_dir).encode() in cmdline and state not in ("Z", "X")

    def _tail(self, handle: HostHandle) -> str:
        try:
            text = (handle.run_dir / LAUNCHER_LOG_FILE).read_text("utf-8", "replace").strip()
        except OSError:
            return ""
        return f": {text[-500:]}" if text else ""


def _is_bwrap(pid: int) -> bool:
    """Whether ``pid`` is still a bubblewrap process (not a recycled pid)."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == "bwrap"
    except OSError:
        return False


def _pid_exists(pid: int) -> bool:
    """Fallback where /proc is not there (not Linux): can only say whether the pid exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
