"""LocalBackend with real processes, no sandbox: logs, exit statuses, signals, restarts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from backend_helpers import MakeSpec, running, wait_exit, wait_file

from sageport.backends.base import EXIT_FILE, HostHandle
from sageport.backends.local import LocalBackend


def test_logs_streams_in_order_and_exit_code(backend: LocalBackend, make_spec: MakeSpec) -> None:
    spec = make_spec(
        """
        import sys, time
        print("out 1", flush=True); time.sleep(0.05)
        print("err 1", file=sys.stderr, flush=True); time.sleep(0.05)
        print("out 2 é", flush=True)
        sys.exit(3)
        """
    )
    handle = backend.start(spec)
    info = wait_exit(backend, handle)
    assert (info.returncode, info.signal, info.reason) == (3, None, None)
    records, offset = backend.read_log(handle, 0)
    assert [(r.stream, r.message) for r in records] == [
        ("stdout", "out 1"),
        ("stderr", "err 1"),
        ("stdout", "out 2 é"),
    ]
    assert records[0].timestamp_ms <= records[2].timestamp_ms
    assert backend.read_log(handle, offset) == ([], offset)


def test_read_log_is_incremental(backend: LocalBackend, make_spec: MakeSpec) -> None:
    spec = make_spec(
        """
        import os, time
        print("first", flush=True)
        while not os.path.exists(os.environ["TEST_DIR"] + "/go"):
            time.sleep(0.01)
        print("second", flush=True)
        """
    )
    handle = backend.start(spec)
    deadline = time.monotonic() + 10
    first: list[str] = []
    offset = 0
    while not first and time.monotonic() < deadline:
        records, offset = backend.read_log(handle, offset)
        first = [r.message for r in records]
    assert first == ["first"]
    (spec.run_dir.parent / "go").write_text("1")
    assert wait_exit(backend, handle).returncode == 0
    records, _ = backend.read_log(handle, offset)
    assert [r.message for r in records] == ["second"]


def test_sigkill_is_reported_as_signal_9(backend: LocalBackend, make_spec: MakeSpec) -> None:
    handle = backend.start(make_spec("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n"))
    info = wait_exit(backend, handle)
    assert (info.returncode, info.signal) == (137, 9)


def test_terminate_delivers_sigterm(backend: LocalBackend, make_spec: MakeSpec) -> None:
    spec = make_spec(
        """
        import os, signal, sys, time
        d = os.environ["TEST_DIR"]
        def on_term(signum, frame):
            open(d + "/got-term", "w").write(str(signum))
            sys.exit(0)
        signal.signal(signal.SIGTERM, on_term)
        open(d + "/ready", "w").write("1")
        time.sleep(30)
        """
    )
    handle = backend.start(spec)
    wait_file(spec.run_dir.parent / "ready")
    backend.terminate(handle)
    info = wait_exit(backend, handle)
    assert info.returncode == 0
    assert (spec.run_dir.parent / "got-term").read_text() == str(int(signal.SIGTERM))


IGNORES_TERM_WITH_GRANDCHILD = """
    import os, signal, subprocess, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = subprocess.Popen(["sleep", "1000"])
    open(os.environ["TEST_DIR"] + "/grandchild", "w").write(str(child.pid))
    time.sleep(1000)
"""


def test_kill_ends_the_whole_tree(backend: LocalBackend, make_spec: MakeSpec) -> None:
    spec = make_spec(IGNORES_TERM_WITH_GRANDCHILD)
    handle = backend.start(spec)
    grandchild = int(wait_file(spec.run_dir.parent / "grandchild"))
    backend.terminate(handle)
    time.sleep(0.3)
    assert backend.poll(handle) is None  # SIGTERM ignored, grace period not over
    backend.kill(handle)
    info = wait_exit(backend, handle)
    assert (info.returncode, info.signal) == (137, 9)
    deadline = time.monotonic() + 5
    while running(grandchild) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not running(grandchild)


def test_grace_period_ends_with_sigkill(backend: LocalBackend, make_spec: MakeSpec) -> None:
    spec = make_spec(IGNORES_TERM_WITH_GRANDCHILD, stop_grace_s=0.3)
    handle = backend.start(spec)
    grandchild = int(wait_file(spec.run_dir.parent / "grandchild"))
    backend.terminate(handle)  # the launcher escalates by itself
    assert wait_exit(backend, handle).signal == signal.SIGKILL
    time.sleep(0.1)
    assert not running(grandchild)


def test_missing_program_is_a_reason_not_a_hang(backend: LocalBackend, make_spec: MakeSpec) -> None:
    spec = make_spec("pass\n")
    spec = type(spec)(**{**spec.__dict__, "argv": ["/nonexistent/program"]})
    info = wait_exit(backend, backend.start(spec))
    assert info.returncode is None
    assert info.reason is not None
    assert "/nonexistent/program" in info.reason


def test_vanished_launcher_is_reported(backend: LocalBackend, make_spec: MakeSpec) -> None:
    spec = make_spec("import time\ntime.sleep(1000)\n")
    handle = backend.start(spec)
    wait_file(spec.run_dir / "child.json")
    child = json.loads((spec.run_dir / "child.json").read_text())["pid"]
    os.kill(handle.launcher_pid, signal.SIGKILL)
    info = wait_exit(backend, handle)
    assert info.returncode is None
    assert info.reason is not None
    assert "launcher" in info.reason
    time.sleep(0.1)
    assert not running(child)


STARTER = """
import json, sys
from pathlib import Path
from sageport.backends.base import LaunchSpec
from sageport.backends.local import LocalBackend
spec = LaunchSpec.from_json(json.loads(Path(sys.argv[1]).read_text()))
print(json.dumps(LocalBackend().start(spec).to_json()))
"""


def test_survives_the_server(make_spec: MakeSpec, tmp_path: Path) -> None:
    spec = make_spec(
        """
        import os, time
        while not os.path.exists(os.environ["TEST_DIR"] + "/go"):
            time.sleep(0.01)
        print("done", flush=True)
        """
    )
    spec_file = tmp_path / "spec-in.json"
    spec_file.write_text(json.dumps(spec.to_json()))
    started = subprocess.run(
        [sys.executable, "-c", STARTER, str(spec_file)],
        capture_output=True,
        check=True,
        text=True,
    )  # the "server" that started the job is gone now
    handle = HostHandle.from_json(json.loads(started.stdout))
    restarted = LocalBackend()
    assert restarted.launcher_alive(handle)
    assert restarted.poll(handle) is None
    (tmp_path / "go").write_text("1")
    info = wait_exit(restarted, handle)
    assert info.returncode == 0
    assert (handle.run_dir / EXIT_FILE).exists()
    assert [r.message for r in restarted.read_log(handle, 0)[0]] == ["done"]
    deadline = time.monotonic() + 5
    while restarted.launcher_alive(handle) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not restarted.launcher_alive(handle)  # the launcher does not linger


def test_log_flood_is_capped(backend: LocalBackend, make_spec: MakeSpec) -> None:
    spec = make_spec(
        """
        import sys
        line = "x" * 99 + "\\n"
        block = line * 10_000
        for _ in range(50):  # 50 MB
            sys.stdout.write(block)
        sys.stdout.flush()
        """,
        max_log_bytes=1_000_000,
    )
    handle = backend.start(spec)
    info = wait_exit(backend, handle, timeout=30)
    assert info.returncode == 0
    size = (spec.run_dir / "log.jsonl").stat().st_size
    assert 900_000 < size <= 1_001_000
    last = json.loads((spec.run_dir / "log.jsonl").read_bytes().splitlines()[-1])
    assert last["s"] == "system"
    assert "truncated" in last["m"]


def test_stderr_tail_survives_the_log_cap(backend: LocalBackend, make_spec: MakeSpec) -> None:
    spec = make_spec(
        """
        import sys
        sys.stdout.write(("x" * 99 + "\\n") * 20_000)
        sys.stdout.flush()
        raise RuntimeError("the very end")
        """,
        max_log_bytes=100_000,
    )
    handle = backend.start(spec)
    assert wait_exit(backend, handle, timeout=30).returncode == 1
    records, _ = backend.read_log(handle, 0)
    notes = [r.message for r in records if r.stream == "system"]
    assert notes[0].startswith("log truncated: the limit of 100000 bytes")
    assert "lines were discarded" in notes[1]
    assert records[-1].stream == "stderr"
    assert records[-1].message == "RuntimeError: the very end"
    assert (spec.run_dir / "log.jsonl").stat().st_size < 110_000


def test_long_lines_are_split(backend: LocalBackend, make_spec: MakeSpec) -> None:
    handle = backend.start(make_spec('print("é" * 100_000)\n'))
    assert wait_exit(backend, handle).returncode == 0
    records, _ = backend.read_log(handle, 0)
    assert len(records) > 1
    assert "".join(r.message for r in records) == "é" * 100_000
