"""The launcher: a small process that owns one host's user process and outlives the server.

Run as ``python launcher.py RUN_DIR`` (or ``python -m sageport.backends.launcher RUN_DIR``) in
a session of its own. It reads ``RUN_DIR/spec.json``, starts the child (inside bubblewrap when
asked), writes the child's stdout/stderr to ``log.jsonl`` line by line, forwards SIGTERM to
the child's process group (and SIGKILLs the group after the spec's grace period), and when the
child ends writes ``exit.json`` atomically. A server that restarts finds everything it needs in
these files, so a job never stays InProgress with nothing behind it.

Stdlib only, and imports nothing from sageport: it may run under the job's Python, which need
not have sageport installed. The file names are those of ``sageport.backends.base``.

Why these bubblewrap flags (see :func:`sandbox_argv`): a job is a tenant, not root.

- Its own PID, IPC and UTS namespaces (``--unshare-pid --unshare-ipc --unshare-uts``, a
  cgroup namespace where possible): it sees only its own processes (so no
  ``/proc/<server>/root``, no other job's ``environ``) and signals nobody else. There is no
  network namespace: ranks of a multi-host job talk over loopback.
- No capabilities and not root. As root, bwrap keeps only CAP_SETUID/SETGID/SETPCAP for a
  shim (``setpriv``, else a few lines of Python) that clears the groups and the bounding
  set and becomes ``uid``/``gid`` (the ``sandbox_uid`` setting) before it execs the user's
  program: the kernel then drops every capability. As another user, bwrap runs in a user
  namespace of its own (``--unshare-user --disable-userns``) with no capabilities. bwrap
  sets PR_SET_NO_NEW_PRIVS, so setuid programs do not elevate. Folders the job writes (its
  host folder, its ``/tmp``, its binds) are chowned to ``uid`` first; files
  with more than one link (channel files hard-linked to stored objects) never are.
- The host's root is mirrored read-only entry by entry (``/opt/ml`` must be created inside
  a read-only ``/opt``), except ``/proc`` (private), ``/dev`` (a minimal one, ``--dev``,
  plus the device nodes of the granted GPUs only, named by ``CUDA_VISIBLE_DEVICES``, and
  the NVIDIA control nodes), ``/tmp`` (``RUN_DIR/tmp``, disk-backed) and ``/dev/shm`` (a
  fresh tmpfs). ``hidden`` folders (the data folder, or the home that holds it) are empty
  tmpfs mounts: the job has no path to ``credentials.json``, the database, the objects or
  other jobs' folders. Its own folder is bound at ``/opt/ml``.
- Signals: with a PID namespace the pid bwrap reports (``--info-fd``) is the namespace's
  init (bwrap's reaper, which forwards nothing); the user's process is its only child,
  found in ``/proc/<init>/task/<init>/children``. SIGTERM goes to that child's process group
  (``--new-session`` makes it a group leader); SIGKILL of the init ends the whole namespace.
- ``--die-with-parent``: the sandbox dies with the launcher (the launcher must outlive the
  server, the job must not outlive its launcher, else nobody records its exit).
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
PASSWD_FILE = "passwd"
GROUP_FILE = "group"
SANDBOX_USER = "sageport-job"
NVIDIA_SHARED = ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset")
"""Device nodes every GPU process needs besides its own ``/dev/nvidia<index>``."""
SETPRIV = "/usr/bin/setpriv"
SHIM = (
    "import os,sys;u,g=int(sys.argv[1]),int(sys.argv[2]);os.setgroups([]);os.setgid(g);"
    "os.setuid(u);os.execvp(sys.argv[3],sys.argv[3:])"
)
"""The same as ``setpriv`` where util-linux lacks it (bounding set left: no caps remain)."""
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


def sandbox_user(spec: dict[str, Any]) -> tuple[int, int] | None:
    """(uid, gid) the job becomes; None when bwrap runs unprivileged (it stays this user)."""
    if os.geteuid() != 0:
        return None
    return int(spec.get("uid", 64055)), int(spec.get("gid", spec.get("uid", 64055)))


def gpu_devices(env: dict[str, Any]) -> list[str]:
    """``/dev/nvidia<i>`` of the granted GPUs (``CUDA_VISIBLE_DEVICES``, which
    ``runtime.process_env.gpu_env`` sets last), plus the shared nodes; none for no GPU."""
    granted = [i for i in str(env.get("CUDA_VISIBLE_DEVICES", "")).split(",") if i.isdigit()]
    if not granted:
        return []
    return [f"/dev/nvidia{i}" for i in granted] + [f"/dev/{n}" for n in NVIDIA_SHARED]


def privilege_args(spec: dict[str, Any] | None = None) -> list[str]:
    """bwrap flags that leave the job no capabilities (see the module docstring)."""
    if os.geteuid() != 0:
        return ["--unshare-user", "--disable-userns"]
    # only what the shim needs to become the job's user; it ends with none at all
    keep = ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP")
    return ["--cap-drop", "ALL", *(x for c in keep for x in ("--cap-add", c))]


def user_shim(user: tuple[int, int]) -> list[str]:
    """The command prefix that becomes ``user`` and drops every capability."""
    uid, gid = user
    if os.path.exists(SETPRIV):
        drop = ["--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--"]
        return [SETPRIV, f"--reuid={uid}", f"--regid={gid}", *drop]
    return [sys.executable, "-S", "-I", "-c", SHIM, str(uid), str(gid)]


def _account_files(run_dir: Path, user: tuple[int, int]) -> list[str]:
    """An /etc/passwd and /etc/group that name the job's user (tools ask who they are)."""
    uid, gid = user
    args = []
    for name, line in (
        (PASSWD_FILE, f"{SANDBOX_USER}:x:{uid}:{gid}:sageport job:/tmp:/usr/sbin/nologin"),
        (GROUP_FILE, f"{SANDBOX_USER}:x:{gid}:"),
    ):
        with contextlib.suppress(OSError):
            text = Path("/etc", name).read_text(encoding="utf-8", errors="replace")
            (run_dir / name).write_text(text.rstrip("\n") + "\n" + line + "\n", encoding="utf-8")
            args += ["--ro-bind", str(run_dir / name), f"/etc/{name}"]
    return args


def give_to(user: tuple[int, int], spec: dict[str, Any], run_dir: Path) -> None:
    """Chown what the job writes to its user: its host folder (a script may replace an input
    file with its own version, as in a container), its /tmp, and each bind source (a shared
    one, such as the endpoints' overlay folder, only when it is not the user's yet). Multiply
    linked files are hard links to stored objects and keep their owner."""
    host_dir = Path(spec["host_dir"])
    (run_dir / TMP_DIR).mkdir(exist_ok=True)
    for _, dst in spec.get("extra_binds", []):  # bwrap would make missing ones 0700, root's
        for base, real in ((SANDBOX_ROOT, host_dir), ("/tmp", run_dir / TMP_DIR)):
            if _is_under(str(dst), [base]):
                with contextlib.suppress(OSError):
                    (real / os.path.relpath(dst, base)).mkdir(parents=True, exist_ok=True)
    _chown_tree(host_dir, user, skip=set())
    _chown_tree(run_dir / TMP_DIR, user, skip=set())
    for src, _ in spec.get("extra_binds", []):
        with contextlib.suppress(OSError):
            if os.stat(src).st_uid != user[0]:
                _chown_tree(Path(src), user, skip=set())


def _chown_tree(root: Path, user: tuple[int, int], skip: set[Path]) -> None:
    uid, gid = user
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = [d for d in dirs if here / d not in skip]
        for name in [".", *dirs, *files]:
            path = here / name if name != "." else here
            with contextlib.suppress(OSError):
                st = os.lstat(path)
                if (st.st_uid, st.st_gid) != user and (st.st_nlink == 1 or _is_dir(st)):
                    os.lchown(path, uid, gid)


def _is_dir(st: os.stat_result) -> bool:
    return (st.st_mode & 0o170000) == 0o040000


def sandbox_argv(spec: dict[str, Any], run_dir: Path, bwrap: str, info_fd: int) -> list[str]:
    """The bubblewrap command line for ``spec`` (flags explained in the module docstring)."""
    binds = sorted(((str(s), str(d)) for s, d in spec.get("extra_binds", [])), key=lambda b: b[1])
    hidden = [str(h) for h in spec.get("hidden", []) if os.path.isdir(h)]
    writable = [SANDBOX_ROOT, "/tmp"]
    targets = [SANDBOX_ROOT] + [d for _, d in binds if not _is_under(d, writable)]
    tmp = run_dir / TMP_DIR
    tmp.mkdir(exist_ok=True)
    hosts = run_dir / HOSTS_FILE
    hosts.write_text(hosts_text(dict(spec.get("hostnames", {}))), encoding="utf-8")
    user = sandbox_user(spec)
    if user is not None:  # a folder the job's user cannot enter anyway (/root) hides nothing
        hidden += closed_folders(program_roots(spec["argv"][0]), hidden)
    args = [bwrap, "--die-with-parent", "--new-session", "--info-fd", str(info_fd)]
    args += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    args += privilege_args(spec)
    args += mirror_args("/", targets)
    for path in hidden:  # the data folder (or the home holding it): empty here
        args += ["--tmpfs", path]
    args += ["--dev", "/dev", "--perms", "1777", "--tmpfs", "/dev/shm"]
    for device in gpu_devices(spec.get("env", {})):
        args += ["--dev-bind-try", device, device]
    args += ["--proc", "/proc", "--bind", str(tmp), "/tmp"]
    for path in tmp_roots(spec["argv"][0], ["/tmp", *hidden]):
        args += [*open_parents(path, hidden), "--ro-bind", path, path]
    args += ["--bind", str(spec["host_dir"]), SANDBOX_ROOT]
    for src, dst in binds:
        args += [*open_parents(dst, hidden), "--bind", src, dst]
    args += ["--ro-bind", str(hosts), "/etc/hosts"]
    if user is not None:
        args += _account_files(run_dir, user)
    args += ["--chdir", str(spec["cwd"]), "--"]
    if user is not None:
        args += user_shim(user)
    return args + [str(a) for a in spec["argv"]]


def open_parents(path: str, hidden: list[str]) -> list[str]:
    """Folders on the way to ``path`` that bwrap makes (inside a hidden folder, or on the
    sandbox's root where the host has none, as for a LocalPath such as /data/in), made
    enterable by the job's user: bwrap would make them 0700, as root's."""
    args: list[str] = []
    parts = Path(path).parts
    for i in range(2, len(parts)):
        folder = os.path.join(*parts[:i])
        in_hidden = any(folder.startswith(h.rstrip("/") + "/") for h in hidden)
        made_here = not _is_under(folder, [SANDBOX_ROOT, "/tmp"]) and not os.path.isdir(folder)
        if in_hidden or made_here:
            args += ["--perms", "0755", "--dir", folder]
    return args


def tmp_roots(program: str, hidden: list[str] | None = None) -> list[str]:
    """Host folders under ``/tmp`` (or another ``hidden`` folder) the child cannot run
    without, outermost only.

    The sandbox's ``/tmp`` is private, so an interpreter in a venv under ``/tmp`` (a CI
    workspace, a throw-away checkout) would vanish inside it ("execvp ... No such file");
    so would one under a hidden home. These are the program's installation (``bin/..`` for
    a program in a ``bin`` folder, else its folder; through its symlink too), this Python's
    prefixes (the server's, which jobs use by default) and the folder sageport's code is
    imported from (the pre-flight and shims run from there); each found under a hidden
    folder is bound read-only at the same path.
    """
    bases = hidden if hidden is not None else ["/tmp"]
    roots: list[str] = []
    for path in program_roots(program):
        inside = any(path.startswith(b.rstrip("/") + "/") for b in bases)
        if inside and os.path.isdir(path) and not _is_under(path, roots):
            roots.append(path)
    return roots


def program_roots(program: str) -> list[str]:
    """The folders :func:`tmp_roots` considers, normalised and sorted."""
    candidates = [sys.prefix, sys.base_prefix, str(Path(__file__).resolve().parents[2])]
    if os.path.isabs(program):
        for path in (program, os.path.realpath(program)):
            folder = os.path.dirname(path)
            candidates.append(
                os.path.dirname(folder) if os.path.basename(folder) == "bin" else folder
            )
    return sorted({os.path.normpath(c) for c in candidates})


def closed_folders(paths: list[str], hidden: list[str]) -> list[str]:
    """For each path, its outermost ancestor that others may not enter (mode without o+x,
    such as a 0700 ``/root`` holding a pyenv Python), unless already hidden: hidden in the
    sandbox, so that the path itself can be bound read-only inside a folder bwrap made."""
    found: list[str] = []
    for path in paths:
        parts = Path(path).parts
        for i in range(2, len(parts)):
            folder = os.path.join(*parts[:i])
            if _is_under(folder, hidden + found):
                break
            try:
                if not os.stat(folder).st_mode & 0o001:
                    found.append(folder)
                    break
            except OSError:
                break
    return found


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
        self._pin(spec)
        try:
            if sandbox:
                bwrap = shutil.which("bwrap")
                if bwrap is None:
                    return self._exit(None, None, "the sandbox was requested but bwrap is missing")
                user = sandbox_user(spec)
                if user is not None:
                    give_to(user, spec, self.run_dir)
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
