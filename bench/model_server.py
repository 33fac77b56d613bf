"""Model-server micro-benchmark: ``/invocations`` of a 784-256-10 MLP, straight to the server.

    python bench/model_server.py [--seconds 3] [--workers 1] [--batch-size 1] [--delay-ms 2]

Writes a TorchScript MLP (``model.pt``) to a temp folder, starts
``python -m sageport.serving.server`` on it, and drives ``POST /invocations`` with one-row JSON
and NPY bodies at concurrency 1 and 16 for ``--seconds`` each, after a warm-up. Prints p50/p99
latency and requests/s per case, and writes ``bench/results/model_server.json``.

The client is ``_common``'s minimal asyncio HTTP/1.1 keep-alive client (one connection per
concurrent caller, uvloop when installed): httpx costs ~0.3 ms per request of its own, more
than the server. Client and server share the machine's cores, so the figures include the
client's CPU time; the ``/ping`` row (no model, no body) shows the floor that the HTTP round trip and the
client themselves cost. Not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import (
    bodies,
    drive,
    http_get,
    post,
    raw_request,
    run_async,
    sample_row,
    stop,
    wait_ready,
    write_mlp,
)

from sageport.cli.process import free_port


def model_server_env(
    workers: int = 1,
    batch_size: int = 1,
    delay_ms: float = 2.0,
    handler_threads: int | None = None,
    torch_threads: int | None = None,
) -> dict[str, str]:
    """The model's environment for these settings (what CreateModel's Environment would hold)."""
    env = {"SAGEMAKER_MODEL_SERVER_WORKERS": str(workers)}
    if batch_size > 1:
        env.update(SAGEPORT_BATCH_SIZE=str(batch_size), SAGEPORT_MAX_BATCH_DELAY_MS=str(delay_ms))
    if handler_threads:
        env["SAGEPORT_HANDLER_THREADS"] = str(handler_threads)
    if torch_threads:
        env["SAGEPORT_TORCH_THREADS"] = str(torch_threads)
    return env


def start_model_server(
    model_dir: Path, env: dict[str, str], log: Path | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    """``python -m sageport.serving.server`` on ``model_dir``; returns once ``/ping`` is 200.

    Its log (stderr) goes to ``log`` when given, else to this process's stderr.
    """
    port = free_port()
    with open(log or os.devnull, "ab") as sink:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sageport.serving.server",
                "--model-dir",
                str(model_dir),
                "--port",
                str(port),
            ],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=sink if log else None,
        )
    try:
        wait_ready(f"http://127.0.0.1:{port}/ping", proc)
    except BaseException as exc:
        stop(proc)
        if log:
            tail = log.read_text(errors="replace").splitlines()[-20:]
            raise RuntimeError(f"model server did not start: {exc}\n" + "\n".join(tail)) from exc
        raise
    return proc, port


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--delay-ms", type=float, default=2.0)
    parser.add_argument("--handler-threads", type=int, default=None)
    parser.add_argument("--torch-threads", type=int, default=None)
    parser.add_argument("--concurrency", type=int, nargs="*", default=[1, 16])
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "model_server.json"
    )
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="sageport-bench-"))
    write_mlp(tmp)
    env = model_server_env(
        args.workers, args.batch_size, args.delay_ms, args.handler_threads, args.torch_threads
    )
    proc, port = start_model_server(tmp, env)
    try:
        cases = {"ping": raw_request("GET", "/ping")}
        for name, (body, content_type) in bodies(sample_row()).items():
            cases[name] = post("/invocations", body, content_type, content_type)
        results: dict[str, Any] = {
            "config": {**vars(args), "out": str(args.out), "cpus": os.cpu_count()},
            "cases": {},
        }
        print(f"{'case':<8}{'conc':>6}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}")
        for name, raw in cases.items():
            for concurrency in args.concurrency:
                stats = run_async(drive(port, raw, concurrency, args.seconds))
                results["cases"][f"{name}@{concurrency}"] = stats
                print(
                    f"{name:<8}{concurrency:>6}{stats['req_per_s']:>10}{stats['p50_ms']:>10}"
                    f"{stats['p99_ms']:>10}{stats['errors']:>8}"
                )
        results["server_metrics"] = json.loads(http_get(f"http://127.0.0.1:{port}/metrics")[1])
        print("batch sizes:", results["server_metrics"]["batch_size_histogram"])
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))
    finally:
        stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
