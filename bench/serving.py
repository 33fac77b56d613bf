"""Serving benchmark: one 784-256-10 MLP, from in-process forward to InvokeEndpoint and TorchServe.

How to run (from the repository root)::

    pip install -e '.[test]'                      # sageport itself, torch
    pip install torchserve torch-model-archiver   # for the TorchServe rows only; Java 17+ on PATH
    python bench/serving.py --quick               # smoke run: ~2 s per cell, ~2 minutes in all
    python bench/serving.py                       # the recorded run: 10 s per cell, quiet machine
    python bench/serving.py --gpu                 # the GPU variant (skips cleanly without CUDA)

TorchServe and its archiver are benchmark-only tools: they are not dependencies of sageport
or of its ``[test]`` extra. Without them the TorchServe rows say why they are missing.

The same TorchScript MLP (``_common.mlp``), the same one-row bodies (JSON and NPY, Accept =
Content-Type) and the same client everywhere: ``_common``'s asyncio keep-alive HTTP/1.1 client,
one connection per concurrent caller, warmed up (untimed) before each timed cell, the first
answer on each connection checked against the in-process output. Rows (``--cases``):

- ``forward``: in-process ``model(x)`` on a ready tensor (torch, no HTTP, no codecs);
- ``inprocess``: in-process decode → forward → encode (``torchserve_handler``'s functions,
  which are sageport's codecs), on 1 or 16 threads;
- ``server`` / ``server-batch``: sageport's model server (``python -m sageport.serving.server``)
  ``POST /invocations`` directly, without / with dynamic batching;
- ``invoke`` / ``invoke-batch``: the full signed InvokeEndpoint path: ``sageport serve`` on a
  temp data folder, the model deployed through the real API (CreateModel, CreateEndpointConfig,
  CreateEndpoint with boto3, ``ml.m5.large``), every request signed with botocore's SigV4Auth
  (its cost, shown as ``signing_us``, is in the latency: boto3's own ~1 ms per call would hide
  the server);
- ``torchserve`` / ``torchserve-batch``: TorchServe on the same machine serving the same
  ``model.pt`` with ``torchserve_handler.py`` (the same per-request work), registered without /
  with ``batch_size``/``max_batch_delay``. Its workers: ``--ts-workers`` (default: one per
  core, TorchServe's own CPU default); each worker's torch threads: cores / workers (sageport's
  rule for its own workers, so neither side oversubscribes).

Batching, both servers: ``--batch-size`` requests or ``--delay-ms``, whichever first
(sageport reads the SageMaker PyTorch container's ``SAGEMAKER_TS_BATCH_SIZE`` /
``SAGEMAKER_TS_MAX_BATCH_DELAY``). Client and servers share the machine's cores, as the aim in
issue 5 says ("on this 2-core machine"), so each figure includes the client's CPU time.

Output: a table (rows = case, columns = concurrency x body, cells = req/s, p50 and p99 in ms)
and ``bench/results/serving.json`` (``--out``). Not a test: nothing here asserts.

GPU variant (``--gpu``; runs only when ``torch.cuda.is_available()``, else it prints why and
writes ``{"skipped": ...}``): a model whose forward dominates (``_common.wide_mlp``: 784 →
``--gpu-width`` → the same layer ``--gpu-depth`` times → 10, tanh), deployed on ``ml.g5.xlarge``
with sageport batching on (``SAGEMAKER_TS_BATCH_SIZE=--gpu-batch-size``,
``SAGEMAKER_TS_MAX_BATCH_DELAY=--gpu-delay-ms``), ``--gpu-clients`` concurrent clients on the
signed InvokeEndpoint path and on the model server directly; reported against the same
model's offline throughput at the maximum batch size (a ready batch of ``--gpu-batch-size``
rows copied to the GPU, forward, result copied back, back to back) as a ratio. Results in
``bench/results/serving_gpu.json``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from _common import (
    Signer,
    bodies,
    drive,
    http_get,
    machine,
    post,
    run_async,
    sample_row,
    signing_cost_us,
    stop,
    summarize,
    tarball,
    write_mlp,
    write_results,
)
from _sageport import Sageport
from _torchserve import TorchServe, available
from model_server import start_model_server
from serving_gpu import run_gpu

from sageport.serving import codecs

CASES = {
    "forward": "in-process forward (torch)",
    "inprocess": "in-process decode/forward/encode",
    "server": "sageport model server /invocations",
    "server-batch": "  + batching",
    "invoke": "sageport InvokeEndpoint (signed)",
    "invoke-batch": "  + batching",
    "torchserve": "TorchServe /predictions",
    "torchserve-batch": "  + batching",
}


class Bench:
    """What every case needs: settings, the model files, the bodies, the expected answers."""

    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        import torch

        self.args = args
        self.tmp = tmp
        self.model_dir = tmp / "model"
        self.model_dir.mkdir()
        self.model_pt = write_mlp(self.model_dir)
        self.archive = tarball({"model.pt": self.model_pt})
        self.row = sample_row()
        self.bodies = {k: v for k, v in bodies(self.row).items() if k in args.bodies}
        model = torch.jit.load(str(self.model_pt))
        with torch.inference_mode():
            self.expected = model(torch.from_numpy(self.row)).numpy()

    def cells(self) -> list[tuple[int, str, bytes, str]]:
        return [
            (c, name, body, ctype)
            for c in self.args.concurrency
            for name, (body, ctype) in self.bodies.items()
        ]

    def check(self, content_type: str) -> Callable[[bytes], bool]:
        """Whether an answer body (of ``content_type``) is the model's output for the row."""

        def ok(body: bytes) -> bool:
            if content_type == codecs.JSON:
                got = np.asarray(json.loads(body), dtype=np.float32)
            else:
                got = np.load(io.BytesIO(body), allow_pickle=False)
            return got.shape == self.expected.shape and bool(
                np.allclose(got, self.expected, atol=1e-4)
            )

        return ok

    def batch_env(self) -> dict[str, str]:
        return {
            "SAGEMAKER_TS_BATCH_SIZE": str(self.args.batch_size),
            "SAGEMAKER_TS_MAX_BATCH_DELAY": str(self.args.delay_ms),
        }

    def http_cells(self, port: int, path: str) -> dict[str, Any]:
        out = {}
        for c, name, body, ctype in self.cells():
            raw = post(path, body, ctype, ctype)
            out[f"c{c}-{name}"] = run_async(
                drive(port, raw, c, self.args.seconds, self.args.warmup, self.check(ctype))
            )
            print(f"  c={c:<3} {name:5} {fmt(out[f'c{c}-{name}'])}", flush=True)
        return out


# -- the cases ---------------------------------------------------------------------------------


def threaded(fn: Callable[[], object], concurrency: int, seconds: float, warmup: int) -> Any:
    """``fn`` back to back on ``concurrency`` threads for ``seconds``, after a warm-up."""
    latencies: list[float] = []
    barrier = threading.Barrier(concurrency + 1)
    deadline = [0.0]

    def worker() -> None:
        for _ in range(warmup):
            fn()
        barrier.wait()
        barrier.wait()
        mine = []
        while time.perf_counter() < deadline[0]:
            start = time.perf_counter()
            fn()
            mine.append(time.perf_counter() - start)
        latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    barrier.wait()  # all warmed up
    started = time.perf_counter()
    deadline[0] = started + seconds
    barrier.wait()
    for thread in threads:
        thread.join()
    return summarize(latencies, time.perf_counter() - started, 0)


def case_forward(bench: Bench) -> dict[str, Any]:
    import torch

    model = torch.jit.load(str(bench.model_pt))
    x = torch.from_numpy(bench.row)

    def fn() -> object:
        with torch.inference_mode():
            return model(x)

    out: dict[str, Any] = {}
    for c in bench.args.concurrency:
        stats = threaded(fn, c, bench.args.seconds, bench.args.warmup)
        print(f"  c={c:<3} (any) {fmt(stats)}", flush=True)
        for name in bench.bodies:  # the body does not enter: one measurement, every column
            out[f"c{c}-{name}"] = stats
    return out


def case_inprocess(bench: Bench) -> dict[str, Any]:
    import torch
    import torchserve_handler as handler

    model = torch.jit.load(str(bench.model_pt))
    cpu = torch.device("cpu")
    out: dict[str, Any] = {}
    for c, name, body, ctype in bench.cells():

        def fn(body: bytes = body, ctype: str = ctype) -> tuple[bytes, str]:
            tensor = handler.decode(body, ctype)
            return handler.encode(handler.forward(model, [tensor], cpu)[0], ctype)

        if not bench.check(ctype)(fn()[0]):
            raise RuntimeError("the in-process answer differs from the model's output")
        out[f"c{c}-{name}"] = threaded(fn, c, bench.args.seconds, bench.args.warmup)
        print(f"  c={c:<3} {name:5} {fmt(out[f'c{c}-{name}'])}", flush=True)
    return out


def case_server(bench: Bench, batching: bool) -> dict[str, Any]:
    env = bench.batch_env() if batching else {}
    log = bench.tmp / f"model-server{'-batch' if batching else ''}.log"
    proc, port = start_model_server(bench.model_dir, env, log)
    try:
        out = bench.http_cells(port, "/invocations")
        if batching:
            metrics = json.loads(http_get(f"http://127.0.0.1:{port}/metrics")[1])
            out["batch_size_histogram"] = metrics.get("batch_size_histogram")
    finally:
        stop(proc)
    return out


def case_invoke(bench: Bench, batching: bool, sageport: Sageport) -> dict[str, Any]:
    env = bench.batch_env() if batching else {}
    name = sageport.deploy("bench-batch" if batching else "bench", bench.archive, env)
    try:
        out: dict[str, Any] = {}
        for c, body_name, body, ctype in bench.cells():
            signer = Signer(sageport.port, name, sageport.keys, sageport.region, body, ctype, ctype)
            stats = run_async(
                drive(
                    sageport.port,
                    signer,
                    c,
                    bench.args.seconds,
                    bench.args.warmup,
                    bench.check(ctype),
                )
            )
            out[f"c{c}-{body_name}"] = stats
            print(f"  c={c:<3} {body_name:5} {fmt(stats)}", flush=True)
        out["signing_us"] = signing_cost_us(signer)
        if batching:
            out["batch_size_histogram"] = sageport.batch_histograms()
    finally:
        sageport.delete(name)
    return out


def case_torchserve(bench: Bench, batching: bool, ts: TorchServe) -> dict[str, Any]:
    name = "mlp_batched" if batching else "mlp"
    workers = bench.args.ts_workers
    if batching:
        ts.register(name, workers, bench.args.batch_size, round(bench.args.delay_ms))
    else:
        ts.register(name, workers)
    out = bench.http_cells(ts.port, f"/predictions/{name}")
    out["registration"] = ts.describe(name)
    return out


# -- orchestration -----------------------------------------------------------------------------


def run_cases(bench: Bench) -> dict[str, Any]:
    """Each selected case in turn; one that fails is recorded with its error, the rest go on."""
    selected = [case for case in CASES if case in bench.args.cases]
    results: dict[str, Any] = {}

    def attempt(case: str, fn: Callable[..., dict[str, Any]], *args: Any) -> None:
        print(f"{case}: {CASES[case].strip()}", flush=True)
        try:
            results[case] = fn(bench, *args)
        except Exception as exc:
            traceback.print_exc()
            results[case] = {"error": f"{type(exc).__name__}: {exc}"}

    for case in selected:
        if case == "forward":
            attempt(case, case_forward)
        elif case == "inprocess":
            attempt(case, case_inprocess)
        elif case.startswith("server"):
            attempt(case, case_server, case.endswith("batch"))
    invoke = [case for case in selected if case.startswith("invoke")]
    if invoke:
        try:
            with Sageport(bench.tmp / "sageport") as sageport:
                for case in invoke:
                    attempt(case, case_invoke, case.endswith("batch"), sageport)
        except Exception as exc:  # the server itself did not start
            for case in invoke:
                results.setdefault(case, {"error": f"sageport serve: {exc}"})
    torchserve = [case for case in selected if case.startswith("torchserve")]
    if torchserve:
        missing = available()
        if missing:
            for case in torchserve:
                results[case] = {"error": missing}
            return results
        threads = max(1, (os.cpu_count() or 1) // bench.args.ts_workers)
        try:
            with TorchServe(bench.tmp / "torchserve", bench.model_pt, threads) as ts:
                for case in torchserve:
                    attempt(case, case_torchserve, case.endswith("batch"), ts)
        except Exception as exc:
            for case in torchserve:
                results.setdefault(case, {"error": f"torchserve: {exc}"})
    return results


def fmt(stats: dict[str, Any]) -> str:
    if stats.get("p50_ms") is None:
        return f"{'no answers':>22}"
    return f"{stats['req_per_s']:>7.0f} {stats['p50_ms']:6.2f} {stats['p99_ms']:7.2f}"


def table(results: dict[str, Any], concurrency: list[int], body_names: list[str]) -> str:
    columns = [f"c{c}-{name}" for c in concurrency for name in body_names]
    titles = ["c=" + key[1:].replace("-", " ") for key in columns]
    head = f"{'case':36}" + "".join(f"{title:>23}" for title in titles)
    sub = f"{'':36}" + "".join(f"{'req/s  p50ms   p99ms':>23}" for _ in columns)
    lines = [head, sub, "-" * len(head)]
    for case, label in CASES.items():
        if case not in results:
            continue
        r = results[case]
        if "error" in r:
            lines.append(f"{label:36} {r['error'][:120]}")
            continue
        cells = "".join(f" {fmt(r[k])}" if k in r else f"{'-':>23}" for k in columns)
        lines.append(f"{label:36}{cells}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 s per cell")
    parser.add_argument("--seconds", type=float, default=None, help="per cell (default 10)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed requests per caller")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--bodies", nargs="+", default=["json", "npy"], choices=["json", "npy"])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--batch-size", type=int, default=8, help="both servers' batches")
    parser.add_argument("--delay-ms", type=float, default=2.0, help="both servers' max delay")
    parser.add_argument(
        "--ts-workers", type=int, default=os.cpu_count() or 1, help="TorchServe workers"
    )
    parser.add_argument("--out", type=Path, default=None)
    gpu = parser.add_argument_group("GPU variant")
    gpu.add_argument("--gpu", action="store_true", help="run the GPU variant instead")
    gpu.add_argument("--gpu-width", type=int, default=8192)
    gpu.add_argument("--gpu-depth", type=int, default=512)
    gpu.add_argument("--gpu-batch-size", type=int, default=32)
    gpu.add_argument("--gpu-delay-ms", type=float, default=5.0)
    gpu.add_argument("--gpu-clients", type=int, default=64)
    gpu.add_argument("--gpu-warmup", type=int, default=5, help="untimed requests per client")
    gpu.add_argument("--gpu-instance-type", default="ml.g5.xlarge")
    gpu.add_argument(
        "--gpu-on-cpu", action="store_true", help="the GPU flow on the CPU, to test the script"
    )
    args = parser.parse_args(argv)
    if args.seconds is None:
        args.seconds = 2.0 if args.quick else 10.0
    if args.warmup is None:
        args.warmup = 10 if args.quick else 50
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="sageport-serving-bench-"))
    try:
        if args.gpu:
            out = run_gpu(args, tmp)
            path = write_results("serving_gpu.json", out, args.out)
        else:
            started = time.time()
            bench = Bench(args, tmp)
            results = run_cases(bench)
            print()
            print(table(results, args.concurrency, list(bench.bodies)))
            config = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
            out = {
                **machine(),
                "config": config,
                "wall_s": round(time.time() - started, 1),
                "results": results,
            }
            path = write_results("serving.json", out, args.out)
        print(f"\nwrote {path}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
