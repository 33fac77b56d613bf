"""Control-plane and S3 benchmark: sageport against a moto server, side by side, in one run.

How to run (from the repository root)::

    pip install -e '.[test]'            # sageport
    pip install 'moto[server]'          # for this benchmark only: not a dependency of sageport
    python bench/control_plane.py --quick   # smoke run: 200 calls per cell, 32 MiB, ~1 minute
    python bench/control_plane.py           # the recorded run: 2000 calls, 256 MiB, quiet box

Starts a ``sageport serve`` and a moto server (``python -m moto.server``, its threaded
werkzeug server) on loopback, makes the same boto3 calls against each — DescribeModel, S3
PutObject/GetObject of 1 KiB and 256 MiB objects, at concurrency 1 and 16 — and prints a
table. Both sides get the same client (one boto3 client per service, same config, same
connection pool, 16 threads at c=16) and the same warm-up: before each timed cell, untimed
calls of the same operation at the same concurrency (connections open, threads started,
botocore's lazy loading done); the large objects run after the small ones on the same warm
pool. One difference stays, in moto's favour: moto checks no signatures, sageport verifies
every one. The 256 MiB GET is also compared with reading the object's file straight from disk
(as many reads as GETs, 1 MiB at a time, after an untimed one) — with boto3's body reader
and with a raw client (a presigned URL read by http.client into one reused buffer, the ``raw
client`` row), since boto3 alone tops out near the floor — and both large operations
with the same boto3 calls against ``bench/http_floor.py``, a raw asyncio server that discards
PUT bodies and sendfile()s the object for GET: the "floor" column is what the client alone
costs, which no server can beat. The ratio column is sageport's throughput over moto's
(above 1: sageport ahead), and the last lines compare with issue 2's aims. Results go to
``bench/results/control_plane.json``. Not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
from _common import machine, write_results
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


def run(
    concurrency: int, count: int, op: Callable[[int], Any], warmup: int = 0
) -> dict[str, float]:
    """``op(i)`` for ``i`` in ``range(count)`` on ``concurrency`` threads; latency and rate.

    ``warmup`` untimed calls (``op(count + j)``) come first on the same threads.
    """
    latencies: list[float] = []

    def timed(i: int) -> None:
        t0 = time.perf_counter()
        op(i)
        latencies.append(time.perf_counter() - t0)

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(op, range(count, count + warmup)))
        t0 = time.perf_counter()
        if concurrency == 1:
            for i in range(count):
                timed(i)
        else:
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
    w = 50  # warm-up calls per cell
    for c in (1, 16):
        out[f"DescribeModel c={c}"] = run(
            c, n, lambda _i: sm.describe_model(ModelName="bench-model"), w
        )
    small = os.urandom(1024)
    for c in (1, 16):
        out[f"PutObject 1KiB c={c}"] = run(
            c, n, lambda i: s3.put_object(Bucket="bench", Key=f"small/{i}", Body=small), w
        )
        # the warm-up GETs read keys n..n+w, written by the PUT cell's warm-up
        out[f"GetObject 1KiB c={c}"] = run(
            c, n, lambda i: s3.get_object(Bucket="bench", Key=f"small/{i}")["Body"].read(), w
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

        if c == 1:
            # the same GET from a client that costs next to nothing: a presigned URL read with
            # http.client into one reused buffer. boto3's body reader tops out near the floor
            # column; this row shows what the server itself streams.
            urls = [
                s3.generate_presigned_url(
                    "get_object", Params={"Bucket": "bench", "Key": f"large/{i}"}
                )
                for i in range(n)
            ]
            raw = run(1, n, lambda i, urls=urls: raw_get(urls[i]))
            raw["MiB_per_s"] = size * n / MiB / raw["wall_s"]
            out[f"GetObject {size // MiB}MiB c=1 raw client"] = raw


def raw_get(url: str) -> int:
    """GET ``url`` with http.client, reading the body into one reused 1 MiB buffer."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    try:
        conn.request("GET", f"{parts.path}?{parts.query}" if parts.query else parts.path)
        resp = conn.getresponse()
        if resp.status != 200:
            raise RuntimeError(f"GET {parts.path}: {resp.status} {resp.read()[:200]!r}")
        buf = memoryview(bytearray(MiB))
        total = 0
        while got := resp.readinto(buf):
            total += got
        return total
    finally:
        conn.close()


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


def disk_read(path: Path, n: int = 3) -> dict[str, float]:
    """Read an object's file straight from disk ``n`` times, 1 MiB at a time (as the GET
    reads its body), after one untimed read: the aim for a large GET, from the page cache."""

    def read() -> None:
        with open(path, "rb") as fh:
            while fh.read(MiB):
                pass

    read()
    t0 = time.perf_counter()
    for _ in range(n):
        read()
    wall = time.perf_counter() - t0
    return {"ops": n, "wall_s": wall, "MiB_per_s": path.stat().st_size * n / MiB / wall}


def cell(r: dict[str, Any] | None) -> str:
    if r is None:
        return f"{'-':>34}"
    if "MiB_per_s" in r:
        p50 = f"p50 {r['p50_ms'] / 1000:5.2f} s" if "p50_ms" in r else f"{r['wall_s']:9.2f} s"
        return f"{r['MiB_per_s']:>16.0f} MiB/s {p50}"
    return f"{r['ops_per_s']:>10.0f} ops/s p50 {r['p50_ms']:6.2f} ms p99 {r['p99_ms']:6.2f}"


def rate(r: dict[str, Any] | None) -> float | None:
    if r is None:
        return None
    return float(r["MiB_per_s"] if "MiB_per_s" in r else r["ops_per_s"])


def table(results: dict[str, dict[str, Any]]) -> str:
    rows = sorted({k for r in results.values() for k in r})
    names = list(results)
    head = f"{'measurement':28}" + "".join(f"{n:>34}" for n in names) + f"{'sageport/moto':>15}"
    lines = [head, "-" * len(head)]
    for row in rows:
        cells = "".join(cell(results[n].get(row)) for n in names)
        ours, theirs = rate(results["sageport"].get(row)), rate(results["moto"].get(row))
        ratio = f"{ours / theirs:>14.2f}x" if ours and theirs else f"{'':>15}"
        lines.append(f"{row:28}{cells}{ratio}")
    return "\n".join(lines)


def aims(results: dict[str, dict[str, Any]], size_mib: int) -> dict[str, Any]:
    """Issue 2's aims: control plane ahead of moto; a large GET within 2x of a disk read."""
    ours, moto = results["sageport"], results["moto"]
    out: dict[str, Any] = {}
    for row in ("DescribeModel c=1", "DescribeModel c=16"):
        out[f"{row}: sageport/moto throughput"] = round(
            ours[row]["ops_per_s"] / moto[row]["ops_per_s"], 2
        )
    disk = ours["disk read (same file)"]["MiB_per_s"]
    for row in (f"GetObject {size_mib}MiB c=1", f"GetObject {size_mib}MiB c=1 raw client"):
        get = ours.get(row)
        if get:
            out[f"{row}: GET time / disk read time (aim <= 2)"] = round(disk / get["MiB_per_s"], 2)
    return out


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
        results["sageport"]["disk read (same file)"] = disk_read(big, max(large_c[0], 3))
        results["moto"] = bench_target(
            Target("moto", moto_url, ("testing", "testing"), None), args.quick, large_c
        )
        results["floor"] = bench_floor(big, args.quick, large_c)
    finally:
        sp.stop()
        moto.terminate()
        moto.wait()
    print(table(results))
    size_mib = 32 if args.quick else 256
    summary = aims(results, size_mib)
    for name, value in summary.items():
        print(f"{name}: {value}")
    config = {"quick": args.quick, "large_concurrency": large_c, "large_MiB": size_mib}
    out = {**machine(), "config": config, "aims": summary, "results": results}
    print(f"wrote {write_results('control_plane.json', out)}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
