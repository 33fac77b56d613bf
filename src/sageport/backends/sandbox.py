"""The sandbox a host's process runs in: bubblewrap's command line, built from the spec.

Stdlib only, and imports nothing from sageport, like :mod:`sageport.backends.launcher`, which
loads it from its own folder when it runs as a script (it may run under the job's Python).

Why these bubblewrap flags (see :func:`sandbox_argv`): a job is a tenant, not root.

- Its own PID, IPC and UTS namespaces (``--unshare-pid --unshare-ipc --unshare-uts``, a
  cgroup namespace where possible): it sees only its own processes (so no
  ``/proc/<server>/root``, no other job's ``environ``) and signals nobody else. It shares the
  machine's network (ranks of a multi-host job talk over loopback), unless the spec says
  ``network_isolated`` (``EnableNetworkIsolation``): then ``--unshare-net`` gives it a network
  namespace whose only interface is its own loopback (bwrap brings ``lo`` up), so it
  reaches neither the server nor anything else, while its own processes can still talk.
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

import contextlib
import os
import sys
from pathlib import Path
from typing import Any

HOSTS_FILE = "hosts"
TMP_DIR = "tmp"
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
    if spec.get("network_isolated"):
        args += ["--unshare-net"]
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
    """Folders on the way to ``path`` that bwrap makes (inside a hidden folder, inside the
    sandbox's private /tmp, which holds none of the host's, as for a checkout's venv at
    /tmp/ci/.venv, or on the sandbox's root where the host has none, as for a LocalPath such
    as /data/in), made enterable by the job's user: bwrap would make them 0700, as root's."""
    args: list[str] = []
    parts = Path(path).parts
    for i in range(2, len(parts)):
        folder = os.path.join(*parts[:i])
        in_hidden = any(folder.startswith(h.rstrip("/") + "/") for h in [*hidden, "/tmp"])
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
