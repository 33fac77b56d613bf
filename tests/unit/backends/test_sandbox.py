"""LocalBackend inside bubblewrap: /opt/ml is the host folder, algo-N resolve, the host is safe."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pytest
from backend_helpers import MakeSpec, running, wait_exit, wait_file

from sageport.backends.local import LocalBackend, probe_sandbox
from sageport.backends.sandbox import sandbox_argv, tmp_roots

AVAILABLE, WHY = probe_sandbox()
needs_sandbox = pytest.mark.skipif(not AVAILABLE, reason=f"no sandbox: {WHY}")


@needs_sandbox
def test_opt_ml_is_the_host_folder(backend: LocalBackend, make_spec: MakeSpec) -> None:
    host_had_opt_ml = os.path.exists("/opt/ml")
    spec = make_spec(
        """
        import os, socket
        os.makedirs("/opt/ml/model", exist_ok=True)
        open("/opt/ml/model/x.txt", "w").write("weights")
        print(os.getcwd())
        print(socket.gethostbyname("algo-2"))
        print(open("/opt/ml/processing/input/data/in.txt").read())
        open("/tmp/scratch", "w").write("private")
        """,
        sandbox=True,
        hostnames={"algo-1": "127.0.0.1", "algo-2": "127.0.0.1"},
        extra_binds=[(str(_input_dir(make_spec)), "/opt/ml/processing/input/data")],
    )
    handle = backend.start(spec)
    info = wait_exit(backend, handle)
    records, _ = backend.read_log(handle, 0)
    assert info.returncode == 0, records
    assert [r.message for r in records] == ["/opt/ml/code", "127.0.0.1", "hello"]
    assert (spec.host_dir / "model" / "x.txt").read_text() == "weights"
    assert os.path.exists("/opt/ml") == host_had_opt_ml
    assert not Path("/tmp/scratch").exists()


SLEEPER = b"sleep\x001000.5\x00"


def _cmdline(pid: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _input_dir(make_spec: MakeSpec) -> Path:
    base = make_spec("pass\n").run_dir.parent / "input"
    base.mkdir(exist_ok=True)
    (base / "in.txt").write_text("hello")
    return base


@needs_sandbox
def test_terminate_and_kill_in_sandbox(backend: LocalBackend, make_spec: MakeSpec) -> None:
    spec = make_spec(
        """
        import signal, subprocess, time
        signal.signal(signal.SIGTERM, lambda *a: open("/opt/ml/got-term", "w").write("1"))
        child = subprocess.Popen(["sleep", "1000.5"])
        open("/opt/ml/ready", "w").write(str(child.pid))  # a pid of the sandbox's namespace
        time.sleep(1000)
        """,
        sandbox=True,
    )
    handle = backend.start(spec)
    assert int(wait_file(spec.host_dir / "ready")) < 10  # its own PID namespace
    (grandchild,) = [p for p in os.listdir("/proc") if p.isdigit() and _cmdline(p) == SLEEPER]
    grandchild = int(grandchild)
    backend.terminate(handle)
    wait_file(spec.host_dir / "got-term")
    assert backend.poll(handle) is None  # the handler did not exit, bwrap is still up
    backend.kill(handle)
    info = wait_exit(backend, handle)
    assert (info.returncode, info.signal) == (137, signal.SIGKILL)
    time.sleep(0.1)
    assert not running(grandchild)


@needs_sandbox
def test_bad_sandbox_reports_why(backend: LocalBackend, make_spec: MakeSpec) -> None:
    spec = make_spec("pass\n", sandbox=True, extra_binds=[("/nonexistent/src", "/opt/ml/x")])
    info = wait_exit(backend, backend.start(spec))
    assert info.returncode is None
    assert info.reason is not None
    assert "sandbox failed to start" in info.reason
    assert "/nonexistent/src" in info.reason


def test_sandbox_argv_mirrors_the_root_and_binds_opt_ml(tmp_path: Path) -> None:
    spec = {
        "host_dir": str(tmp_path / "host"),
        "argv": ["python", "train.py"],
        "cwd": "/opt/ml/code",
        "hostnames": {"algo-1": "127.0.0.1", "algo-2": "127.0.0.1"},
        "extra_binds": [["/data/in", "/opt/ml/processing/input"]],
    }
    argv = sandbox_argv(spec, tmp_path, "/usr/bin/bwrap", 5)
    pairs = list(itertools.pairwise(argv))
    assert ("--bind", str(tmp_path / "host")) in pairs
    assert ("--ro-bind-try", "/usr") in pairs or ("--symlink", "usr/bin") in pairs
    assert ("--info-fd", "5") in pairs
    assert ("--chdir", "/opt/ml/code") in pairs
    assert argv[-3:] == ["--", "python", "train.py"]
    assert "/opt/ml" not in argv[: argv.index(str(tmp_path / "host"))]  # no ro-bind over it
    hosts = (tmp_path / "hosts").read_text().splitlines()
    assert hosts[2] == "127.0.0.1 algo-1 algo-2"
    assert json.dumps(argv)  # plain strings only


def test_an_interpreter_under_tmp_is_bound_into_the_private_tmp(tmp_path: Path) -> None:
    """The sandbox's /tmp is its own, so a venv there would vanish for the job."""
    venv = Path(tempfile.mkdtemp(prefix="sageport-venv-", dir="/tmp"))
    try:
        (venv / "bin").mkdir()
        python = venv / "bin" / "python"
        python.symlink_to(sys.executable)
        (venv / "lib").mkdir()
        roots = tmp_roots(str(python))
        assert str(venv) in roots
        assert all(root.startswith("/tmp/") for root in roots)
        assert tmp_roots("/usr/bin/python3") == tmp_roots("python3")  # only our own prefixes

        spec = {"host_dir": str(tmp_path / "host"), "argv": [str(python), "train.py"], "cwd": "/"}
        argv = sandbox_argv(spec, tmp_path, "/usr/bin/bwrap", 5)
        pairs = list(itertools.pairwise(argv))
        assert ("--ro-bind", str(venv)) in pairs
        # after the private /tmp is mounted, or the bind would be hidden under it
        assert argv.index(str(venv)) > argv.index(str(tmp_path / "tmp"))
    finally:
        shutil.rmtree(venv)


def test_the_folders_above_a_venv_deep_in_tmp_are_enterable(tmp_path: Path) -> None:
    """A checkout at /tmp/ci with its .venv: bwrap would make /tmp/ci in the private /tmp
    as root's 0700, and the job's user could not reach its own interpreter."""
    top = Path(tempfile.mkdtemp(prefix="sageport-ci-", dir="/tmp"))
    try:
        venv = top / "checkout" / ".venv"
        (venv / "bin").mkdir(parents=True)
        python = venv / "bin" / "python"
        python.symlink_to(sys.executable)
        spec = {"host_dir": str(tmp_path / "host"), "argv": [str(python), "train.py"], "cwd": "/"}
        argv = sandbox_argv(spec, tmp_path, "/usr/bin/bwrap", 5)
        bind = argv.index(str(venv))
        made = [
            argv[i + 1] for i in range(bind) if argv[i - 2 : i + 1] == ["--perms", "0755", "--dir"]
        ]
        assert made[-2:] == [str(top), str(top / "checkout")], argv
    finally:
        shutil.rmtree(top)


@needs_sandbox
def test_terminate_right_after_start_is_not_lost(
    backend: LocalBackend, make_spec: MakeSpec
) -> None:
    # A stop that lands while bwrap still sets the sandbox up (before the child has its own
    # process group) must still end the child, not wait for the grace period's SIGKILL.
    for attempt in range(5):
        spec = make_spec("import time\ntime.sleep(120)\n", sandbox=True, stop_grace_s=300.0)
        spec = replace(spec, run_dir=spec.run_dir.with_name(f"run-{attempt}"))
        handle = backend.start(spec)
        deadline = time.monotonic() + 10
        while not (spec.run_dir / "child.json").exists():
            assert time.monotonic() < deadline
            time.sleep(0.0005)
        backend.terminate(handle)
        info = wait_exit(backend, handle, timeout=30)
        assert info.signal == signal.SIGTERM, (attempt, info)
