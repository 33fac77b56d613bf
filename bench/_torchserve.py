"""TorchServe for the serving benchmark: archive the model, start it, register models, stop it.

Needs ``pip install torchserve torch-model-archiver`` (into the interpreter that runs the
bench; not a dependency of sageport) and Java 17+ on PATH. TorchServe runs as SageMaker's own
PyTorch container runs it: ``decode_input_request=false`` (the handler gets the raw bytes),
``async_logging=true``; frontend logs at WARN (``LOG_CONFIG``); token auth off
(``--disable-token-auth``) and the model API on (``--enable-model-api``) so models can be
registered with ``batch_size`` / ``max_batch_delay``.
Everything it writes (logs, pid file, model store) stays in the given folder.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from types import TracebackType

from _common import http_get, wait_ready

from sageport.cli.process import free_port

HANDLER = Path(__file__).with_name("torchserve_handler.py")
#: TorchServe's stock log4j2 config logs every request (access log, per-request metrics, DEBUG
#: job timings) from the frontend: ~10 lines per request on the same cores it serves on.
#: sageport's model server logs nothing per request, so TorchServe gets warnings only, too.
LOG_CONFIG = """<?xml version="1.0" encoding="UTF-8"?>
<Configuration>
  <Appenders>
    <Console name="STDOUT" target="SYSTEM_OUT">
      <PatternLayout pattern="%d{ISO8601} [%-5p] %t %c - %m%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <Root level="warn"><AppenderRef ref="STDOUT"/></Root>
  </Loggers>
</Configuration>
"""


def available() -> str | None:
    """None when TorchServe can run here, else why not."""
    for tool in ("torchserve", "torch-model-archiver", "java"):
        if shutil.which(tool) is None:
            return f"{tool} not found (pip install torchserve torch-model-archiver; Java 17+)"
    return None


class TorchServe:
    """One TorchServe (frontend + Python workers) in ``folder`` for the life of a ``with`` block."""

    def __init__(self, folder: Path, model_pt: Path, torch_threads: int | None) -> None:
        self.folder = folder
        self.store = folder / "model-store"
        self.model_pt = model_pt
        self.torch_threads = torch_threads
        self.port = free_port()
        self.management_port = free_port()
        self.metrics_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = folder / "torchserve.out"

    def __enter__(self) -> TorchServe:
        self.store.mkdir(parents=True, exist_ok=True)
        config = self.folder / "config.properties"
        config.write_text(
            "\n".join(
                [
                    f"inference_address=http://127.0.0.1:{self.port}",
                    f"management_address=http://127.0.0.1:{self.management_port}",
                    f"metrics_address=http://127.0.0.1:{self.metrics_port}",
                    f"model_store={self.store}",
                    "decode_input_request=false",
                    "async_logging=true",
                    "disable_token_authorization=true",
                    "enable_model_api=true",
                    f"python={sys.executable}",
                    "",
                ]
            )
        )
        log_config = self.folder / "log4j2.xml"
        log_config.write_text(LOG_CONFIG)
        env = {**os.environ, "TMPDIR": str(self.folder), "LOG_LOCATION": str(self.folder / "logs")}
        env["METRICS_LOCATION"] = str(self.folder / "logs")
        if self.torch_threads:
            env["BENCH_TORCH_THREADS"] = str(self.torch_threads)
        with open(self._log, "wb") as log:
            # --foreground: the CLI waits on the frontend, and the whole group is ours to stop
            self.proc = subprocess.Popen(
                [
                    "torchserve",
                    "--start",
                    "--foreground",
                    "--ncs",
                    "--model-store",
                    str(self.store),
                    "--ts-config",
                    str(config),
                    "--disable-token-auth",
                    "--enable-model-api",
                    "--log-config",
                    str(log_config),
                ],
                cwd=self.folder,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_ready(f"http://127.0.0.1:{self.port}/ping", self.proc, timeout=180)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        pgid = self.proc.pid  # its own session and group (start_new_session)
        os.killpg(pgid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            self.proc.wait()
        # workers die with their frontend; anything left in the group goes too
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            os.killpg(pgid, signal.SIGKILL)

    def archive(self, name: str) -> str:
        """``name.mar`` in the model store: ``model.pt`` with ``torchserve_handler.py``."""
        subprocess.run(
            [
                "torch-model-archiver",
                "--model-name",
                name,
                "--version",
                "1.0",
                "--serialized-file",
                str(self.model_pt),
                "--handler",
                str(HANDLER),
                "--export-path",
                str(self.store),
                "--force",
            ],
            check=True,
        )
        return f"{name}.mar"

    def register(self, name: str, workers: int, batch_size: int = 1, delay_ms: int = 100) -> None:
        """Register ``name`` (archived first) with ``workers`` workers; waits until they are up."""
        query = urllib.parse.urlencode(
            {
                "url": self.archive(name),
                "model_name": name,
                "initial_workers": workers,
                "batch_size": batch_size,
                "max_batch_delay": delay_ms,
                "synchronous": "true",
            }
        )
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.management_port}/models?{query}", method="POST"
        )
        with urllib.request.urlopen(request, timeout=300) as answer:
            answer.read()

    def describe(self, name: str) -> object:
        status, body = http_get(f"http://127.0.0.1:{self.management_port}/models/{name}")
        return json.loads(body) if status == 200 else body.decode(errors="replace")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
