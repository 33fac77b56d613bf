"""Choosing the GPU discovery for this process from its environment.

The caller passes the environment (``os.environ`` in the server and CLI, a plain dict in tests);
nothing here reads it on its own.
"""

from __future__ import annotations

from collections.abc import Mapping

from sageport.gpu.fake import FakeDiscovery
from sageport.gpu.inventory import GpuDiscovery
from sageport.gpu.nvml import NvmlDiscovery

FAKE_GPUS_VAR = "SAGEPORT_FAKE_GPUS"


def discovery_from_env(env: Mapping[str, str]) -> GpuDiscovery:
    """``FakeDiscovery`` when ``SAGEPORT_FAKE_GPUS`` is set (and not blank), else NVML.

    A spec that does not parse raises ``ValueError`` here, at start-up, rather than silently
    falling back to real discovery.
    """
    spec = env.get(FAKE_GPUS_VAR, "")
    if spec.strip():
        return FakeDiscovery.from_spec(spec)
    return NvmlDiscovery()
