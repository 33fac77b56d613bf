"""What one host of a job or endpoint asks for: a fact of its request, not of the scheduler.

The API checks at create whether this machine could ever grant it (``services.admission``);
the scheduler's allocator grants it (``scheduler.allocator``); both speak this type, so
neither imports the other. Built from the catalog by ``catalog.hosts``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HostRequest:
    """What one host of a job needs, from its instance type.

    ``accelerators`` counts devices sageport cannot provide (AWS Neuron, Gaudi): such a host
    can only ever run on the CPU, by opt-in.
    """

    instance_type: str
    gpus: int = 0
    gpu_model: str = ""
    gpu_memory_gib: float = 0.0
    vcpus: float = 1.0
    memory_gib: float = 1.0
    accelerators: int = 0
    accelerator_kind: str = ""
    accelerator_model: str = ""
