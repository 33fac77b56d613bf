"""GPU discovery: what GPUs this host has (NVML, or a described fake inventory)."""

from sageport.gpu.discovery import FAKE_GPUS_VAR, discovery_from_env
from sageport.gpu.fake import FakeDiscovery, parse_fake_spec
from sageport.gpu.inventory import GpuDevice, GpuDiscovery, GpuInventory, GpuProcess, GpuSample
from sageport.gpu.nvml import NvmlDiscovery

__all__ = [
    "FAKE_GPUS_VAR",
    "FakeDiscovery",
    "GpuDevice",
    "GpuDiscovery",
    "GpuInventory",
    "GpuProcess",
    "GpuSample",
    "NvmlDiscovery",
    "discovery_from_env",
    "parse_fake_spec",
]
