"""A model-server process on a free loopback port, for the live tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ModelServer:
    """``python -m sageport.serving.server`` started on a model folder."""

    def __init__(self, model_dir: Path, env: Mapping[str, str] | None = None) -> None:
        self.model_dir = model_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {**os.environ, "SAGEPORT_OVERLAY_DIR": str(model_dir / ".overlays")}
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sageport.serving.server",
                "--model-dir",
                str(model_dir),
                "--port",
                str(self.port),
            ],
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.client = httpx.Client(base_url=self.url, timeout=30)
        self._output: str | None = None

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"model server exited:\n{self.output()}")
            try:
                if self.client.get("/ping").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"model server not ready:\n{self.output()}")

    def output(self) -> str:
        """What the process printed; only once it has exited."""
        if self.proc.poll() is None:
            return "(still running)"
        if self._output is None:
            assert self.proc.stdout is not None
            self._output = self.proc.stdout.read()
            self.proc.stdout.close()
        return self._output

    def stop(self) -> int:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.output()
        return self.proc.returncode
