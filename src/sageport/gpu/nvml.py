"""GPU discovery through NVML (the ``nvidia-ml-py`` package, imported as ``pynvml``).

``nvidia-ml-py`` is an optional dependency (``pip install sageport[gpu]``) and is imported
inside the methods, so sageport installs and runs without it. Each call initialises NVML and
shuts it down again: discovery happens at start-up and on ``sageport doctor``, sampling a few
times a minute, and holding NVML open would keep a handle on devices a user may be resetting.
Every failure becomes data (an empty inventory with a reason, a missing sample), never an
exception, because a host without a working driver is a normal host for sageport.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from types import ModuleType
from typing import Any

from sageport.gpu.inventory import GpuDevice, GpuInventory, GpuProcess, GpuSample

_MIB = 1024 * 1024

# NVML return codes (nvml.h) that get a reason written for a person rather than NVML's own text.
_NVML_ERROR_NO_PERMISSION = 4
_NVML_ERROR_DRIVER_NOT_LOADED = 9
_NVML_ERROR_LIBRARY_NOT_FOUND = 12
_NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18

_REASONS = {
    _NVML_ERROR_DRIVER_NOT_LOADED: "the NVIDIA kernel driver is not loaded (no NVIDIA GPU, or "
    "the driver is not installed): check `nvidia-smi`",
    _NVML_ERROR_LIBRARY_NOT_FOUND: "the NVML library (libnvidia-ml.so.1) was not found: no "
    "NVIDIA driver is installed on this host",
    _NVML_ERROR_LIB_RM_VERSION_MISMATCH: "Driver/library version mismatch: the NVIDIA kernel "
    "module and the user-space driver libraries have different versions, usually because the "
    "driver was upgraded without a reboot; reboot (or reload the nvidia kernel modules)",
    _NVML_ERROR_NO_PERMISSION: "no permission to open the NVIDIA devices (/dev/nvidia*): add "
    "this user to the group that owns them",
}


class NvmlDiscovery:
    """Discovers the host's NVIDIA GPUs through NVML."""

    def discover(self) -> GpuInventory:
        pynvml = _import_pynvml()
        if pynvml is None:
            return GpuInventory.unavailable(
                "nvidia-ml-py is not installed, so NVML cannot be queried: "
                "pip install 'sageport[gpu]'"
            )
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            return GpuInventory.unavailable(_reason(exc))
        try:
            return _read_inventory(pynvml)
        except pynvml.NVMLError as exc:
            return GpuInventory.unavailable(f"NVML failed while listing GPUs: {_reason(exc)}")
        finally:
            _shutdown(pynvml)

    def sample(self, indices: Iterable[int]) -> list[GpuSample]:
        """Current utilization, memory use and processes of the devices at ``indices``.

        A device that no longer answers (it fell off the bus, or NVML itself is gone) is left out
        of the result rather than raising: the caller compares the indices it asked for with the
        ones it got back.
        """
        pynvml = _import_pynvml()
        if pynvml is None:
            return []
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError:
            return []
        try:
            samples = []
            for index in indices:
                sample = _sample_one(pynvml, index)
                if sample is not None:
                    samples.append(sample)
            return samples
        finally:
            _shutdown(pynvml)


def _import_pynvml() -> ModuleType | None:
    try:
        import pynvml  # type: ignore[import-untyped, import-not-found, unused-ignore]
    except ImportError:
        return None
    return pynvml  # type: ignore[no-any-return, unused-ignore]


def _read_inventory(pynvml: Any) -> GpuInventory:
    driver = _text(pynvml.nvmlSystemGetDriverVersion())
    cuda = _cuda_version(pynvml)
    devices = []
    for index in range(int(pynvml.nvmlDeviceGetCount())):
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        devices.append(
            GpuDevice(
                index=index,
                uuid=_text(pynvml.nvmlDeviceGetUUID(handle)),
                name=_text(pynvml.nvmlDeviceGetName(handle)),
                memory_mib=int(pynvml.nvmlDeviceGetMemoryInfo(handle).total) // _MIB,
                compute_capability=_compute_capability(pynvml, handle),
                pci_bus_id=_pci_bus_id(pynvml, handle),
            )
        )
    reason = None if devices else "the NVIDIA driver is loaded but reports no GPUs"
    return GpuInventory(
        devices=tuple(devices), driver_version=driver, cuda_driver_version=cuda, reason=reason
    )


def _sample_one(pynvml: Any, index: int) -> GpuSample | None:
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    except pynvml.NVMLError:
        return None
    utilization = memory_utilization = memory_used = None
    processes: list[GpuProcess] = []
    # Each reading may be unsupported on its own (utilization on some MIG or vGPU setups);
    # one missing reading should not hide the others.
    with contextlib.suppress(pynvml.NVMLError):
        rates = pynvml.nvmlDeviceGetUtilizationRates(handle)
        utilization, memory_utilization = int(rates.gpu), int(rates.memory)
    with contextlib.suppress(pynvml.NVMLError):
        memory_used = _memory_used(pynvml, handle) // _MIB
    with contextlib.suppress(pynvml.NVMLError):
        for proc in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
            used = proc.usedGpuMemory
            processes.append(GpuProcess(int(proc.pid), int(used) // _MIB if used else None))
    return GpuSample(index, utilization, memory_utilization, memory_used, tuple(processes))


def _memory_used(pynvml: Any, handle: Any) -> int:
    """Bytes allocated on the device, without what the driver reserves for itself.

    The v1 reading counts the driver's reservation as used (several hundred MiB on an idle
    H100), which would make every idle GPU look busy to the idle-GPU warning; v2 (drivers
    R510+, nvidia-ml-py 11.510+) reports it apart. Older stacks get v1.
    """
    version = getattr(pynvml, "nvmlMemory_v2", None)
    if version is not None:
        try:
            return int(pynvml.nvmlDeviceGetMemoryInfo(handle, version=version).used)
        except (TypeError, pynvml.NVMLError):
            pass  # an nvidia-ml-py without the argument, or a driver without v2
    return int(pynvml.nvmlDeviceGetMemoryInfo(handle).used)


def _cuda_version(pynvml: Any) -> str | None:
    """The highest CUDA version the driver supports, "12.4" (NVML encodes it as 12040)."""
    try:
        encoded = int(pynvml.nvmlSystemGetCudaDriverVersion())
    except pynvml.NVMLError:
        return None
    return f"{encoded // 1000}.{encoded % 1000 // 10}"


def _compute_capability(pynvml: Any, handle: Any) -> tuple[int, int] | None:
    try:
        major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
    except pynvml.NVMLError:
        return None
    return int(major), int(minor)


def _pci_bus_id(pynvml: Any, handle: Any) -> str | None:
    try:
        return _text(pynvml.nvmlDeviceGetPciInfo(handle).busId)
    except pynvml.NVMLError:
        return None


def _reason(exc: Any) -> str:
    code = getattr(exc, "value", None)
    return _REASONS.get(code, f"NVML error: {exc}") if isinstance(code, int) else str(exc)


def _shutdown(pynvml: Any) -> None:
    # Nothing to release if NVML is already gone; a failed shutdown changes no result.
    with contextlib.suppress(pynvml.NVMLError):
        pynvml.nvmlShutdown()


def _text(value: Any) -> str:
    """NVML strings are ``bytes`` in older nvidia-ml-py releases and ``str`` in newer ones."""
    return value.decode() if isinstance(value, bytes) else str(value)
