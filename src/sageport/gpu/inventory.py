"""What GPUs a host has: the value types every discovery returns, and the discovery interface.

Discovery is an I/O boundary (NVML on a real host, a description in ``SAGEPORT_FAKE_GPUS`` in
tests and demos), so it is a one-method Protocol with two implementations (``nvml.py``,
``fake.py``); the scheduler sees only these immutable values. An empty inventory always carries
the reason it is empty, because "no GPUs" is the most common thing a user needs explained.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

_TOKEN = re.compile(r"[^0-9a-z]+")


@dataclass(frozen=True)
class GpuDevice:
    """One GPU as the driver reports it; ``index`` is the NVML index (``CUDA_VISIBLE_DEVICES``
    uses the same order only with ``CUDA_DEVICE_ORDER=PCI_BUS_ID``, so prefer the UUID)."""

    index: int
    uuid: str
    name: str
    memory_mib: int
    compute_capability: tuple[int, int] | None
    pci_bus_id: str | None = None

    @property
    def memory_gib(self) -> float:
        return self.memory_mib / 1024

    def matches_model(self, model: str) -> bool:
        """Whether this device is of the catalog's ``model`` ("A10G", "H100", "RTX PRO 6000").

        Matches whole words of the device name, case-insensitively, so "L4" does not match an
        "NVIDIA L40S" and "A10G" does not match an "NVIDIA A100".
        """
        wanted = " ".join(_words(model))
        return bool(wanted) and f" {wanted} " in f" {' '.join(_words(self.name))} "


@dataclass(frozen=True)
class GpuInventory:
    """The GPUs of one host, with the driver facts; ``reason`` says why ``devices`` is empty."""

    devices: tuple[GpuDevice, ...]
    driver_version: str | None = None
    cuda_driver_version: str | None = None
    reason: str | None = None
    fake: bool = False

    def __len__(self) -> int:
        return len(self.devices)

    @property
    def empty(self) -> bool:
        return not self.devices

    @classmethod
    def unavailable(cls, reason: str, *, fake: bool = False) -> GpuInventory:
        return cls(devices=(), reason=reason, fake=fake)


@dataclass(frozen=True)
class GpuProcess:
    """A process with a GPU context; ``used_memory_mib`` is ``None`` where the driver hides it."""

    pid: int
    used_memory_mib: int | None


@dataclass(frozen=True)
class GpuSample:
    """One reading of a device's load; a field is ``None`` where the driver would not say."""

    index: int
    utilization_percent: int | None
    memory_utilization_percent: int | None
    memory_used_mib: int | None
    processes: tuple[GpuProcess, ...] = ()


class GpuDiscovery(Protocol):
    """Finds the host's GPUs. Never raises for a host without GPUs: it returns an empty inventory
    whose ``reason`` tells the user what is missing."""

    def discover(self) -> GpuInventory: ...

    def sample(self, indices: Iterable[int]) -> list[GpuSample]:
        """Readings of the devices at ``indices``; a device that does not answer is left out."""
        ...


def _words(text: str) -> list[str]:
    return [w for w in _TOKEN.split(text.casefold()) if w]
