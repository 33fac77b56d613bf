"""Model-server micro-benchmark: ``/invocations`` of a 784-256-10 MLP, straight to the server.

    python bench/model_server.py [--seconds 3] [--workers 1] [--batch-size 1] [--delay-ms 2]

Writes a TorchScript MLP (``model.pt``) to a temp folder, starts
``python -m sageport.serving.server`` on it, and drives ``POST /invocations`` with one-row JSON
and NPY bodies at concurrency 1 and 16 for ``--seconds`` each, after a warm-up. Prints p50/p99
latency and requests/s per case, and writes ``bench/results/model_server.json``.

The client is a minimal asyncio HTTP/1.1 keep-alive client (one connection per concurrent
caller, uvloop when installed): httpx costs ~0.3 ms per request of its own, more than the
server. Client and server share the machine's cores, so the figures include the client's CPU
time; the ``/ping`` row (no model, no body) shows the floor that the HTTP round trip and the
client themselves cost. Not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_mlp(model_dir: Path) -> None:
    import torch

    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(mlp).save(str(model_dir / "model.pt"))


class Connection:
    """One keep-alive HTTP/1.1 connection; just enough to send a request and read the answer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        body = await self.reader.readexactly(length) if length else b""
        return status, body

    def close(self) -> None:
        self.writer.close()


def post(path: str, body: bytes, content_type: str, accept: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"Accept: {accept}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def drive(port: int, raw: bytes, concurrency: int, seconds: float) -> dict[str, Any]:
    conns = [await Connection.open(port) for _ in range(concurrency)]
    for conn in conns:  # warm-up: a few requests per connection
        for _ in range(20):
            status, _ = await conn.request(raw)
            assert status == 200, status
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def caller(conn: Connection) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            status, _ = await conn.request(raw)
            latencies.append(time.perf_counter() - start)
            errors += status != 200

    started = time.perf_counter()
    await asyncio.gather(*(caller(conn) for conn in conns))
    elapsed = time.perf_counter() - started
    for conn in conns:
        conn.close()
    latencies.sort()
    n = len(latencies)
    return {
        "requests": n,
        "errors": errors,
        "req_per_s": round(n / elapsed, 1),
        "p50_ms": round(latencies[n // 2] * 1000, 3),
        "p99_ms": round(latencies[min(n - 1, int(n * 0.99))] * 1000, 3),
    }


def wait_ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    import urllib.request

    for _ in range(600):
        if proc.poll() is not None:
            raise RuntimeError("model server exited")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError("model server not ready")


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
    port = free_port()
    env = {**os.environ, "SAGEMAKER_MODEL_SERVER_WORKERS": str(args.workers)}
    if args.batch_size > 1:
        env.update(
            SAGEPORT_BATCH_SIZE=str(args.batch_size), SAGEPORT_MAX_BATCH_DELAY_MS=str(args.delay_ms)
        )
    if args.handler_threads:
        env["SAGEPORT_HANDLER_THREADS"] = str(args.handler_threads)
    if args.torch_threads:
        env["SAGEPORT_TORCH_THREADS"] = str(args.torch_threads)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sageport.serving.server",
            "--model-dir",
            str(tmp),
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_ready(port, proc)
        row = np.random.default_rng(0).random((1, 784), dtype=np.float32)
        buffer = io.BytesIO()
        np.save(buffer, row)
        cases = {
            "ping": b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
            "json": post(
                "/invocations",
                json.dumps(row.tolist()).encode(),
                "application/json",
                "application/json",
            ),
            "npy": post(
                "/invocations", buffer.getvalue(), "application/x-npy", "application/x-npy"
            ),
        }
        try:
            import uvloop

            runner: Any = uvloop.run
        except ImportError:
            runner = asyncio.run
        results: dict[str, Any] = {
            "config": {**vars(args), "out": str(args.out), "cpus": os.cpu_count()},
            "cases": {},
        }
        print(f"{'case':<8}{'conc':>6}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}")
        for name, raw in cases.items():
            for concurrency in args.concurrency:
                stats = runner(drive(port, raw, concurrency, args.seconds))
                results["cases"][f"{name}@{concurrency}"] = stats
                print(
                    f"{name:<8}{concurrency:>6}{stats['req_per_s']:>10}{stats['p50_ms']:>10}"
                    f"{stats['p99_ms']:>10}{stats['errors']:>8}"
                )
        with urllib_get(port, "/metrics") as metrics:
            results["server_metrics"] = json.loads(metrics.read())
        print("batch sizes:", results["server_metrics"]["batch_size_histogram"])
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return 0


def urllib_get(port: int, path: str) -> Any:
    import urllib.request

    return urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5)


if __name__ == "__main__":
    sys.exit(main())
