"""``sageport doctor``: can this machine really run GPU jobs? A checklist with a fix per failure.

Each check is a small function returning a :class:`Check`. Driver and inventory facts come from
the discovery (NVML); everything a framework sees comes from ``probe.py`` run in a subprocess of
the Python that jobs use, with a timeout, because that interpreter may differ from the server's
and a CUDA initialisation may hang or crash. The framework verdicts are ``checks.py``'s, which
the in-job pre-flight shares. The same verdicts serve the Rich table, ``--json`` and
``--require-gpu``.

A machine without any GPU is a normal machine: its GPU checks warn, and fail only with
``--require-gpu``. A GPU that is there but unusable (a driver/library mismatch, no permission,
a CUDA build that cannot see it) always fails.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from sageport.gpu import checks as C
from sageport.gpu.checks import (
    PROBE_SCRIPT,
    Check,
    Verdict,
    is_probe_process,
    jax_checks,
    run_probe,
    tensorflow_checks,
)
from sageport.gpu.inventory import GpuDiscovery, GpuInventory

__all__ = [
    "PROBE_SCRIPT",
    "Check",
    "DoctorReport",
    "Verdict",
    "check_driver",
    "check_gpus",
    "check_visible_devices",
    "diagnose",
    "is_probe_process",
    "jax_checks",
    "run_probe",
    "tensorflow_checks",
    "torch_checks",
]

NO_DRIVER_FIX = (
    "Install the NVIDIA driver and check that `nvidia-smi` lists the GPUs. On a machine without "
    "an NVIDIA GPU, GPU instance types are refused unless `cpu_fallback = true` is set in "
    "sageport.toml (or use SAGEPORT_FAKE_GPUS to test allocation)."
)


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


def no_gpu_here(inventory: GpuInventory) -> bool:
    """An empty inventory because the machine has no NVIDIA GPU at all (not a broken one)."""
    if not inventory.empty:
        return False
    if inventory.fake:
        return True
    text = (inventory.reason or "").casefold()
    if "mismatch" in text or "permission" in text:
        return False
    return not C.proc_has_nvidia_gpu()


# -- driver and inventory -------------------------------------------------------------------


def check_driver(inventory: GpuInventory, require_gpu: bool = False) -> Check:
    name = "NVIDIA driver / NVML"
    if inventory.fake:
        return Check(
            name,
            Verdict.WARN,
            "fake inventory (SAGEPORT_FAKE_GPUS or fake_gpus in sageport.toml): allocation is "
            "simulated, no real GPU is used",
            "Unset SAGEPORT_FAKE_GPUS (and fake_gpus in sageport.toml) to use the real GPUs.",
        )
    if inventory.driver_version:
        cuda = f", CUDA {inventory.cuda_driver_version}" if inventory.cuda_driver_version else ""
        return Check(name, Verdict.OK, f"driver {inventory.driver_version}{cuda}")
    reason = inventory.reason or "NVML gave no driver version"
    verdict = Verdict.WARN if no_gpu_here(inventory) and not require_gpu else Verdict.FAIL
    return Check(name, verdict, reason, _driver_fix(reason))


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


def check_gpus(inventory: GpuInventory, require_gpu: bool = False) -> Check:
    name = "GPUs listed"
    if inventory.empty:
        verdict = Verdict.WARN if no_gpu_here(inventory) and not require_gpu else Verdict.FAIL
        if not inventory.driver_version and not inventory.fake:
            return Check(name, verdict, "none: NVML could not be queried (see the check above)")
        reason = inventory.reason or "no GPU found"
        return Check(name, verdict, reason, _driver_fix(reason))
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
    return C.check_visible_devices(
        value,
        None if inventory.empty else len(inventory),
        [d.uuid for d in inventory.devices],
        order,
    )


# -- frameworks ---------------------------------------------------------------------------


def torch_checks(
    probe: Mapping[str, Any], inventory: GpuInventory, require_gpu: bool = False
) -> list[Check]:
    """``checks.torch_checks``, a GPU being expected where the machine has a real one."""
    real = not inventory.empty and not inventory.fake
    return C.torch_checks(probe, real or require_gpu)


# -- the whole checklist --------------------------------------------------------------------


def diagnose(
    discovery: GpuDiscovery,
    python: str,
    env: Mapping[str, str],
    *,
    timeout: float = 180.0,
    require_gpu: bool = False,
) -> DoctorReport:
    """Run every check: driver, inventory, ``CUDA_VISIBLE_DEVICES``, then the frameworks.

    ``require_gpu``: a missing GPU fails the checks that would only warn otherwise.
    """
    inventory = discovery.discover()
    checks = [
        check_driver(inventory, require_gpu),
        check_gpus(inventory, require_gpu),
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
    expected = real_gpus or require_gpu
    checks += torch_checks(probe, inventory, require_gpu)
    checks += tensorflow_checks(probe, expected) + jax_checks(probe)
    return DoctorReport(tuple(checks), gpu_usable=real_gpus and _usable(probe))


def _usable(probe: Mapping[str, Any]) -> bool:
    torch = probe.get("torch") or {}
    if not torch.get("installed"):
        return True  # NVML sees the GPUs; no framework here to contradict it
    for result in torch.get("matmul") or []:
        if all("error" not in (result.get(d) or {"error": 1}) for d in ("fp16", "fp32")):
            return True
    return False
