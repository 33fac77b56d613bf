"""The GPU variant of the serving benchmark: run it as ``python bench/serving.py --gpu``.

How to run, on a machine with an NVIDIA GPU::

    pip install -e . nvidia-ml-py                 # sageport, and NVML for its GPU discovery
    python bench/serving.py --gpu                 # a few minutes; skips cleanly without CUDA

A model whose forward dominates (``_common.wide_mlp``, width x depth set by ``--gpu-width`` /
``--gpu-depth``: the defaults, 8192 x 512, are ~69 GFLOP per row, some 45 ms per 32-row batch
on an H100-class GPU in fp32, against well under a millisecond of HTTP and codec work per
request), deployed through the real API on ``--gpu-instance-type`` (one GPU)
with sageport's dynamic batching on through the model's environment
(``SAGEMAKER_TS_BATCH_SIZE`` / ``SAGEMAKER_TS_MAX_BATCH_DELAY``). ``--gpu-clients`` concurrent
clients (default 64, twice the batch size, so one batch gathers while the other runs) drive the
signed InvokeEndpoint path, then the endpoint's own model server ``/invocations`` directly.
Each is reported as requests/s and as a ratio to the model's offline throughput at the
maximum batch size: a ready batch of ``--gpu-batch-size`` rows copied to the GPU, one forward
pass, the result copied back, back to back in one process (issue 5's aim: ratio >= 0.9).
The batch sizes the model server observed are reported per phase.

``--gpu-on-cpu`` runs the same flow on the CPU (``ml.m5.large``) without CUDA, to check the
script itself on a machine without a GPU; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from _common import (
    Signer,
    bodies,
    drive,
    http_get,
    machine,
    post,
    run_async,
    sample_row,
    save_torchscript,
    tarball,
    wide_mlp,
)
from _sageport import Sageport

GPU_KEYS = (
    "gpu_width",
    "gpu_depth",
    "gpu_batch_size",
    "gpu_delay_ms",
    "gpu_clients",
    "gpu_instance_type",
    "gpu_warmup",
    "seconds",
    "bodies",
)


def offline(model_pt: Path, device: Any, batch: int, seconds: float) -> dict[str, Any]:
    """Rows/s of back-to-back batches of ``batch`` rows: host → device, forward, → host."""
    import torch

    model = torch.jit.load(str(model_pt), map_location=device)
    x = torch.from_numpy(sample_row()).repeat(batch, 1)
    with torch.inference_mode():
        for _ in range(5):
            model(x.to(device)).cpu()
        batches = 0
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            model(x.to(device)).cpu()  # .cpu() waits for the GPU
            batches += 1
        elapsed = time.perf_counter() - started
    return {
        "batch": batch,
        "batches": batches,
        "rows_per_s": round(batch * batches / elapsed, 1),
        "ms_per_batch": round(elapsed / batches * 1000, 3),
    }


def histogram(sageport: Sageport) -> Counter[int]:
    total: Counter[int] = Counter()
    for hist in sageport.batch_histograms().values():
        total.update({int(size): int(n) for size, n in (hist or {}).items()})
    return total


def run_gpu(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    import torch

    base: dict[str, Any] = {**machine(), "config": {k: getattr(args, k) for k in GPU_KEYS}}
    on_cpu = bool(getattr(args, "gpu_on_cpu", False))
    if not torch.cuda.is_available() and not on_cpu:
        reason = "torch.cuda.is_available() is False: no CUDA device on this machine"
        print(f"GPU variant skipped: {reason}")
        return {**base, "skipped": reason}
    device = torch.device("cpu" if on_cpu else "cuda")
    instance_type = "ml.m5.large" if on_cpu else args.gpu_instance_type
    base["device"] = "cpu (--gpu-on-cpu)" if on_cpu else torch.cuda.get_device_name(0)
    model_dir = tmp / "gpu-model"
    model_dir.mkdir()
    model_pt = save_torchscript(wide_mlp(args.gpu_width, args.gpu_depth), model_dir / "model.pt")
    print(f"model: 784 -> {args.gpu_width} x {args.gpu_depth} -> 10 on {base['device']}")
    offline_runs = {
        str(b): offline(model_pt, device, b, args.seconds) for b in sorted({1, args.gpu_batch_size})
    }
    peak = offline_runs[str(args.gpu_batch_size)]["rows_per_s"]
    for run in offline_runs.values():
        print(f"  offline batch {run['batch']:>3}: {run['rows_per_s']:>9.1f} rows/s")
    archive = tarball({"model.pt": model_pt})
    env = {
        "SAGEMAKER_TS_BATCH_SIZE": str(args.gpu_batch_size),
        "SAGEMAKER_TS_MAX_BATCH_DELAY": str(args.gpu_delay_ms),
    }
    row_bodies = {k: v for k, v in bodies(sample_row()).items() if k in args.bodies}
    served: dict[str, Any] = {}
    with Sageport(tmp / "sageport") as sageport:
        name = sageport.deploy("gpu-bench", archive, env, instance_type, timeout=900)
        try:
            ports = sageport.model_server_ports()
            for body_name, (body, ctype) in row_bodies.items():
                phases: list[tuple[str, Any, int]] = [
                    (
                        "invoke",
                        Signer(
                            sageport.port, name, sageport.keys, sageport.region, body, ctype, ctype
                        ),
                        sageport.port,
                    )
                ]
                if ports:
                    phases.append(("server", post("/invocations", body, ctype, ctype), ports[0]))
                for phase, request, port in phases:
                    before = histogram(sageport)
                    stats = run_async(
                        drive(port, request, args.gpu_clients, args.seconds, args.gpu_warmup)
                    )
                    seen = histogram(sageport) - before
                    stats["batch_size_histogram"] = {str(k): seen[k] for k in sorted(seen)}
                    stats["ratio_to_offline"] = round(stats["req_per_s"] / peak, 3)
                    served[f"{phase}-{body_name}"] = stats
                    print(
                        f"  {phase:6} {body_name:4} c={args.gpu_clients}: "
                        f"{stats['req_per_s']:>9.1f} req/s  p50 {stats['p50_ms']} ms  "
                        f"ratio {stats['ratio_to_offline']:.3f}  batches {stats['batch_size_histogram']}",
                        flush=True,
                    )
            if ports:
                metrics = http_get(f"http://127.0.0.1:{ports[0]}/metrics")[1]
                served["model_server_metrics"] = json.loads(metrics)
        finally:
            sageport.delete(name)
    return {**base, "offline": offline_runs, "served": served}
