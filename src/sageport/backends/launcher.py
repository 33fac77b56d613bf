"""The launcher: a small process that owns one host's user process and outlives the server.

Run as ``python launcher.py RUN_DIR`` (or ``python -m sageport.backends.launcher RUN_DIR``) in
a session of its own. It reads ``RUN_DIR/spec.json``, starts the child (inside bubblewrap when
asked), writes the child's stdout/stderr to ``log.jsonl`` line by line, forwards SIGTERM to
the child's process group (and SIGKILLs the group after the spec's grace period), and when the
child ends writes ``exit.json`` atomically. A server that restarts finds everything it needs in
these files, so a job never stays InProgress with nothing behind it.

Stdlib only, and imports nothing from sageport: it may run under the job's Python, which need
not have sageport installed. The file names are those of ``sageport.backends.base``.

Why these bubblewrap flags (see :func:`sandbox_argv`):

- The host's root is mirrored read-only entry by entry (not ``--ro-bind / /``), because the
  mount point ``/opt/ml`` must be created and the host's ``/opt`` is read-only; ``/opt`` is a
  fresh directory holding read-only binds of the host's ``/opt/*`` plus our writable ``/opt/ml``.
  The host's real ``/opt/ml`` is never touched.
- ``--dev-bind /dev /dev``: GPU device nodes (``/dev/nvidia*``) must stay visible.
- ``--proc /proc`` and a private, disk-backed ``/tmp`` (``RUN_DIR/tmp``, not a RAM tmpfs).
- No ``--unshare-pid`` and no ``--unshare-net``: ranks of a multi-host job talk over loopback,
  and without a PID namespace the pid bwrap reports (``--info-fd``) is the user process itself,
  whose process group we can signal; SIGTERM must reach the user process and not bwrap, whose
  death would SIGKILL the sandbox without the grace period.
- ``--new-session``: the user process leads its own session and process group (terminate and
  kill signal that group; it also blocks TIOCSTI).
- ``--die-with-parent``: the child dies with the launcher (the launcher must outlive the server,
  the job must not outlive its launcher, else nobody records its exit).
- ``--cap-drop CAP_DAC_OVERRIDE`` when run as root: read-only files stay read-only for the
  job. Channel files are hard links to the stored objects (made read-only), so a script that
  opens its input for writing gets EACCES instead of changing the object in the store.
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

SPEC_FILE = "spec.json"
LOG_FILE = "log.jsonl"
CHILD_FILE = "child.json"
EXIT_FILE = "exit.json"
HOSTS_FILE = "hosts"
TMP_DIR = "tmp"

TRUNCATION_NOTE = "log truncated"
KEPT_TAIL_LINES = 20
"""After truncation, the last stderr lines are still kept and written at the end: the
traceback of a crash is what the job's FailureReason quotes."""

MAX_LINE_BYTES = 64 * 1024
"""Longer lines are split: CloudWatch events hold at most 256 KiB, and memory stays bounded."""

DRAIN_TIMEOUT_S = 5.0
"""How long to wait for output after the child exits (a process that escaped the group may
still hold the pipes open; its output is then lost rather than the exit never recorded)."""

SANDBOX_ROOT = "/opt/ml"
PRIVATE_TOP = ("proc", "dev", "tmp")
"""Top-level folders the sandbox gets its own version of instead of the host's."""


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


def hosts_text(hostnames: dict[str, str]) -> str:
    """An /etc/hosts that resolves algo-1..N, then the host's own entries."""
    by_ip: dict[str, list[str]] = {}
    for name, ip in hostnames.items():
        by_ip.setdefault(ip, []).append(name)
    lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback"]
    lines += [f"{ip} {' '.join(names)}" for ip, names in by_ip.items()]
    with contextlib.suppress(OSError):
        lines.append(Path("/etc/hosts").read_text(encoding="utf-8", errors="replace"))
    return "\n".join(lines) + "\n"


def _is_under(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def mirror_args(folder: str, targets: list[str]) -> list[str]:
    """Read-only binds of ``folder``'s entries, recreating folders on the way to ``targets``.

    A target's own entry is left out (its bind comes later); bwrap creates missing parents.
    """
    args = [] if folder == "/" else ["--dir", folder]
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return args
    for name in names:
        path = os.path.join(folder, name)
        if (folder == "/" and name in PRIVATE_TOP) or path in targets:
            continue
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path) and any(t.startswith(path + "/") for t in targets):
            args += mirror_args(path, targets)
        else:
            args += ["--ro-bind-try", path, path]
    return args


def sandbox_argv(spec: dict[str, Any], run_dir: Path, bwrap: str, info_fd: int) -> list[str]:
    """The bubblewrap command line for ``spec`` (flags explained in the module docstring)."""
    binds = sorted(((str(s), str(d)) for s, d in spec.get("extra_binds", [])), key=lambda b: b[1])
    writable = [SANDBOX_ROOT, "/tmp"]
    targets = [SANDBOX_ROOT] + [d for _, d in binds if not _is_under(d, writable)]
    tmp = run_dir / TMP_DIR
    tmp.mkdir(exist_ok=True)
    hosts = run_dir / HOSTS_FILE
    hosts.write_text(hosts_text(dict(spec.get("hostnames", {}))), encoding="utf-8")
    args = [bwrap, "--die-with-parent", "--new-session", "--info-fd", str(info_fd)]
    args += privilege_args()
    args += mirror_args("/", targets)
    args += ["--dev-bind", "/dev", "/dev", "--proc", "/proc", "--bind", str(tmp), "/tmp"]
    for path in tmp_roots(spec["argv"][0]):
        args += ["--ro-bind", path, path]
    args += ["--bind", str(spec["host_dir"]), SANDBOX_ROOT]
    for src, dst in binds:
        args += ["--bind", src, dst]
    args += ["--ro-bind", str(hosts), "/etc/hosts", "--chdir", str(spec["cwd"]), "--"]
    return args + [str(a) for a in spec["argv"]]


def tmp_roots(program: str) -> list[str]:
    """Host folders under ``/tmp`` the child cannot run without, outermost only.

    The sandbox's ``/tmp`` is private, so an interpreter in a venv under ``/tmp`` (a CI
    workspace, a throw-away checkout) would vanish inside it ("execvp ... No such file").
    These are the program's installation (``bin/..`` for a program in a ``bin`` folder, else
    its folder; through its symlink too), this Python's prefixes (the server's, which jobs use
    by default) and the folder sageport's code is imported from (the pre-flight and shims run
    from there); each found under ``/tmp`` is bound read-only at the same path.
    """
    candidates = [sys.prefix, sys.base_prefix, str(Path(__file__).resolve().parents[2])]
    if os.path.isabs(program):
        for path in (program, os.path.realpath(program)):
            folder = os.path.dirname(path)
            candidates.append(
                os.path.dirname(folder) if os.path.basename(folder) == "bin" else folder
            )
    roots: list[str] = []
    for path in sorted({os.path.normpath(c) for c in candidates}):
        if path.startswith("/tmp/") and os.path.isdir(path) and not _is_under(path, roots):
            roots.append(path)
    return roots


def privilege_args() -> list[str]:
    """bwrap flags that keep root in the sandbox from writing files marked read-only."""
    return ["--cap-drop", "CAP_DAC_OVERRIDE"] if os.geteuid() == 0 else []


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


class Launcher:
    """One run: start, watch, record. ``run`` returns the launcher's own exit code."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.spec: dict[str, Any] = json.loads((run_dir / SPEC_FILE).read_text("utf-8"))
        self.log = LogWriter(run_dir / LOG_FILE, int(self.spec.get("max_log_bytes", 1 << 30)))
        self.pgid: int | None = None
        self.stop_requested = threading.Event()
        self.child_ended = threading.Event()
        self._kill_timer: threading.Timer | None = None

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
        write_json_atomic(self.run_dir / EXIT_FILE, info)
        return 0

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
        self._pin(spec)
        try:
            if sandbox:
                bwrap = shutil.which("bwrap")
                if bwrap is None:
                    return self._exit(None, None, "the sandbox was requested but bwrap is missing")
                info_r, info_w = os.pipe()
                argv = sandbox_argv(spec, self.run_dir, bwrap, info_w)
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
        child_pid = _read_info(info_r) if sandbox else proc.pid
        if sandbox:
            os.close(info_r)
        if child_pid is not None:
            write_json_atomic(self.run_dir / CHILD_FILE, {"pid": child_pid, "pgid": child_pid})
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
        if sandbox and (child_pid is None or bwrap_failed):
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
