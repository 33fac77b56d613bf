"""The model-server process: ``python -m sageport.serving.server --model-dir DIR --port P``.

Command line::

    python -m sageport.serving.server --model-dir DIR [--port P] [--host 127.0.0.1]
        [--workers N] [--timeout SECONDS]

``--port`` defaults to ``SAGEMAKER_BIND_TO_PORT`` or 8080; ``--workers`` to
``SAGEMAKER_MODEL_SERVER_WORKERS`` or 1; ``--timeout`` to the request timeout of ``config``.
Everything else comes from the environment (``config`` lists every variable). The process
prints ``sageport model server listening on http://HOST:PORT`` once it accepts connections;
``/ping`` turns 200 when the model has loaded.

Workers: with N > 1 this process is a supervisor. It starts N worker processes that each bind
the same port with SO_REUSEPORT (the kernel spreads connections over them) once their model
has loaded (so until the first worker is ready, connections are refused rather than answered
503), restarts a worker that dies (and exits 1 if workers keep dying at start), and forwards
SIGTERM. A worker whose model fails to load exits with ``LOAD_FAILED_EXIT``; the supervisor
then stops at once with that status (loading is deterministic: retrying would only delay the
endpoint's Failed status). Each worker loads its own copy of the model; ``/metrics`` from any
worker adds up all workers' counts (snapshots exchanged through a temp folder).

Stop: SIGTERM (or SIGINT) stops accepting, lets in-flight requests finish for up to
``STOP_GRACE_S`` (below SageMaker's 30 s before SIGKILL), then exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from sageport.serving.app import ModelServerApp
from sageport.serving.config import LOAD_FAILED_EXIT, SAGEMAKER_MODEL_DIR, ServerConfig
from sageport.serving.http import Connections, HttpProtocol
from sageport.serving.metrics import Metrics
from sageport.serving.pool import HandlerPool

LOG = logging.getLogger("sageport.serving")
STOP_GRACE_S = 25.0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sageport.serving.server")
    parser.add_argument("--model-dir", type=Path, default=Path(SAGEMAKER_MODEL_DIR))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=None)
    # Internal: how a supervisor starts its workers.
    parser.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker-of", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--metrics-dir", type=Path, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    config = ServerConfig.from_env(
        os.environ,
        model_dir=args.model_dir,
        host=args.host,
        port=args.port,
        workers=args.workers,
        timeout_s=args.timeout,
    )
    logging.basicConfig(
        level=config.log_level,
        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if config.workers > 1:
        return supervise(config)
    return run(
        config,
        reuse_port=args.reuse_port,
        worker_count=args.worker_of,
        metrics_dir=args.metrics_dir,
    )


def run(
    config: ServerConfig,
    *,
    reuse_port: bool = False,
    worker_count: int = 1,
    metrics_dir: Path | None = None,
) -> int:
    """Serve one process until SIGTERM; uvloop when installed (measurably faster)."""
    coroutine = serve(
        config, reuse_port=reuse_port, worker_count=worker_count, metrics_dir=metrics_dir
    )
    try:
        import uvloop
    except ImportError:
        asyncio.run(coroutine)
    else:
        uvloop.run(coroutine)
    return 0


async def serve(
    config: ServerConfig,
    *,
    reuse_port: bool = False,
    worker_count: int = 1,
    metrics_dir: Path | None = None,
) -> None:
    loop = asyncio.get_running_loop()
    pool = HandlerPool(config.handler_threads)
    app = ModelServerApp(
        config, pool, Metrics(), worker_count=worker_count, metrics_dir=metrics_dir
    )
    connections = Connections()
    if reuse_port:
        # A worker beside others on one port listens only once its model is loaded: else a
        # ping answered 200 by one worker would send traffic to another still loading (503).
        await app.load()
        if app.handler is None:
            raise SystemExit(LOAD_FAILED_EXIT)
    server = await loop.create_server(
        lambda: HttpProtocol(app, config.max_payload_bytes, connections),
        config.host,
        config.port,
        reuse_port=reuse_port or None,
        backlog=1024,
    )
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    port = server.sockets[0].getsockname()[1]
    print(f"sageport model server listening on http://{config.host}:{port}", flush=True)
    background = [loop.create_task(app.publish_metrics())]
    if app.handler is None:
        background.append(loop.create_task(app.load()))
    await stop.wait()
    LOG.info("stopping: draining %d connection(s)", len(connections.open))
    server.close()
    await connections.drain(STOP_GRACE_S)
    for task in background:
        task.cancel()
    pool.close()


def supervise(config: ServerConfig) -> int:
    """Run ``config.workers`` worker processes on one port (SO_REUSEPORT) until SIGTERM."""
    metrics_dir = Path(tempfile.mkdtemp(prefix="sageport-metrics-"))
    command = [
        sys.executable,
        "-m",
        "sageport.serving.server",
        "--model-dir",
        str(config.model_dir),
        "--host",
        config.host,
        "--port",
        str(config.port),
        "--workers",
        "1",
        "--timeout",
        str(config.timeout_s),
        "--reuse-port",
        "--worker-of",
        str(config.workers),
        "--metrics-dir",
        str(metrics_dir),
    ]
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    workers = [subprocess.Popen(command) for _ in range(config.workers)]
    started = [time.monotonic()] * len(workers)
    quick_deaths = 0
    load_failed = False
    try:
        while not stopping:
            time.sleep(0.2)
            for index, proc in enumerate(workers):
                if proc.poll() is None or stopping:
                    continue
                if proc.returncode == LOAD_FAILED_EXIT:
                    LOG.error("worker %d could not load the model; stopping", proc.pid)
                    load_failed = stopping = True
                    break
                LOG.error("worker %d exited with %s; restarting it", proc.pid, proc.returncode)
                quick_deaths = quick_deaths + 1 if time.monotonic() - started[index] < 5 else 0
                if quick_deaths > 2 * config.workers:
                    LOG.error("workers keep dying at start; giving up")
                    stopping = True
                    break
                workers[index] = subprocess.Popen(command)
                started[index] = time.monotonic()
    finally:
        for proc in workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S + 2
        for proc in workers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            if proc.poll() is None:
                proc.kill()
        shutil.rmtree(metrics_dir, ignore_errors=True)
    if load_failed:
        return LOAD_FAILED_EXIT
    return 1 if quick_deaths > 2 * config.workers else 0


if __name__ == "__main__":
    sys.exit(main())
