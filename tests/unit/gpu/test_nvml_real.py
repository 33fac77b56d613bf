"""Real NVML discovery; runs only where an NVIDIA driver and nvidia-ml-py are present."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from sageport.gpu import NvmlDiscovery

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not Path("/dev/nvidiactl").exists(), reason="no NVIDIA device"),
    pytest.mark.skipif(importlib.util.find_spec("pynvml") is None, reason="nvidia-ml-py missing"),
]


def test_real_discovery_finds_devices() -> None:
    discovery = NvmlDiscovery()
    inventory = discovery.discover()
    assert inventory.reason is None, inventory.reason
    assert len(inventory) >= 1
    assert inventory.driver_version
    assert inventory.cuda_driver_version
    device = inventory.devices[0]
    assert device.uuid.startswith(("GPU-", "MIG-"))
    assert device.memory_mib > 1024
    assert device.compute_capability is not None
    samples = discovery.sample([d.index for d in inventory.devices])
    assert [s.index for s in samples] == [d.index for d in inventory.devices]
    assert samples[0].memory_used_mib is not None
