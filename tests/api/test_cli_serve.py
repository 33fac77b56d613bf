"""``sageport serve``'s address and settings: one source of truth, bad values refused at start.

The address comes from ``--host``/``--port`` if given, else from ``sageport.toml``, else the
defaults; whatever the server binds is what ``server.json`` records, what ``sageport env``
prints and what jobs get as ``AWS_ENDPOINT_URL``. One server per data folder; a record
left by a server that is gone is not what ``sageport env`` prints.
"""

from __future__ import annotations

import json
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from server_helpers import dead_pid

from sageport.cli.process import free_port


def _sageport(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sageport", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_sageport/health", timeout=1) as resp:
            return bool(json.loads(resp.read())["status"] == "ok")
    except OSError:
        return False


@contextmanager
def _serving(data: Path, *args: str) -> Iterator[str]:
    """``sageport serve --data-dir data *args`` until it answers; yields the URL it printed."""
    cmd = [sys.executable, "-m", "sageport", "serve", "--data-dir", str(data), *args]
    with subprocess.Popen(
        cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    ) as proc:
        try:
            assert proc.stderr is not None
            url = ""
            for line in proc.stderr:
                if line.startswith("sageport serving on "):
                    url = line.split()[3]
                    break
            assert url, f"serve exited with {proc.wait(30)}"
            deadline = time.monotonic() + 30
            while not _healthy(url):
                assert time.monotonic() < deadline, f"nothing answers at {url}"
                time.sleep(0.05)
            yield url
        finally:
            proc.terminate()
            proc.wait(30)


def _recorded(data: Path) -> str:
    return str(json.loads((data / "server.json").read_text())["endpoint_url"])


def _env_url(data: Path) -> str:
    result = _sageport("env", "--data-dir", str(data))
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if "AWS_ENDPOINT_URL=" in x)
    return shlex.split(line.partition("=")[2])[0]


def test_the_port_in_sageport_toml_is_bound_and_recorded(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    port = free_port()
    (data / "sageport.toml").write_text(f'host = "127.0.0.1"\nport = {port}\n')
    with _serving(data) as url:
        assert url == f"http://127.0.0.1:{port}"
        assert _healthy(url)
        assert _recorded(data) == url
        assert _env_url(data) == url


def test_the_command_line_wins_over_sageport_toml(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    in_file, on_line = free_port(), free_port()
    (data / "sageport.toml").write_text(f"port = {in_file}\n")
    with _serving(data, "--port", str(on_line)) as url:
        assert url == f"http://127.0.0.1:{on_line}"
        assert _healthy(url)
        assert not _healthy(f"http://127.0.0.1:{in_file}")
        assert _recorded(data) == _env_url(data) == url


def test_port_0_records_the_port_actually_bound(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with _serving(data, "--port", "0") as url:
        port = int(url.rsplit(":", 1)[1])
        assert port != 0
        assert _healthy(url)
        assert _recorded(data) == url


def test_a_port_in_use_is_one_line_and_keeps_server_json(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "server.json").write_text('{"endpoint_url": "http://127.0.0.1:1"}')
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _sageport("serve", "--data-dir", str(data), "--port", str(port))
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line == f"sageport serve: cannot listen on 127.0.0.1:{port}: Address already in use"
    # the record of the server that holds the data folder is not overwritten
    assert _recorded(data) == "http://127.0.0.1:1"


def test_bad_sandbox_host_or_port_values_stop_the_server_with_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    cases = {
        'sandbox = "of"': """sandbox must be "auto" or "off", not 'of'""",
        "sandbox = false": """sandbox must be "auto" or "off", not False""",
        'port = "5757"': "port must be a number from 0 to 65535, not '5757'",
        "port = 70000": "port must be a number from 0 to 65535, not 70000",
        "host = 127": """host must be an address such as "127.0.0.1", not 127""",
    }
    for setting, message in cases.items():
        (data / "sageport.toml").write_text(setting + "\n")
        done = _sageport("serve", "--data-dir", str(data), "--port", "0")
        assert done.returncode == 2, setting
        (line,) = done.stderr.strip().splitlines()  # one clean line, no traceback
        assert line == f"sageport serve: {data / 'sageport.toml'}: {message}", setting
        assert not (data / "server.json").exists()
        env = _sageport("env", "--data-dir", str(data))  # other commands say it alike
        assert env.returncode == 2
        assert env.stderr.strip() == f"sageport env: {data / 'sageport.toml'}: {message}"


def test_a_second_server_on_the_same_data_folder_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with _serving(data, "--port", "0") as url:
        recorded = json.loads((data / "server.json").read_text())
        done = _sageport("serve", "--data-dir", str(data), "--port", "0")
        assert done.returncode == 2
        (line,) = done.stderr.strip().splitlines()
        assert line == (
            f"sageport serve: another sageport server is using {data} "
            f"(pid {recorded['pid']}, {url}); stop it, or give this one its own --data-dir"
        )
        assert _healthy(url)
        assert json.loads((data / "server.json").read_text()) == recorded
        quick = _sageport("quickstart", "--data-dir", str(data))
        assert quick.returncode == 2
        assert f"already running on {data} (pid {recorded['pid']}, {url})" in quick.stderr
    # stopped: its record goes with it, and the folder is free again
    assert not (data / "server.json").exists()
    with _serving(data, "--port", "0") as again:
        assert _healthy(again)


def test_env_ignores_the_record_of_a_server_that_is_gone(tmp_path: Path) -> None:
    """A crashed server (or a quickstart's scratch one) leaves server.json behind: `sageport
    serve & eval "$(sageport env)"` must not point at its dead port meanwhile."""
    data = tmp_path / "data"
    data.mkdir()
    port = free_port()
    (data / "sageport.toml").write_text(f"port = {port}\n")
    dead = {"endpoint_url": "http://127.0.0.1:1", "pid": dead_pid(), "region": "us-east-1"}
    (data / "server.json").write_text(json.dumps(dead))
    assert _env_url(data) == f"http://127.0.0.1:{port}"
    with _serving(data) as url:
        assert _env_url(data) == url == f"http://127.0.0.1:{port}"
