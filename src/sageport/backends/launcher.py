"""The launcher: a small process that owns one host's user process and outlives the server.

Run as ``python launcher.py RUN_DIR`` (or ``python -m sageport.backends.launcher RUN_DIR``) in
a session of its own. It reads ``RUN_DIR/spec.json``, starts the child (inside bubblewrap when
asked), writes the child's stdout/stderr to ``log.jsonl`` line by line, forwards SIGTERM to
the child's process group (and SIGKILLs the group after the spec's grace period), and when the
child ends writes ``exit.json`` atomically. A server that restarts finds everything it needs in
these files, so a job never stays InProgress with nothing behind it.

Stdlib only, and imports nothing from sageport: it may run under the job's Python, which need
not have sageport installed. The file names are those of ``sageport.backends.base``.

The sandbox's bubblewrap flags, and why each, are :mod:`sageport.backends.sandbox`'s.
"""

from __future__ import annotations

import codecs
import collections
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

if __package__:  # imported by the server or a test
    from sageport.backends import sandbox as sandboxing
else:  # run as a script (``python -S launcher.py``): its own folder is ``sys.path[0]``
    import sandbox as sandboxing  # type: ignore[import-not-found, no-redef]

SPEC_FILE = "spec.json"
LOG_FILE = "log.jsonl"
CHILD_FILE = "child.json"
EXIT_FILE = "exit.json"

TRUNCATION_NOTE = "log truncated"
KEPT_TAIL_LINES = 20
"""After truncation, the last stderr lines are still kept and written at the end: the
traceback of a crash is what the job's FailureReason quotes."""

MAX_LINE_BYTES = 64 * 1024
"""Longer lines are split: CloudWatch events hold at most 256 KiB, and memory stays bounded."""

DRAIN_TIMEOUT_S = 5.0
"""How long to wait for output after the child exits (a process that escaped the group may
still hold the pipes open; its output is then lost rather than the exit never recorded)."""

CHILD_WAIT_S = 5.0
"""How long bwrap's init may take to fork the user's process."""


STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


@contextlib.contextmanager
def main_thread_signals() -> Iterator[None]:
    """Threads started inside never take SIGTERM or SIGINT (a thread inherits its creator's
    signal mask), so the kernel delivers those to the main thread. Delivered to a pump thread
    instead, a stop would not interrupt the main thread's ``waitpid`` and its handler would
    only run once the child had ended by itself. Start no process inside: it would inherit
    the mask too.
    """
    old = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Readers see the old file or the whole new one, never half of it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class LogWriter:
    """Appends JSON-line records, thread-safe, and stops at ``max_bytes`` with one notice.

    The process keeps running after the cap; only its output is discarded, except for the
    last :data:`KEPT_TAIL_LINES` stderr lines, which ``close`` appends.
    """

    def __init__(self, path: Path, max_bytes: int) -> None:
        self._file = open(path, "ab")  # noqa: SIM115 - lives as long as the launcher
        self._lock = threading.Lock()
        self._max = max_bytes
        self._written = self._file.tell()
        self._truncated = False
        self._dropped = 0
        self._tail: collections.deque[str] = collections.deque(maxlen=KEPT_TAIL_LINES)
        self.last_stderr = ""

    def write(self, stream: str, message: str) -> None:
        if stream == "stderr" and message.strip():
            self.last_stderr = message.strip()[:1000]
        with self._lock:
            if self._file.closed:  # a pump that outlived the drain timeout
                return
            if self._truncated:
                self._dropped += 1
                if stream == "stderr":
                    self._tail.append(message)
                return
            line = self._encode(stream, message)
            if self._written + len(line) > self._max:
                self._truncated = True
                self._dropped += 1
                if stream == "stderr":
                    self._tail.append(message)
                note = f"{TRUNCATION_NOTE}: the limit of {self._max} bytes was reached"
                line = self._encode("system", note + "; further output is discarded")
            self._file.write(line)
            self._file.flush()
            self._written += len(line)

    def close(self) -> None:
        with self._lock:
            if self._truncated:
                lines = [
                    self._encode(
                        "system",
                        f"{self._dropped} lines were discarded after the log was truncated; "
                        f"the last {len(self._tail)} of them from stderr follow",
                    )
                ]
                lines += [self._encode("stderr", m) for m in self._tail]
                self._file.write(b"".join(lines))
            self._file.close()

    @staticmethod
    def _encode(stream: str, message: str) -> bytes:
        record = {"t": int(time.time() * 1000), "s": stream, "m": message}
        return json.dumps(record, ensure_ascii=False).encode("utf-8", "replace") + b"\n"


def pump(pipe: IO[bytes], stream: str, log: LogWriter) -> None:
    """Copies one pipe into the log line by line until EOF; splits over-long lines."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    while True:
        chunk = pipe.readline(MAX_LINE_BYTES)
        if not chunk:
            break
        text = decoder.decode(chunk)
        if text.endswith("\n"):
            text = text[:-1].removesuffix("\r")
        log.write(stream, text)
    tail = decoder.decode(b"", final=True)
    if tail:
        log.write(stream, tail)


def _user_process(init: int) -> int | None:
    """The outside pid of the sandbox init's child (the user's process), once it is forked."""
    deadline = time.monotonic() + CHILD_WAIT_S
    children = Path(f"/proc/{init}/task/{init}/children")
    while time.monotonic() < deadline:
        try:
            pids = children.read_text().split()
        except OSError:
            return None  # the init is gone already
        if pids:
            return int(pids[0])
        time.sleep(0.001)
    return None


def _die_with_launcher() -> None:
    """In the unsandboxed child: SIGKILL me when the launcher dies (Linux prctl)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _read_info(fd: int) -> int | None:
    """The ``child-pid`` bwrap writes on ``--info-fd``; None if bwrap failed first (EOF)."""
    data = b""
    while True:
        chunk = os.read(fd, 4096)
        if not chunk:
            return None
        data += chunk
        try:
            return int(json.loads(data)["child-pid"])
        except (ValueError, KeyError):
            continue


RESERVE_FILE = ".exit.reserve"
RESERVE_BYTES = 4096
"""Space set aside at start for the exit record: a disk that fills while the job runs must
not cost the one fact the server needs (a rewrite in place allocates nothing)."""


def reserve_exit_file(run_dir: Path) -> Path | None:
    path = run_dir / RESERVE_FILE
    try:
        with open(path, "wb") as f:
            f.write(b" " * RESERVE_BYTES)
            f.flush()
            os.fsync(f.fileno())
    except OSError:
        return None
    return path


def record_exit(run_dir: Path, info: dict[str, Any], reserve: Path | None) -> int:
    """Writes ``exit.json``; when the disk is full, into the reserved file (the same JSON,
    padded). If even that fails, says why on stderr (``launcher.log``, which the server quotes
    when it finds no exit file) and exits 1: the server then reports that the launcher could
    not record the exit status, never a status it made up."""
    try:
        write_json_atomic(run_dir / EXIT_FILE, info)
    except OSError as exc:
        data = json.dumps({**info, "note": f"recorded in reserved space: {exc}"}).encode()
        try:
            if reserve is None or len(data) > RESERVE_BYTES:
                raise exc
            with open(reserve, "r+b") as f:
                f.write(data.ljust(RESERVE_BYTES))
                f.flush()
                os.fsync(f.fileno())
            os.replace(reserve, run_dir / EXIT_FILE)
        except OSError as again:
            print(f"the launcher could not record the exit status: {again}", file=sys.stderr)
            return 1
        return 0
    if reserve is not None:
        with contextlib.suppress(OSError):
            reserve.unlink()
    return 0


class Launcher:
    """One run: start, watch, record. ``run`` returns the launcher's own exit code."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.spec: dict[str, Any] = json.loads((run_dir / SPEC_FILE).read_text("utf-8"))
        self.log = LogWriter(run_dir / LOG_FILE, int(self.spec.get("max_log_bytes", 1 << 30)))
        self.pgid: int | None = None
        self.init_pid: int | None = None
        """The sandbox's PID-namespace init: SIGKILL to it ends everything inside."""
        self.stop_requested = threading.Event()
        self.child_ended = threading.Event()
        self._kill_timer: threading.Timer | None = None
        self._reserve = reserve_exit_file(run_dir)

    def on_signal(self, signum: int, _frame: object) -> None:
        """Forward to the child's group; arm the SIGKILL that ends the grace period."""
        self.stop_requested.set()
        self._signal_group(signum)
        if self._kill_timer is None:
            grace = float(self.spec.get("stop_grace_s", 120.0))
            self._kill_timer = threading.Timer(grace, self._signal_group, (signal.SIGKILL,))
            self._kill_timer.daemon = True
            with main_thread_signals():
                self._kill_timer.start()

    def _signal_group(self, signum: int) -> None:
        if signum == signal.SIGKILL and self.init_pid is not None and not self.child_ended.is_set():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.init_pid, signum)  # escaped the group or not: all of it goes
        if self.pgid is None:
            return
        try:
            os.killpg(self.pgid, signum)
        except ProcessLookupError:
            # Not its own group yet (bwrap calls setsid while it sets the sandbox up): the
            # process itself, or a stop that comes right after the start would be lost.
            # Never once it has ended: its pid may belong to another process by then.
            if not self.child_ended.is_set():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pgid, signum)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.on_signal)
        signal.signal(signal.SIGINT, self.on_signal)
        try:
            info = self._run_child()
        except Exception as exc:  # the launcher must always leave an exit file
            self.log.write("system", f"the launcher failed: {exc!r}")
            info = self._exit(None, None, f"the launcher failed: {exc}")
        if self._kill_timer is not None:
            self._kill_timer.cancel()
        self.log.close()
        return record_exit(self.run_dir, info, self._reserve)

    def _pin(self, spec: dict[str, Any]) -> None:
        """``cpu_affinity``: pin the launcher to the host's CPUs; the child inherits them."""
        cpus = [int(c) for c in spec.get("cpus") or []]
        if not cpus:
            return
        try:
            os.sched_setaffinity(0, cpus)
        except (AttributeError, OSError, ValueError) as exc:  # not Linux, or CPUs gone
            self.log.write("system", f"could not pin the job to CPUs {cpus}: {exc}")

    def _exit(self, rc: int | None, sig: int | None, reason: str | None) -> dict[str, Any]:
        return {"returncode": rc, "signal": sig, "ended_at": time.time(), "reason": reason}

    def _run_child(self) -> dict[str, Any]:
        if self.stop_requested.is_set():
            return self._exit(None, None, "stopped before the process started")
        spec = self.spec
        sandbox = bool(spec.get("sandbox"))
        common: dict[str, Any] = {
            "stdin": subprocess.DEVNULL,
            "stdout": subprocess.PIPE,
            "stderr": subprocess.PIPE,
            "env": dict(spec["env"]),
        }
        info_r = info_w = -1
        if spec.get("network_isolated") and not sandbox:
            return self._exit(None, None, "network isolation was requested without a sandbox")
        self._pin(spec)
        try:
            if sandbox:
                bwrap = shutil.which("bwrap")
                if bwrap is None:
                    return self._exit(None, None, "the sandbox was requested but bwrap is missing")
                user = sandboxing.sandbox_user(spec)
                if user is not None:
                    sandboxing.give_to(user, spec, self.run_dir)
                info_r, info_w = os.pipe()
                argv = sandboxing.sandbox_argv(spec, self.run_dir, bwrap, info_w)
                proc = subprocess.Popen(argv, pass_fds=(info_w,), **common)
                os.close(info_w)
            else:
                argv = [str(a) for a in spec["argv"]]
                proc = subprocess.Popen(
                    argv,
                    cwd=spec["cwd"],
                    start_new_session=True,
                    preexec_fn=_die_with_launcher,  # noqa: PLW1509 - no threads exist yet
                    **common,
                )
        except OSError as exc:
            return self._exit(None, None, f"could not start {spec['argv'][:1]}: {exc}")
        pumps = [
            threading.Thread(target=pump, args=(proc.stdout, "stdout", self.log), daemon=True),
            threading.Thread(target=pump, args=(proc.stderr, "stderr", self.log), daemon=True),
        ]
        with main_thread_signals():
            for t in pumps:
                t.start()
        child_pid: int | None = proc.pid
        if sandbox:
            self.init_pid = _read_info(info_r)
            os.close(info_r)
            child_pid = None if self.init_pid is None else _user_process(self.init_pid)
        if child_pid is not None:
            record = {"pid": child_pid, "pgid": child_pid}
            if self.init_pid is not None:
                record["init"] = self.init_pid
            write_json_atomic(self.run_dir / CHILD_FILE, record)
            self.pgid = child_pid
            if (
                self.stop_requested.is_set()
            ):  # a SIGTERM arrived before we knew whom to forward it to
                self._signal_group(signal.SIGTERM)
        rc = proc.wait()
        self.child_ended.set()
        # Like a container whose entrypoint ended: whatever is left in the group goes too.
        self._signal_group(signal.SIGKILL)
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        for t in pumps:
            t.join(max(0.0, deadline - time.monotonic()))
        # bwrap reports a failed setup (a bad bind, a missing program) as exit 1 with its own
        # message last on stderr; the pid it announced was never the user's process.
        bwrap_failed = rc == 1 and self.log.last_stderr.startswith("bwrap: ")
        if sandbox and (self.init_pid is None or bwrap_failed):
            return self._exit(None, None, f"the sandbox failed to start: {self.log.last_stderr}")
        if rc < 0:
            return self._exit(128 - rc, -rc, None)
        if sandbox and rc > 128 and rc - 128 in signal.valid_signals():
            return self._exit(rc, rc - 128, None)  # bwrap reports a signal death as 128 + N
        return self._exit(rc, None, None)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv if argv is None else argv
    if len(args) != 2:
        print("usage: launcher.py RUN_DIR", file=sys.stderr)
        return 2
    run_dir = Path(args[1])
    try:
        launcher = Launcher(run_dir)
    except (OSError, ValueError) as exc:
        write_json_atomic(
            run_dir / EXIT_FILE,
            {"returncode": None, "signal": None, "ended_at": time.time(), "reason": str(exc)},
        )
        return 1
    return launcher.run()


if __name__ == "__main__":
    sys.exit(main())
