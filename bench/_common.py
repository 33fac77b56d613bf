"""Pieces the serving benchmarks share (``model_server.py``, ``serving.py``); not a benchmark.

- the model: the 784-256-10 MLP every case serves (and a wide one for the GPU variant),
  written as TorchScript ``model.pt``;
- request bodies: one 784-float row as JSON and as NPY;
- the load generator: a minimal asyncio HTTP/1.1 keep-alive client (one connection per
  concurrent caller, uvloop when installed). httpx costs ~0.3 ms per request of its own, more
  than the servers measured; this client costs a few tens of µs. It reads Content-Length and
  chunked answers, so it fits sageport, its model server and TorchServe alike;
- ``Signer``: SigV4 for the runtime API with botocore's own ``SigV4Auth``, once per request,
  so the signed path costs the client what a real SDK's signing costs and nothing more (boto3
  itself adds ~1 ms of client overhead per call, which would hide the server);
- summaries (requests/s, p50, p99) and process helpers.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import numpy as np

JSON = "application/json"
NPY = "application/x-npy"
RESULTS = Path(__file__).parent / "results"

# -- the model ---------------------------------------------------------------------------------


def mlp(seed: int = 0) -> Any:
    """The 784-256-10 MLP every serving case uses."""
    import torch

    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10)
    ).eval()


def wide_mlp(width: int, depth: int, seed: int = 0) -> Any:
    """784 → ``width`` → (``depth`` times the same ``width`` x ``width`` layer) → 10, tanh.

    One hidden layer applied ``depth`` times: the forward costs ``depth`` layers of FLOPs while
    the archive holds one, so a model whose forward dominates stays a small ``model.tar.gz``.
    tanh with the hidden weights doubled keeps activations around 0.3 through any depth (no
    overflow, no denormals that would slow a CPU), whatever the width.
    """
    import torch

    class Wide(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inp = torch.nn.Linear(784, width)
            self.hidden = torch.nn.Linear(width, width)
            self.out = torch.nn.Linear(width, 10)
            self.depth = depth
            with torch.no_grad():
                self.hidden.weight.mul_(2.0)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = torch.tanh(self.inp(x))
            for _ in range(self.depth):
                x = torch.tanh(self.hidden(x))
            return self.out(x)

    torch.manual_seed(seed)
    return Wide().eval()


def save_torchscript(module: Any, path: Path) -> Path:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(module).save(str(path))
    return path


def write_mlp(model_dir: Path) -> Path:
    """``model_dir/model.pt``: the 784-256-10 MLP as TorchScript."""
    return save_torchscript(mlp(), model_dir / "model.pt")


def tarball(files: dict[str, Path], compresslevel: int = 1) -> bytes:
    """``model.tar.gz`` bytes with ``files`` (archive name → file) at the top."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=compresslevel) as tar:
        for name, path in files.items():
            tar.add(str(path), arcname=name)
    return buffer.getvalue()


# -- request bodies ----------------------------------------------------------------------------


def sample_row(features: int = 784) -> Any:
    return np.random.default_rng(0).random((1, features), dtype=np.float32)


def bodies(row: Any) -> dict[str, tuple[bytes, str]]:
    """The same row as each body type: name → (bytes, content type)."""
    buffer = io.BytesIO()
    np.save(buffer, row)
    return {"json": (json.dumps(row.tolist()).encode(), JSON), "npy": (buffer.getvalue(), NPY)}


def raw_request(
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    host: str = "127.0.0.1",
) -> bytes:
    """An HTTP/1.1 request as bytes (keep-alive is HTTP/1.1's default)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def post(path: str, body: bytes, content_type: str, accept: str) -> bytes:
    return raw_request("POST", path, body, {"Content-Type": content_type, "Accept": accept})


class Signer:
    """Signed ``InvokeEndpoint`` requests, one fresh SigV4 signature per call."""

    def __init__(
        self,
        port: int,
        endpoint: str,
        keys: tuple[str, str],
        region: str,
        body: bytes,
        content_type: str,
        accept: str,
    ) -> None:
        from botocore.auth import SigV4Auth
        from botocore.credentials import Credentials

        self.host = f"127.0.0.1:{port}"
        self.path = f"/endpoints/{endpoint}/invocations"
        self.url = f"http://{self.host}{self.path}"
        self.auth = SigV4Auth(Credentials(*keys), "sagemaker", region)
        self.body, self.content_type, self.accept = body, content_type, accept

    def __call__(self) -> bytes:
        from botocore.awsrequest import AWSRequest

        request = AWSRequest(
            method="POST",
            url=self.url,
            data=self.body,
            headers={"Content-Type": self.content_type, "Accept": self.accept},
        )
        self.auth.add_auth(request)
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        return raw_request("POST", self.path, self.body, headers, host=self.host)


def signing_cost_us(signer: Signer, n: int = 2000) -> float:
    """Mean client time to sign one request, µs (part of every signed latency measured)."""
    start = time.perf_counter()
    for _ in range(n):
        signer()
    return round((time.perf_counter() - start) / n * 1e6, 1)


# -- the load generator ------------------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection; just enough to send a request and read the answer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int, host: str = "127.0.0.1") -> Connection:
        reader, writer = await asyncio.open_connection(host, port, limit=8 * 1024 * 1024)
        return cls(reader, writer)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length, chunked = 0, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if not chunked:
            return status, await self.reader.readexactly(length) if length else b""
        parts: list[bytes] = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")  # no trailers from these servers
                return status, b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)

    def close(self) -> None:
        self.writer.close()


Request = bytes | Callable[[], bytes]


def summarize(latencies: list[float], elapsed: float, errors: int) -> dict[str, Any]:
    latencies = sorted(latencies)
    n = len(latencies)
    if not n:
        return {"requests": 0, "errors": errors, "req_per_s": 0.0, "p50_ms": None, "p99_ms": None}
    return {
        "requests": n,
        "errors": errors,
        "req_per_s": round(n / elapsed, 1),
        "p50_ms": round(latencies[n // 2] * 1000, 3),
        "p99_ms": round(latencies[min(n - 1, int(n * 0.99))] * 1000, 3),
    }


async def drive(
    port: int,
    request: Request,
    concurrency: int,
    seconds: float,
    warmup: int = 20,
    check: Callable[[bytes], bool] | None = None,
) -> dict[str, Any]:
    """``concurrency`` callers on their own connections, each sending ``request`` back to back
    for ``seconds`` after ``warmup`` requests each (untimed). ``request`` is the raw bytes, or a
    function that makes them per call (its time, e.g. signing, counts in the latency). Answers
    other than 200 count as errors. The first warm-up answer on each connection must be a 200
    whose body ``check`` accepts, or the case fails loudly instead of timing error answers.
    """
    make = request if callable(request) else (lambda: request)
    conns = [await Connection.open(port) for _ in range(concurrency)]

    async def warm(conn: Connection) -> None:
        for i in range(max(1, warmup)):
            status, body = await conn.request(make())
            if i == 0 and (status != 200 or (check is not None and not check(body))):
                raise RuntimeError(f"warm-up answer {status}: {body[:300]!r}")

    await asyncio.gather(*(warm(conn) for conn in conns))
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def caller(conn: Connection) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            status, _ = await conn.request(make())
            latencies.append(time.perf_counter() - start)
            errors += status != 200

    started = time.perf_counter()
    await asyncio.gather(*(caller(conn) for conn in conns))
    elapsed = time.perf_counter() - started
    for conn in conns:
        conn.close()
    return summarize(latencies, elapsed, errors)


def run_async(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run on uvloop when installed (the client's own cost matters here)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


# -- processes and results ---------------------------------------------------------------------


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_ready(
    url: str, proc: subprocess.Popen[bytes] | None = None, timeout: float = 120.0
) -> None:
    """Poll ``url`` until it answers 200; fail early when ``proc`` has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        try:
            if http_get(url, timeout=1)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout:.0f}s")


def stop(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def machine() -> dict[str, Any]:
    pages = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "machine": os.uname().nodename,
        "cpus": os.cpu_count(),
        "memory_GiB": round(pages / 1024**3, 1),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def write_results(name: str, data: dict[str, Any], path: Path | None = None) -> Path:
    """``data`` as JSON at ``path``, by default ``bench/results/<name>``."""
    path = path or RESULTS / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
    return path
