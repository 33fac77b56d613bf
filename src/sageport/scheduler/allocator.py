"""Who gets which GPUs, CPUs and memory: exclusive GPU allocation with a FIFO queue.

Each host of a job asks for what its instance type has (catalog): N GPUs of at least the
catalog's memory (or the same model, in ``strict`` matching), vCPUs and memory. GPUs are
exclusive. vCPUs and memory are accounted with an overcommit factor, so a 2-core laptop
still runs an ``ml.m5.xlarge`` job, while a flood of CPU jobs queues instead of thrashing;
a job that holds nothing else back (the machine is idle) always fits its CPUs and memory.

The allocator is plain in-memory state owned by the scheduler; after a restart the
scheduler re-registers the grants recorded with each running job (:meth:`Allocator.restore`).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sageport.gpu import GpuDevice


class GpuMatching(enum.StrEnum):
    ANY = "any"
    """Any GPU with at least the catalog's memory (nominal GB, 5 % tolerance)."""
    STRICT = "strict"
    """Only the catalog's GPU model (``A10G`` matches ``NVIDIA A10G``)."""


@dataclass(frozen=True)
class HostRequest:
    """What one host of a job needs, from its instance type."""

    instance_type: str
    gpus: int = 0
    gpu_model: str = ""
    gpu_memory_gib: float = 0.0
    vcpus: float = 1.0
    memory_gib: float = 1.0


@dataclass(frozen=True)
class HostGrant:
    """What one host got. ``cpu_fallback``: a GPU type running on the CPU by opt-in."""

    gpus: tuple[GpuDevice, ...] = ()
    vcpus: float = 0.0
    memory_gib: float = 0.0
    cpu_fallback: bool = False

    def to_json(self) -> dict[str, object]:
        """What the job record keeps, so a restarted scheduler can re-register the grant."""
        return {
            "gpus": [g.index for g in self.gpus],
            "gpu_uuids": [g.uuid for g in self.gpus],
            "vcpus": self.vcpus,
            "memory_gib": self.memory_gib,
            "cpu_fallback": self.cpu_fallback,
        }


@dataclass
class _Holding:
    gpus: set[int] = field(default_factory=set)
    vcpus: float = 0.0
    memory_gib: float = 0.0


class Allocator:
    """Exclusive GPUs plus overcommitted CPU/memory accounting on one node."""

    def __init__(
        self,
        gpus: Sequence[GpuDevice],
        vcpus: float,
        memory_gib: float,
        *,
        cpu_overcommit: float = 4.0,
        memory_overcommit: float = 1.0,
        matching: GpuMatching = GpuMatching.ANY,
        cpu_fallback: bool = False,
    ) -> None:
        self.gpus = {g.index: g for g in gpus}
        self.vcpu_capacity = vcpus * cpu_overcommit
        self.memory_capacity = memory_gib * memory_overcommit
        self.matching = matching
        self.cpu_fallback = cpu_fallback
        self._held: dict[str, _Holding] = {}

    # -- questions -----------------------------------------------------------------

    def _fits(self, gpu: GpuDevice, req: HostRequest) -> bool:
        if self.matching is GpuMatching.STRICT and req.gpu_model:
            return gpu.matches_model(req.gpu_model)
        # The catalog names nominal GB ("80 GB"); devices report MiB (an H100 ~79.6 GiB).
        return gpu.memory_gib >= req.gpu_memory_gib * 0.95 * _GIB_PER_GB

    def impossible(self, hosts: Sequence[HostRequest]) -> str | None:
        """Why no amount of waiting would let this job start here, or ``None``."""
        for req in hosts:
            if req.gpus == 0 or self.cpu_fallback:
                continue
            usable = [g for g in self.gpus.values() if self._fits(g, req)]
            if not self.gpus:
                return (
                    f"{req.instance_type} needs {req.gpus} GPU{'s' if req.gpus > 1 else ''} per "
                    "instance; this machine has no usable GPU (see `sageport doctor`; set "
                    "cpu_fallback to run GPU instance types on the CPU)"
                )
            if len(usable) < req.gpus:
                detail = (
                    f"the largest node here has {len(self.gpus)}"
                    if len(usable) == len(self.gpus)
                    else f"this node has {len(usable)} that match "
                    f"({req.gpu_model or 'GPU'} with ≥ {req.gpu_memory_gib:g} GB; matching={self.matching.value})"
                )
                return f"{req.instance_type} needs {req.gpus} GPUs per instance; {detail}"
        total = sum(r.gpus for r in hosts if not self.cpu_fallback)
        if total > len(self.gpus) and len(hosts) > 1:
            return f"the job needs {total} GPUs over {len(hosts)} instances at once; this node has {len(self.gpus)}"
        return None

    def free_gpus(self) -> list[GpuDevice]:
        used = {i for h in self._held.values() for i in h.gpus}
        return [g for i, g in sorted(self.gpus.items()) if i not in used]

    def waiting_for(self, hosts: Sequence[HostRequest]) -> str:
        """A status message saying what a queued job waits for."""
        want = sum(r.gpus for r in hosts)
        if want and not self.cpu_fallback:
            return f"Waiting for {want} free GPU{'s' if want > 1 else ''} ({len(self.free_gpus())} free now)"
        return "Waiting for CPU and memory to free up"

    # -- changes ---------------------------------------------------------------------

    def try_allocate(self, owner: str, hosts: Sequence[HostRequest]) -> list[HostGrant] | None:
        """Grant every host at once, or nothing (a job never starts with part of its hosts)."""
        free = self.free_gpus()
        idle = not self._held
        vcpus = sum(r.vcpus for r in hosts)
        memory = sum(r.memory_gib for r in hosts)
        used_v = sum(h.vcpus for h in self._held.values())
        used_m = sum(h.memory_gib for h in self._held.values())
        if not idle and (
            used_v + vcpus > self.vcpu_capacity or used_m + memory > self.memory_capacity
        ):
            return None
        grants: list[HostGrant] = []
        taken: set[int] = set()
        for req in hosts:
            if req.gpus == 0:
                grants.append(HostGrant((), req.vcpus, req.memory_gib))
                continue
            if self.cpu_fallback and not self.gpus:
                grants.append(HostGrant((), req.vcpus, req.memory_gib, cpu_fallback=True))
                continue
            pick = [g for g in free if g.index not in taken and self._fits(g, req)][: req.gpus]
            if len(pick) < req.gpus:
                return None
            taken.update(g.index for g in pick)
            grants.append(HostGrant(tuple(pick), req.vcpus, req.memory_gib))
        self._held[owner] = _Holding(taken, vcpus, memory)
        return grants

    def grants_from_json(self, grants: Sequence[Mapping[str, Any]]) -> list[HostGrant]:
        """The grants a job record keeps (``HostGrant.to_json``), with this node's devices."""
        return [
            HostGrant(
                tuple(self.gpus[i] for i in g.get("gpus", []) if i in self.gpus),
                float(g.get("vcpus", 0.0)),
                float(g.get("memory_gib", 0.0)),
                bool(g.get("cpu_fallback")),
            )
            for g in grants
        ]

    def restore(self, owner: str, grants: Sequence[Mapping[str, Any]]) -> None:
        """Re-register what a job held before a server restart."""
        restored = self.grants_from_json(grants)
        self._held[owner] = _Holding(
            {g.index for grant in restored for g in grant.gpus},
            sum(g.vcpus for g in restored),
            sum(g.memory_gib for g in restored),
        )

    def release(self, owner: str) -> None:
        self._held.pop(owner, None)

    def holders(self) -> dict[str, set[int]]:
        return {k: set(v.gpus) for k, v in self._held.items()}


_GIB_PER_GB = 1e9 / 2**30
