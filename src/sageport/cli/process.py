"""Run ``sageport serve`` as a child process and talk to it with boto3.

Used by ``sageport quickstart``, the benchmarks and the test suite: all of them want a real
server in its own process, on a free loopback port, with clients pointed at it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from sageport.scheduler.ports import free_port
from sageport.services.credentials import load_or_create
from sageport.settings import DEFAULT_REGION

__all__ = ["ServerProcess", "free_port"]


class ServerProcess:
    """A ``sageport serve`` child on ``data_dir``; ``start()``/``stop()`` may be repeated."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        region: str = DEFAULT_REGION,
        python: str = sys.executable,
    ) -> None:
        self.data_dir = data_dir
        self.python = python
        self.port = port or free_port()
        self.region = region
        self.url = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = data_dir / "server.log"

    def start(self, timeout: float = 30.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            self.python,
            "-m",
            "sageport",
            "serve",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
        ]
        with open(self._log, "ab") as log:
            self._proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy()
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"sageport serve exited with {self._proc.returncode}: {self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/_sageport/health", timeout=1) as resp:
                    if json.loads(resp.read())["status"] == "ok":
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"sageport serve did not answer within {timeout}s: {self.log_tail()}")

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def kill(self) -> None:
        """Stop the way a crash would: SIGKILL, no shutdown code runs."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    @property
    def keys(self) -> tuple[str, str]:
        pair = load_or_create(self.data_dir / "credentials.json")[0]
        return pair.access_key_id, pair.secret_access_key

    def client(self, service: str, **kwargs: Any) -> Any:
        import boto3
        from botocore.config import Config

        access, secret = self.keys
        config = kwargs.pop("config", None) or Config(retries={"max_attempts": 1})
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=self.region,
            aws_access_key_id=access,
            aws_secret_access_key=secret,
            config=config,
            **kwargs,
        )
