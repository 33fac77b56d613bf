"""Control-plane and S3 benchmark: sageport against a moto server, side by side, in one run.

    python bench/control_plane.py [--quick]

Starts a ``sageport serve`` and a moto server (``pip install 'moto[server]'`` for the
benchmark only) on loopback, makes the same boto3 calls against each — DescribeModel, S3
PutObject/GetObject of 1 KiB and 256 MiB objects, at concurrency 1 and 16 — and prints a
table. The 256 MiB GET is also compared with reading the object's file straight from disk,
and both large operations with the same boto3 calls against ``bench/http_floor.py``, a raw
asyncio server that discards PUT bodies and sendfile()s the object for GET: the "floor" column
is what the client alone costs, which no server can beat.
Results go to ``bench/results/control_plane.json``. Not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from sageport.cli.process import ServerProcess, free_port

MiB = 1024 * 1024
ROLE = "arn:aws:iam::123456789012:role/BenchRole"


class Target:
    def __init__(self, name: str, url: str, keys: tuple[str, str], data_dir: Path | None) -> None:
        self.name, self.url, self.keys, self.data_dir = name, url, keys, data_dir

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=self.keys[0],
            aws_secret_access_key=self.keys[1],
            config=Config(
                retries={"max_attempts": 1},
                max_pool_connections=64,
                s3={"addressing_style": "path"},
            ),
        )


def start_moto(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    log = open(tmp / "moto.log", "wb")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-p", str(port)], stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1)
            return proc, url
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("moto server did not start")


def run(concurrency: int, count: int, op: Callable[[int], Any]) -> dict[str, float]:
    """Run ``op`` ``count`` times on ``concurrency`` threads; latency percentiles and rate."""
    latencies: list[float] = []

    def timed(i: int) -> None:
        t0 = time.perf_counter()
        op(i)
        latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    if concurrency == 1:
        for i in range(count):
            timed(i)
    else:
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(timed, range(count)))
    wall = time.perf_counter() - t0
    latencies.sort()
    return {
        "ops": count,
        "wall_s": wall,
        "ops_per_s": count / wall,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
    }


def bench_target(t: Target, quick: bool, large_concurrency: list[int]) -> dict[str, Any]:
    sm, s3 = t.client("sagemaker"), t.client("s3")
    out: dict[str, Any] = {}
    sm.create_model(
        ModelName="bench-model", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": "img:latest"}
    )
    s3.create_bucket(Bucket="bench")
    n = 200 if quick else 2000
    for c in (1, 16):
        out[f"DescribeModel c={c}"] = run(
            c, n, lambda _i: sm.describe_model(ModelName="bench-model")
        )
    small = os.urandom(1024)
    for c in (1, 16):
        out[f"PutObject 1KiB c={c}"] = run(
            c, n, lambda i: s3.put_object(Bucket="bench", Key=f"small/{i}", Body=small)
        )
        out[f"GetObject 1KiB c={c}"] = run(
            c, n, lambda i: s3.get_object(Bucket="bench", Key=f"small/{i}")["Body"].read()
        )
    large(s3, quick, large_concurrency, out)
    return out


def large(s3: Any, quick: bool, large_concurrency: list[int], out: dict[str, Any]) -> None:
    """PUT then GET of large objects, ``c`` at a time, for each ``c``; results into ``out``."""
    size = (32 if quick else 256) * MiB
    blob = os.urandom(size)
    for c in large_concurrency:
        # one op alone is at the mercy of a busy machine: at c=1 take three, one after another
        n = max(c, 3)
        put = run(c, n, lambda i: s3.put_object(Bucket="bench", Key=f"large/{i}", Body=blob))
        put["MiB_per_s"] = size * n / MiB / put["wall_s"]
        out[f"PutObject {size // MiB}MiB c={c}"] = put

        def get(i: int) -> None:
            body = s3.get_object(Bucket="bench", Key=f"large/{i}")["Body"]
            for _ in body.iter_chunks(MiB):
                pass

        got = run(c, n, get)
        got["MiB_per_s"] = size * n / MiB / got["wall_s"]
        out[f"GetObject {size // MiB}MiB c={c}"] = got


def bench_floor(path: Path, quick: bool, large_concurrency: list[int]) -> dict[str, Any]:
    """The large PUT/GET against ``bench/http_floor.py`` serving ``path``: the client's own cost."""
    script = Path(__file__).with_name("http_floor.py")
    proc = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        target = Target("floor", f"http://127.0.0.1:{port}", ("floor", "floor"), None)
        out: dict[str, Any] = {}
        large(target.client("s3"), quick, large_concurrency, out)
        return out
    finally:
        proc.terminate()
        proc.wait()


def largest_object(data_dir: Path) -> Path:
    files = sorted(
        (p for p in (data_dir / "objects").rglob("*") if p.is_file()),
        key=lambda p: p.stat().st_size,
    )
    return files[-1]


def disk_read(path: Path) -> dict[str, float]:
    """Read an object's file straight from disk (page cache): the aim for a large GET."""
    t0 = time.perf_counter()
    with open(path, "rb") as fh:
        while fh.read(MiB):
            pass
    wall = time.perf_counter() - t0
    return {"ops": 1, "wall_s": wall, "MiB_per_s": path.stat().st_size / MiB / wall}


def memory_gib() -> float:
    return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3, 1)


def table(results: dict[str, dict[str, Any]]) -> str:
    rows = sorted({k for r in results.values() for k in r})
    names = list(results)
    head = f"{'measurement':28}" + "".join(f"{n:>34}" for n in names)
    lines = [head, "-" * len(head)]
    for row in rows:
        cells = []
        for n in names:
            r = results[n].get(row)
            if r is None:
                cells.append(f"{'-':>34}")
            elif "MiB_per_s" in r:
                p50 = (
                    f"p50 {r['p50_ms'] / 1000:5.2f} s" if "p50_ms" in r else f"{r['wall_s']:9.2f} s"
                )
                cells.append(f"{r['MiB_per_s']:>16.0f} MiB/s {p50}")
            else:
                cells.append(
                    f"{r['ops_per_s']:>10.0f} ops/s p50 {r['p50_ms']:6.2f} ms p99 {r['p99_ms']:6.2f}"
                )
        lines.append(f"{row:28}" + "".join(cells))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="fewer calls, 32 MiB instead of 256 MiB"
    )
    parser.add_argument(
        "--large-concurrency", default="1,16", help="concurrencies for the large objects"
    )
    args = parser.parse_args()
    large_c = [int(x) for x in args.large_concurrency.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="sageport-bench-"))
    sp = ServerProcess(tmp / "sageport")
    sp.start()
    moto, moto_url = start_moto(tmp)
    try:
        results: dict[str, dict[str, Any]] = {}
        results["sageport"] = bench_target(
            Target("sageport", sp.url, sp.keys, sp.data_dir), args.quick, large_c
        )
        big = largest_object(sp.data_dir)
        results["sageport"]["disk read (same file)"] = disk_read(big)
        results["moto"] = bench_target(
            Target("moto", moto_url, ("testing", "testing"), None), args.quick, large_c
        )
        results["floor"] = bench_floor(big, args.quick, large_c)
    finally:
        sp.stop()
        moto.terminate()
        moto.wait()
    print(table(results))
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    machine = {"machine": os.uname().nodename, "cpus": os.cpu_count(), "memory_GiB": memory_gib()}
    (out / "control_plane.json").write_text(json.dumps({**machine, "results": results}, indent=2))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
