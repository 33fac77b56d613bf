"""What the ML frameworks of one Python interpreter see of the GPUs; prints one JSON object.

Run by path with the interpreter to check (``python probe.py [--matmul] [--matmul-size=N]
[--matmul-iterations=N] [--frameworks=torch,tensorflow,jax]``), never imported by
the server: a job's interpreter may differ from the server's, a framework import may take
seconds or crash the process, and a CUDA context must not live in the server. So this file uses
the standard library only, imports each framework lazily, and turns every failure into a field
of the answer. ``sageport.gpu.checks`` reads the answer and gives the verdicts (for
``sageport doctor``, and for the pre-flight of GPU jobs, which runs this with a tiny matmul).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from types import ModuleType
from typing import Any

MATMUL_SIZE = 4096
MATMUL_ITERATIONS = 5


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip()


def probe_torch(
    matmul: bool, size: int = MATMUL_SIZE, iterations: int = MATMUL_ITERATIONS
) -> dict[str, Any]:
    if not _installed("torch"):
        return {"installed": False}
    out: dict[str, Any] = {"installed": True}
    try:
        torch = importlib.import_module("torch")
    except Exception as exc:
        out["error"] = _error(exc)
        return out
    out["version"] = str(torch.__version__)
    out["cuda_build"] = torch.version.cuda
    try:
        out["cuda_available"] = bool(torch.cuda.is_available())
        out["arch_list"] = list(torch.cuda.get_arch_list()) if out["cuda_build"] else []
        count = torch.cuda.device_count() if out["cuda_available"] else 0
        devices: list[dict[str, Any]] = []
        for index in range(count):
            major, minor = torch.cuda.get_device_capability(index)
            devices.append(
                {
                    "index": index,
                    "name": torch.cuda.get_device_name(index),
                    "capability": [major, minor],
                }
            )
        out["devices"] = devices
        if matmul:
            out["matmul"] = [_matmul(torch, d["index"], size, iterations) for d in devices]
    except Exception as exc:
        out["error"] = _error(exc)
    return out


def _matmul(
    torch: ModuleType, index: int, size: int = MATMUL_SIZE, iterations: int = MATMUL_ITERATIONS
) -> dict[str, Any]:
    """Time fp16 and fp32 matmuls on one device; check the result lives there and is finite."""
    results: dict[str, Any] = {"index": index, "size": size}
    for label, dtype in (("fp16", torch.float16), ("fp32", torch.float32)):
        try:
            device = torch.device("cuda", index)
            a = torch.randn(size, size, device=device, dtype=dtype)
            b = torch.randn(size, size, device=device, dtype=dtype)
            c = a @ b  # warm-up: kernel selection and lazy initialisation are not timed
            torch.cuda.synchronize(device)
            start = time.perf_counter()
            for _ in range(iterations):
                c = a @ b
            torch.cuda.synchronize(device)
            elapsed = max(time.perf_counter() - start, 1e-9)
            flops = 2 * size**3 * iterations
            results[label] = {
                "tflops": round(flops / elapsed / 1e12, 2),
                "result_device": str(c.device),
                "finite": bool(torch.isfinite(c).all().item()),
            }
        except Exception as exc:
            results[label] = {"error": _error(exc)}
    return results


def probe_tensorflow() -> dict[str, Any]:
    if not _installed("tensorflow"):
        return {"installed": False}
    out: dict[str, Any] = {"installed": True}
    try:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        tf = importlib.import_module("tensorflow")

        out["version"] = str(tf.__version__)
        try:
            out["cuda_build"] = bool(tf.test.is_built_with_cuda())
        except Exception as exc:
            out["cuda_build_error"] = _error(exc)
        gpus = tf.config.list_physical_devices("GPU")
        out["gpus"] = [g.name for g in gpus]
        try:
            for gpu in gpus:
                tf.config.experimental.set_memory_growth(gpu, True)
            out["memory_growth"] = "ok"
        except Exception as exc:
            out["memory_growth"] = _error(exc)
        if gpus:
            try:
                with tf.device("/GPU:0"):
                    x = tf.random.uniform((256, 256))
                    y = tf.matmul(x, x)
                out["placed_on"] = y.device
            except Exception as exc:
                out["placed_on_error"] = _error(exc)
    except Exception as exc:
        out["error"] = _error(exc)
    return out


def probe_jax() -> dict[str, Any]:
    if not _installed("jax"):
        return {"installed": False}
    out: dict[str, Any] = {"installed": True}
    try:
        jax = importlib.import_module("jax")

        out["version"] = str(jax.__version__)
        out["devices"] = [f"{d.platform}:{d.id}" for d in jax.devices()]
    except Exception as exc:
        out["error"] = _error(exc)
    return out


def _option(argv: list[str], name: str) -> str | None:
    values = [a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}=")]
    return values[-1] if values else None


def main(argv: list[str]) -> int:
    matmul = "--matmul" in argv
    frameworks = _option(argv, "frameworks")
    wanted = (
        set(frameworks.split(",")) if frameworks is not None else {"torch", "tensorflow", "jax"}
    )
    size = int(_option(argv, "matmul-size") or MATMUL_SIZE)
    iterations = int(_option(argv, "matmul-iterations") or MATMUL_ITERATIONS)
    answer: dict[str, Any] = {
        "python": sys.executable,
        "python_version": sys.version.split()[0],
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }
    probes: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("torch", lambda: probe_torch(matmul, size, iterations)),
        ("tensorflow", probe_tensorflow),
        ("jax", probe_jax),
    ]
    for name, probe in probes:
        if name not in wanted:
            continue
        try:
            answer[name] = probe()
        except BaseException:  # one framework's crash must not hide the others
            answer[name] = {"installed": True, "error": traceback.format_exc(limit=2)}
    sys.stdout.write(json.dumps(answer) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
