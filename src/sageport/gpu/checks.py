"""The verdicts on what a Python's frameworks see of the GPUs; shared by doctor and pre-flight.

``sageport doctor`` (in the server's environment) and the pre-flight of a GPU job (in the
job's own interpreter, which may not have sageport installed) ask the same questions: is
``CUDA_VISIBLE_DEVICES`` sane, is torch built with CUDA and does it find the GPUs, is each
GPU's compute capability in the wheel's arch list, does a matmul land on each GPU, what do
TensorFlow and JAX list. So the answers are computed here, once, from the JSON that
``probe.py`` prints. This module uses the standard library only and runs on Python 3.9+: the
pre-flight loads it by path (``preflight_script.py``).

A check that fails only because there is no GPU at all is a warning unless a GPU is
*expected* (``gpu_expected``: the machine has one, ``--require-gpu`` was given, or the job
was granted one); a CUDA build that cannot see a GPU that is there is a failure.
"""

from __future__ import annotations

import enum
import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROBE_SCRIPT = Path(__file__).with_name("probe.py")
"""The stdlib-only probe, run by path with the interpreter under test."""

if sys.version_info >= (3, 11):  # noqa: UP036 - jobs may run an older Python
    _StrEnum = enum.StrEnum
else:  # pragma: no cover - a job's older interpreter

    class _StrEnum(str, enum.Enum):  # noqa: UP042
        def __str__(self) -> str:
            return str(self.value)


class Verdict(_StrEnum):
    OK = "ok"
    WARN = "warn"
    """Works, but something will surprise a user (a fake inventory, a PTX-only arch)."""
    FAIL = "fail"
    SKIP = "skip"
    """Not applicable here (a framework that is not installed)."""


@dataclass(frozen=True)
class Check:
    name: str
    verdict: Verdict
    detail: str
    fix: str = ""


# -- the probe subprocess ------------------------------------------------------------------


def run_probe(
    python: str,
    env: Mapping[str, str],
    *,
    matmul: bool = True,
    timeout: float = 180.0,
    args: Sequence[str] = (),
) -> tuple[dict[str, Any] | None, str]:
    """The probe's answer for ``python``, or ``None`` and why it gave none.

    ``args`` go to the probe as they are (``--frameworks=torch``, ``--matmul-size=256``).
    """
    argv = [python, str(PROBE_SCRIPT), *(["--matmul"] if matmul else []), *args]
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, env=dict(env), check=False
        )
    except subprocess.TimeoutExpired:
        return None, f"the framework probe did not finish within {timeout:g} s (a hung CUDA init?)"
    except OSError as exc:
        return None, f"could not run {python}: {exc}"
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return None, f"the framework probe exited with {done.returncode}: {' | '.join(tail)}"
    try:
        answer = json.loads(lines[-1])
    except ValueError:
        return None, "the framework probe printed something that is not JSON"
    return (
        (answer, "") if isinstance(answer, dict) else (None, "the probe's answer is not an object")
    )


def is_probe_process(pid: int) -> bool:
    """Whether ``pid`` runs this probe (its GPU use is sageport's pre-flight, not the job's)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    # by its place in the package, not its full path: a job may see the package elsewhere
    return b"sageport/gpu/probe.py" in cmdline


# -- CUDA_VISIBLE_DEVICES -------------------------------------------------------------------


def check_visible_devices(
    value: str | None,
    device_count: int | None = None,
    uuids: Sequence[str] = (),
    order: str | None = None,
) -> Check:
    """``CUDA_VISIBLE_DEVICES`` against the devices (``device_count`` None: unknown)."""
    name = "CUDA_VISIBLE_DEVICES"
    if value is None:
        return Check(name, Verdict.OK, "not set: CUDA sees every GPU (sageport sets it per job)")
    if not value.strip():
        return Check(
            name,
            Verdict.WARN,
            "set but empty: CUDA sees no GPU at all in this shell",
            "unset CUDA_VISIBLE_DEVICES before `sageport serve`/`doctor`; sageport sets it per job",
        )
    items = [v.strip() for v in value.split(",")]
    problems: list[str] = []
    if len(set(items)) != len(items):
        problems.append("lists a device twice")
    for item in items:
        if item.lstrip("-").isdigit():
            if int(item) < 0:
                problems.append(f"{item!r} hides every device after it")
            elif device_count and int(item) >= device_count:
                problems.append(f"index {item} does not exist (this host has {device_count})")
        elif item.startswith(("GPU-", "MIG-")):
            if uuids and not any(u.startswith(item) for u in uuids):
                problems.append(f"{item} matches no GPU of this host")
        else:
            problems.append(f"{item!r} is neither an index nor a GPU UUID")
    if problems:
        return Check(
            name,
            Verdict.FAIL,
            f"{value!r}: " + "; ".join(problems),
            "unset it, or list indices/UUIDs that `nvidia-smi -L` shows",
        )
    note = (
        ""
        if order == "PCI_BUS_ID" or not items[0].isdigit()
        else ("; indices follow CUDA's fastest-first order unless CUDA_DEVICE_ORDER=PCI_BUS_ID")
    )
    return Check(name, Verdict.OK, f"{value!r}: {len(items)} device(s) visible{note}")


# -- frameworks ---------------------------------------------------------------------------

TORCH_CUDA_FIX = (
    "pip install torch --index-url https://download.pytorch.org/whl/cu124 "
    "(pick the CUDA version `nvidia-smi` supports)"
)


def torch_checks(
    probe: Mapping[str, Any], gpu_expected: bool, *, matmul_rate: bool = True
) -> list[Check]:
    """Install, CUDA build, ``is_available()``, arch list per GPU, matmul per GPU."""
    torch = probe.get("torch") or {}
    if not torch.get("installed"):
        return [Check("PyTorch", Verdict.SKIP, f"not installed in {probe.get('python')}")]
    if torch.get("error") and "version" not in torch:
        return [
            Check("PyTorch", Verdict.FAIL, f"import failed: {torch['error']}", "reinstall torch")
        ]
    version = torch.get("version", "?")
    missing = Verdict.FAIL if gpu_expected else Verdict.WARN
    if not torch.get("cuda_build"):
        return [
            Check(
                "PyTorch CUDA build",
                missing,
                f"torch {version} is a CPU-only build: jobs cannot use a GPU",
                TORCH_CUDA_FIX,
            )
        ]
    checks = [
        Check("PyTorch CUDA build", Verdict.OK, f"torch {version}, CUDA {torch['cuda_build']}")
    ]
    if not torch.get("cuda_available"):
        why = f": {torch['error']}" if torch.get("error") else ""
        checks.append(
            Check(
                "torch.cuda.is_available()",
                missing,
                f"False{why}" if gpu_expected else f"False{why or ': no GPU on this machine'}",
                "check the driver (above) supports this CUDA build, and CUDA_VISIBLE_DEVICES"
                if gpu_expected
                else "",
            )
        )
        return checks
    devices = torch.get("devices") or []
    checks.append(Check("torch.cuda.is_available()", Verdict.OK, f"True, {len(devices)} device(s)"))
    arch_list = list(torch.get("arch_list") or [])
    for device in devices:
        checks.append(arch_check(device, arch_list))
    for result in torch.get("matmul") or []:
        checks.append(matmul_check(result, devices, rate=matmul_rate))
    if torch.get("error"):
        checks.append(
            Check("PyTorch GPU probe", Verdict.FAIL, str(torch["error"]), "see the error")
        )
    return checks


def arch_check(device: Mapping[str, Any], arch_list: Sequence[str]) -> Check:
    """Whether the wheel has kernels for this GPU's compute capability."""
    major, minor = device["capability"]
    name = f"GPU {device['index']} arch in torch build"
    cap = f"sm_{major}{minor}"
    sms = {a for a in arch_list if a.startswith("sm_")}
    if cap in sms:
        return Check(name, Verdict.OK, f"{device['name']}: {cap} in {','.join(arch_list)}")
    same_major = [a for a in sms if a[3:-1] == str(major) and int(a[-1]) <= minor]
    if same_major:
        return Check(name, Verdict.OK, f"{device['name']}: {cap} runs {max(same_major)} binaries")
    ptx = [a for a in arch_list if a.startswith("compute_") and int(a[8:]) <= major * 10 + minor]
    if ptx:
        return Check(
            name,
            Verdict.WARN,
            f"{device['name']}: {cap} only through PTX JIT ({max(ptx)}): slow first start",
            "install a torch wheel built for this GPU",
        )
    return Check(
        name,
        Verdict.FAIL,
        f"{device['name']} is {cap}; this torch supports {','.join(arch_list) or 'none'}",
        "install a torch wheel whose arch list includes this GPU (newer CUDA build)",
    )


def matmul_check(
    result: Mapping[str, Any], devices: Sequence[Mapping[str, Any]], *, rate: bool = True
) -> Check:
    """The result of a matmul on one GPU: on that device, finite, and (``rate``) how fast."""
    index = result["index"]
    label = next((d["name"] for d in devices if d["index"] == index), "")
    name = f"matmul on cuda:{index}"
    parts, problems = [], []
    for dtype in ("fp16", "fp32"):
        r = result.get(dtype) or {}
        if "error" in r:
            problems.append(f"{dtype}: {r['error']}")
            continue
        if r.get("result_device") != f"cuda:{index}":
            problems.append(f"{dtype} result landed on {r.get('result_device')}")
        if not r.get("finite"):
            problems.append(f"{dtype} result has inf/nan")
        parts.append(f"{dtype} {r.get('tflops', 0):g} TFLOP/s" if rate else f"{dtype} on the GPU")
    detail = f"{label}: " + ", ".join(parts) if parts else label
    if problems:
        return Check(
            name,
            Verdict.FAIL,
            f"{detail}; " + "; ".join(problems),
            "check `nvidia-smi` and dmesg for Xid errors",
        )
    return Check(name, Verdict.OK, detail)


def tensorflow_checks(probe: Mapping[str, Any], gpu_expected: bool = True) -> list[Check]:
    """``list_physical_devices('GPU')``, memory growth, an op placed on ``/GPU:0``.

    A CPU-only build (``tensorflow-cpu``) on a GPU machine is a warning: the machine is
    fine, only TensorFlow jobs would compute on the CPU. A CUDA build that sees no GPU where
    one is expected is a failure.
    """
    tf = probe.get("tensorflow") or {}
    if not tf.get("installed"):
        return [Check("TensorFlow", Verdict.SKIP, "not installed")]
    if tf.get("error"):
        return [
            Check("TensorFlow", Verdict.FAIL, str(tf["error"]), "reinstall tensorflow[and-cuda]")
        ]
    gpus = tf.get("gpus") or []
    cpu_only = tf.get("cuda_build") is False
    detail = f"tensorflow {tf.get('version')}: list_physical_devices('GPU') = {gpus}"
    if gpus:
        verdict = Verdict.OK
    elif gpu_expected and not cpu_only:
        verdict = Verdict.FAIL
    else:
        verdict = Verdict.WARN
    if not gpus and cpu_only:
        detail += " (a CPU-only build: TensorFlow jobs compute on the CPU)"
    checks = [
        Check(
            "TensorFlow GPUs",
            verdict,
            detail,
            "" if gpus else "pip install 'tensorflow[and-cuda]' (a CPU build sees no GPU)",
        )
    ]
    if gpus:
        growth = tf.get("memory_growth")
        checks.append(
            Check(
                "TensorFlow memory growth",
                Verdict.OK if growth == "ok" else Verdict.WARN,
                str(growth),
            )
        )
        placed = str(tf.get("placed_on") or tf.get("placed_on_error"))
        checks.append(
            Check(
                "TensorFlow op on /GPU:0",
                Verdict.OK if "GPU:0" in placed else Verdict.FAIL,
                placed,
                "" if "GPU:0" in placed else "check the CUDA/cuDNN libraries TensorFlow loads",
            )
        )
    return checks


def jax_checks(probe: Mapping[str, Any]) -> list[Check]:
    """``jax.devices()``: a warning when JAX computes on the CPU only (it is optional)."""
    jax = probe.get("jax") or {}
    if not jax.get("installed"):
        return [Check("JAX", Verdict.SKIP, "not installed")]
    if jax.get("error"):
        return [Check("JAX", Verdict.FAIL, str(jax["error"]), "pip install 'jax[cuda12]'")]
    devices = jax.get("devices") or []
    on_gpu = any(d.startswith(("gpu", "cuda")) for d in devices)
    return [
        Check(
            "JAX devices",
            Verdict.OK if on_gpu else Verdict.WARN,
            f"jax {jax.get('version')}: {devices}",
            "" if on_gpu else "pip install 'jax[cuda12]' for GPU support",
        )
    ]


def proc_has_nvidia_gpu() -> bool:
    """Whether the kernel driver lists a GPU (``/proc/driver/nvidia/gpus``), NVML or not."""
    folder = "/proc/driver/nvidia/gpus"
    try:
        return bool(os.listdir(folder))
    except OSError:
        return False
