"""``sageport doctor``: can this machine really run GPU jobs? A checklist with a fix per failure.

Each check is a small function returning a :class:`Check`. Driver and inventory facts come from
the discovery (NVML); everything a framework sees comes from ``probe.py`` run in a subprocess of
the Python that jobs use, with a timeout, because that interpreter may differ from the server's
and a CUDA initialisation may hang or crash. The same verdicts serve the Rich table, ``--json``
and ``--require-gpu``.
"""

from __future__ import annotations

import enum
import json
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sageport.gpu.inventory import GpuDiscovery, GpuInventory

PROBE_SCRIPT = Path(__file__).with_name("probe.py")
"""The stdlib-only probe, run by path with the interpreter under test."""

NO_DRIVER_FIX = (
    "Install the NVIDIA driver and check that `nvidia-smi` lists the GPUs. On a machine without "
    "an NVIDIA GPU, GPU instance types are refused unless `cpu_fallback = true` is set in "
    "sageport.toml (or use SAGEPORT_FAKE_GPUS to test allocation)."
)


class Verdict(enum.StrEnum):
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


@dataclass(frozen=True)
class DoctorReport:
    checks: tuple[Check, ...]
    gpu_usable: bool
    """At least one real GPU that jobs can compute on (the ``--require-gpu`` question)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "gpu_usable": self.gpu_usable,
            "checks": [{**asdict(c), "verdict": c.verdict.value} for c in self.checks],
        }


# -- the probe subprocess ------------------------------------------------------------------


def run_probe(
    python: str, env: Mapping[str, str], *, matmul: bool = True, timeout: float = 180.0
) -> tuple[dict[str, Any] | None, str]:
    """The probe's answer for ``python``, or ``None`` and why it gave none."""
    argv = [python, str(PROBE_SCRIPT), *(["--matmul"] if matmul else [])]
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


# -- driver and inventory -------------------------------------------------------------------


def check_driver(inventory: GpuInventory) -> Check:
    name = "NVIDIA driver / NVML"
    if inventory.fake:
        return Check(
            name,
            Verdict.WARN,
            "fake inventory from SAGEPORT_FAKE_GPUS: allocation is simulated, no real GPU is used",
            "Unset SAGEPORT_FAKE_GPUS (and fake_gpus in sageport.toml) to use the real GPUs.",
        )
    if inventory.driver_version:
        cuda = f", CUDA {inventory.cuda_driver_version}" if inventory.cuda_driver_version else ""
        return Check(name, Verdict.OK, f"driver {inventory.driver_version}{cuda}")
    reason = inventory.reason or "NVML gave no driver version"
    return Check(name, Verdict.FAIL, reason, _driver_fix(reason))


def _driver_fix(reason: str) -> str:
    text = reason.casefold()
    if "nvidia-ml-py" in text:
        return "pip install 'sageport[gpu]' (installs nvidia-ml-py)"
    if "mismatch" in text:
        return (
            "Reboot, or reload the NVIDIA kernel modules (sudo rmmod nvidia_uvm nvidia_drm "
            "nvidia_modeset nvidia && sudo modprobe nvidia) so they match the installed libraries."
        )
    if "permission" in text:
        return (
            "Add this user to the group that owns /dev/nvidia* (often `video`), then log in again."
        )
    return NO_DRIVER_FIX


def check_gpus(inventory: GpuInventory) -> Check:
    name = "GPUs listed"
    if inventory.empty:
        if not inventory.driver_version and not inventory.fake:
            return Check(
                name, Verdict.FAIL, "none: NVML could not be queried (see the check above)"
            )
        reason = inventory.reason or "no GPU found"
        return Check(name, Verdict.FAIL, reason, _driver_fix(reason))
    listed = "; ".join(
        f"{d.index}: {d.name} ({d.memory_gib:.0f} GiB"
        + (
            f", sm_{d.compute_capability[0]}{d.compute_capability[1]})"
            if d.compute_capability
            else ")"
        )
        for d in inventory.devices
    )
    return Check(name, Verdict.OK, f"{len(inventory)} GPU(s): {listed}")


def check_visible_devices(
    value: str | None, inventory: GpuInventory, order: str | None = None
) -> Check:
    """``CUDA_VISIBLE_DEVICES`` in the environment sageport (and so its jobs' probes) run in."""
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
    uuids = [d.uuid for d in inventory.devices]
    for item in items:
        if item.lstrip("-").isdigit():
            if int(item) < 0:
                problems.append(f"{item!r} hides every device after it")
            elif not inventory.empty and int(item) >= len(inventory):
                problems.append(f"index {item} does not exist (this host has {len(inventory)})")
        elif item.startswith(("GPU-", "MIG-")):
            if not inventory.empty and not any(u.startswith(item) for u in uuids):
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


def torch_checks(probe: Mapping[str, Any], inventory: GpuInventory) -> list[Check]:
    torch = probe.get("torch") or {}
    if not torch.get("installed"):
        return [Check("PyTorch", Verdict.SKIP, f"not installed in {probe.get('python')}")]
    if torch.get("error") and "version" not in torch:
        return [
            Check("PyTorch", Verdict.FAIL, f"import failed: {torch['error']}", "reinstall torch")
        ]
    version = torch.get("version", "?")
    checks = []
    if not torch.get("cuda_build"):
        checks.append(
            Check(
                "PyTorch CUDA build",
                Verdict.FAIL if not inventory.empty and not inventory.fake else Verdict.WARN,
                f"torch {version} is a CPU-only build: jobs cannot use a GPU",
                "pip install torch --index-url https://download.pytorch.org/whl/cu124 "
                "(pick the CUDA version `nvidia-smi` supports)",
            )
        )
        return checks
    checks.append(
        Check("PyTorch CUDA build", Verdict.OK, f"torch {version}, CUDA {torch['cuda_build']}")
    )
    if not torch.get("cuda_available"):
        checks.append(
            Check(
                "torch.cuda.is_available()",
                Verdict.FAIL,
                f"False{': ' + torch['error'] if torch.get('error') else ''}",
                "check the driver (above) supports this CUDA build, and CUDA_VISIBLE_DEVICES",
            )
        )
        return checks
    devices = torch.get("devices") or []
    checks.append(Check("torch.cuda.is_available()", Verdict.OK, f"True, {len(devices)} device(s)"))
    arch_list = list(torch.get("arch_list") or [])
    for device in devices:
        checks.append(_arch_check(device, arch_list))
    for result in torch.get("matmul") or []:
        checks.append(_matmul_check(result, devices))
    if torch.get("error"):
        checks.append(
            Check("PyTorch GPU probe", Verdict.FAIL, str(torch["error"]), "see the error")
        )
    return checks


def _arch_check(device: Mapping[str, Any], arch_list: Sequence[str]) -> Check:
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


def _matmul_check(result: Mapping[str, Any], devices: Sequence[Mapping[str, Any]]) -> Check:
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
        parts.append(f"{dtype} {r.get('tflops', 0):g} TFLOP/s")
    detail = f"{label}: " + ", ".join(parts) if parts else label
    if problems:
        return Check(
            name,
            Verdict.FAIL,
            f"{detail}; " + "; ".join(problems),
            "check `nvidia-smi` and dmesg for Xid errors",
        )
    return Check(name, Verdict.OK, detail)


def tensorflow_checks(probe: Mapping[str, Any]) -> list[Check]:
    tf = probe.get("tensorflow") or {}
    if not tf.get("installed"):
        return [Check("TensorFlow", Verdict.SKIP, "not installed")]
    if tf.get("error"):
        return [
            Check("TensorFlow", Verdict.FAIL, str(tf["error"]), "reinstall tensorflow[and-cuda]")
        ]
    gpus = tf.get("gpus") or []
    checks = [
        Check(
            "TensorFlow GPUs",
            Verdict.OK if gpus else Verdict.FAIL,
            f"tensorflow {tf.get('version')}: list_physical_devices('GPU') = {gpus}",
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


# -- the whole checklist --------------------------------------------------------------------


def diagnose(
    discovery: GpuDiscovery,
    python: str,
    env: Mapping[str, str],
    *,
    timeout: float = 180.0,
) -> DoctorReport:
    """Run every check: driver, inventory, ``CUDA_VISIBLE_DEVICES``, then the frameworks."""
    inventory = discovery.discover()
    checks = [
        check_driver(inventory),
        check_gpus(inventory),
        check_visible_devices(
            env.get("CUDA_VISIBLE_DEVICES"), inventory, env.get("CUDA_DEVICE_ORDER")
        ),
    ]
    real_gpus = not inventory.empty and not inventory.fake
    probe, why = run_probe(python, env, matmul=real_gpus, timeout=timeout)
    if probe is None:
        checks.append(
            Check("framework probe", Verdict.FAIL, why, f"run `{python} {PROBE_SCRIPT}` to see")
        )
        return DoctorReport(tuple(checks), gpu_usable=False)
    torch = torch_checks(probe, inventory)
    checks += torch + tensorflow_checks(probe) + jax_checks(probe)
    return DoctorReport(tuple(checks), gpu_usable=real_gpus and _usable(probe))


def _usable(probe: Mapping[str, Any]) -> bool:
    torch = probe.get("torch") or {}
    if not torch.get("installed"):
        return True  # NVML sees the GPUs; no framework here to contradict it
    for result in torch.get("matmul") or []:
        if all("error" not in (result.get(d) or {"error": 1}) for d in ("fp16", "fp32")):
            return True
    return False
