"""Who gets which GPUs, CPUs and memory on this node.

Each host of a job asks for what its instance type has (catalog): N GPUs of at least the
catalog's memory (or the same model, in ``strict`` matching), vCPUs and memory. A job gets
all its hosts at once or nothing.

- **GPUs are exclusive.** Among the free GPUs that fit, the smallest are picked first, so a
  big GPU stays free for a request only it can serve.
- **vCPUs and memory are accounted, with overcommit.** The node accounts ``cores x
  cpu_overcommit`` vCPUs and ``RAM x memory_overcommit`` GiB. A job's claim is what its
  instance types promise, but never more than the node accounts (a job that asks for more
  than the machine has claims the whole machine, so it runs alone rather than never), and a
  host holding k of the node's N GPUs claims at most k/N of the node (the GPUs are the real
  limit on a GPU box). So a 2-core laptop still runs an ``ml.m5.xlarge`` job, while a flood of
  CPU jobs queues instead of thrashing.
- **CPU fallback** (opt-in): a request that could never get its GPUs here (no GPU, too few,
  none of the model, a Neuron type) runs on the CPU, and its grant says why; without the
  opt-in such a request is refused at create (:meth:`Allocator.impossible`).
- **CPU affinity** (opt-in): each host is pinned to ``ceil(claim / cpu_overcommit)`` logical
  CPUs, the least loaded first, so concurrent jobs land on different cores.

The allocator is plain in-memory state owned by the scheduler; the waiting order lives in
``scheduler.queue``. After a restart the scheduler re-registers the grants recorded with each
running job (:meth:`Allocator.restore`), matching GPUs by UUID; a GPU that is gone is kept on
the job's books and reported, never silently dropped.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sageport.domain.hosts import HostRequest
from sageport.gpu import GpuDevice


class GpuMatching(enum.StrEnum):
    ANY = "any"
    """Any GPU with at least the catalog's memory (nominal GB, 5 % tolerance)."""
    STRICT = "strict"
    """Only the catalog's GPU model (``A10G`` matches ``NVIDIA A10G``)."""


@dataclass(frozen=True)
class HostGrant:
    """What one host got.

    ``vcpus`` and ``memory_gib`` are what the instance type promises (``SM_NUM_CPUS``);
    ``claim_*`` what the node's accounting holds for it. ``cpu_fallback``: a GPU (or Neuron)
    type running on the CPU by opt-in, ``fallback_reason`` says why. ``cpus``: the logical
    CPUs the host is pinned to (empty: not pinned).
    """

    gpus: tuple[GpuDevice, ...] = ()
    vcpus: float = 0.0
    memory_gib: float = 0.0
    cpu_fallback: bool = False
    fallback_reason: str = ""
    cpus: tuple[int, ...] = ()
    claim_vcpus: float | None = None
    claim_memory_gib: float | None = None

    def to_json(self) -> dict[str, object]:
        """What the job record keeps, so a restarted scheduler can re-register the grant."""
        out: dict[str, object] = {
            "gpus": [g.index for g in self.gpus],
            "gpu_uuids": [g.uuid for g in self.gpus],
            "vcpus": self.vcpus,
            "memory_gib": self.memory_gib,
            "cpu_fallback": self.cpu_fallback,
        }
        if self.fallback_reason:
            out["fallback_reason"] = self.fallback_reason
        if self.cpus:
            out["cpus"] = list(self.cpus)
        if self.claim_vcpus is not None:
            out["claim_vcpus"] = self.claim_vcpus
        if self.claim_memory_gib is not None:
            out["claim_memory_gib"] = self.claim_memory_gib
        return out


def fallback_warning(grant: HostGrant) -> str:
    """The job-log line for a host that runs on the CPU by ``cpu_fallback``."""
    return (
        f"WARNING: {grant.fallback_reason or 'this machine has no GPU for this instance type'}; "
        "cpu_fallback is on, so this host runs on the CPU (no GPU is visible to the job)."
    )


def fallback_status(grant: HostGrant) -> str:
    """The same, for the status message."""
    reason = grant.fallback_reason or "no GPU for this instance type here"
    return f"running on the CPU (cpu_fallback): {reason}"


LOST_GPU_NAME = "lost GPU"
"""The name of a stand-in for a granted GPU this node no longer has (after a restart)."""


def grant_notes(grant: HostGrant) -> list[str]:
    """Job-log lines about a host's grant: CPU fallback, CPU pinning, GPUs gone."""
    notes = []
    if grant.cpu_fallback:
        notes.append(fallback_warning(grant))
    if grant.cpus:
        pinned = ",".join(str(c) for c in grant.cpus)
        notes.append(f"sageport: this host is pinned to CPU(s) {pinned} (cpu_affinity)")
    lost = [g.uuid for g in grant.gpus if g.name == LOST_GPU_NAME]
    if lost:
        notes.append(
            f"WARNING: sageport: {len(lost)} GPU(s) granted to this host are not on this machine "
            f"any more ({', '.join(lost)}): the job sees fewer GPUs than its instance type has"
        )
    return notes


@dataclass
class _Holding:
    gpus: set[int] = field(default_factory=set)
    vcpus: float = 0.0
    memory_gib: float = 0.0
    cpus: list[int] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)


class Allocator:
    """Exclusive GPUs plus overcommitted CPU/memory accounting on one node."""

    def __init__(
        self,
        gpus: Sequence[GpuDevice],
        vcpus: float,
        memory_gib: float,
        *,
        cpu_overcommit: float = 4.0,
        memory_overcommit: float = 2.0,
        matching: GpuMatching = GpuMatching.ANY,
        cpu_fallback: bool = False,
        cpu_affinity: bool = False,
        cpu_ids: Sequence[int] | None = None,
    ) -> None:
        if cpu_overcommit <= 0 or memory_overcommit <= 0:
            raise ValueError(
                "cpu_overcommit and memory_overcommit must be greater than 0, not "
                f"{cpu_overcommit:g} and {memory_overcommit:g}"
            )
        self.gpus = {g.index: g for g in gpus}
        self.cores = max(1.0, float(vcpus))
        self.ram_gib = max(0.001, float(memory_gib))
        self.cpu_overcommit = cpu_overcommit
        self.memory_overcommit = memory_overcommit
        self.vcpu_capacity = self.cores * cpu_overcommit
        self.memory_capacity = self.ram_gib * memory_overcommit
        self.matching = matching
        self.cpu_fallback = cpu_fallback
        self.cpu_affinity = cpu_affinity
        self.cpu_ids = tuple(sorted(cpu_ids)) if cpu_ids else tuple(range(int(self.cores)))
        self._held: dict[str, _Holding] = {}

    # -- questions -----------------------------------------------------------------

    def _fits(self, gpu: GpuDevice, req: HostRequest) -> bool:
        if gpu.name == LOST_GPU_NAME:
            return False
        if self.matching is GpuMatching.STRICT and req.gpu_model:
            return gpu.matches_model(req.gpu_model)
        # The catalog names nominal GB ("80 GB"); devices report MiB (an H100 ~79.6 GiB).
        return gpu.memory_gib >= req.gpu_memory_gib * 0.95 * _GIB_PER_GB

    def _pick(
        self, free: Sequence[GpuDevice], hosts: Sequence[HostRequest]
    ) -> list[tuple[GpuDevice, ...]] | None:
        """GPUs for every host out of ``free`` (smallest fitting first), or None."""
        taken: set[int] = set()
        picks: list[tuple[GpuDevice, ...]] = []
        for req in hosts:
            if req.gpus == 0:
                picks.append(())
                continue
            fitting = sorted(
                (g for g in free if g.index not in taken and self._fits(g, req)),
                key=lambda g: (g.memory_mib, g.index),
            )
            if len(fitting) < req.gpus:
                return None
            chosen = tuple(sorted(fitting[: req.gpus], key=lambda g: g.index))
            taken.update(g.index for g in chosen)
            picks.append(chosen)
        return picks

    def never_fits(self, hosts: Sequence[HostRequest]) -> str | None:
        """Why this job's accelerators could never be provided here, fallback or not."""
        for req in hosts:
            if req.accelerators:
                model = f"{req.accelerator_model} " if req.accelerator_model else ""
                kind = "AWS Neuron" if req.accelerator_kind == "neuron" else req.accelerator_kind
                return (
                    f"{req.instance_type} has {req.accelerators} {model}accelerator"
                    f"{_s(req.accelerators)} ({kind}), which sageport cannot provide: it runs "
                    "jobs on NVIDIA GPUs and CPUs only"
                )
        wanted = [r for r in hosts if r.gpus]
        if not wanted:
            return None
        if not self.gpus:
            req = wanted[0]
            return (
                f"{req.instance_type} needs {req.gpus} GPU{_s(req.gpus)} per instance; this "
                "machine has no usable GPU"
            )
        for req in wanted:
            usable = [g for g in self.gpus.values() if self._fits(g, req)]
            if len(usable) < req.gpus:
                detail = (
                    f"the largest node here has {len(self.gpus)}"
                    if len(usable) == len(self.gpus)
                    else f"this node has {len(usable)} that match "
                    f"({req.gpu_model or 'GPU'} with ≥ {req.gpu_memory_gib:g} GB; matching={self.matching.value})"
                )
                return (
                    f"{req.instance_type} needs {req.gpus} GPU{_s(req.gpus)} per instance; {detail}"
                )
        if self._pick(list(self.gpus.values()), hosts) is None:
            total = sum(r.gpus for r in hosts)
            return (
                f"the job needs {total} GPU{_s(total)} over {len(hosts)} instances at once; "
                f"this node has {len(self.gpus)}"
            )
        return None

    def impossible(self, hosts: Sequence[HostRequest]) -> str | None:
        """Why no amount of waiting would let this job start here, or ``None``.

        With ``cpu_fallback`` nothing is impossible: what could never get its GPUs runs on
        the CPU instead (see :meth:`try_allocate`).
        """
        reason = None if self.cpu_fallback else self.never_fits(hosts)
        if reason and any(r.accelerators for r in hosts):
            return (
                f"{reason}. Pick a GPU or CPU instance type (`sageport instances`), or set "
                "cpu_fallback = true in sageport.toml to run it on the CPU."
            )
        if reason and not self.gpus:
            return (
                f"{reason} (see `sageport doctor`; set cpu_fallback to run GPU instance types "
                "on the CPU)"
            )
        return reason

    def free_gpus(self) -> list[GpuDevice]:
        used = {i for h in self._held.values() for i in h.gpus}
        return [g for i, g in sorted(self.gpus.items()) if i not in used]

    def used(self) -> tuple[float, float]:
        """Accounted (vCPUs, GiB) held by every job together."""
        return (
            sum(h.vcpus for h in self._held.values()),
            sum(h.memory_gib for h in self._held.values()),
        )

    def _claims(
        self, hosts: Sequence[HostRequest], picks: Sequence[Sequence[GpuDevice]]
    ) -> list[tuple[float, float]]:
        """Accounted (vCPUs, GiB) per host: GPU share and node size cap the promise."""
        claims = []
        for req, gpus in zip(hosts, picks, strict=True):
            share = len(gpus) / len(self.gpus) if gpus and self.gpus else 1.0
            claims.append(
                (
                    min(req.vcpus, self.vcpu_capacity * share),
                    min(req.memory_gib, self.memory_capacity * share),
                )
            )
        total_v = sum(v for v, _ in claims)
        total_m = sum(m for _, m in claims)
        scale_v = min(1.0, self.vcpu_capacity / total_v) if total_v else 1.0
        scale_m = min(1.0, self.memory_capacity / total_m) if total_m else 1.0
        return [(v * scale_v, m * scale_m) for v, m in claims]

    def waiting_for(self, hosts: Sequence[HostRequest]) -> str:
        """A status message saying what a queued job waits for right now."""
        effective = self._effective(hosts)
        free = self.free_gpus()
        picks = self._pick(free, effective)
        if picks is None:
            gpu_hosts = [r for r in effective if r.gpus]
            want = sum(r.gpus for r in gpu_hosts)
            fitting = {g.index for r in gpu_hosts for g in free if self._fits(g, r)}
            extra = "" if len(fitting) == len(free) else f", {len(fitting)} of them fit"
            return f"Waiting for {want} free GPU{_s(want)} ({len(free)} free now{extra})"
        claims = self._claims(hosts, picks)
        need_v = sum(v for v, _ in claims)
        need_m = sum(m for _, m in claims)
        used_v, used_m = self.used()
        short = []
        if used_v + need_v > self.vcpu_capacity + _EPS:
            short.append(
                f"{need_v:g} vCPUs (free {max(0.0, self.vcpu_capacity - used_v):g} of "
                f"{self.vcpu_capacity:g} accounted: {self.cores:g} cores x cpu_overcommit "
                f"{self.cpu_overcommit:g})"
            )
        if used_m + need_m > self.memory_capacity + _EPS:
            short.append(
                f"{need_m:.1f} GiB of memory (free {max(0.0, self.memory_capacity - used_m):.1f} "
                f"of {self.memory_capacity:.1f} GiB accounted: {self.ram_gib:.1f} GiB x "
                f"memory_overcommit {self.memory_overcommit:g})"
            )
        if short:
            return "Waiting for " + " and ".join(short) + " held by running jobs"
        return "Waiting for resources to free up"

    def _effective(self, hosts: Sequence[HostRequest]) -> list[HostRequest]:
        """The requests as allocated: without GPUs when the job falls back to the CPU."""
        if self.cpu_fallback and self.never_fits(hosts) is not None:
            return [_without_gpus(r) for r in hosts]
        return list(hosts)

    # -- changes ---------------------------------------------------------------------

    def try_allocate(self, owner: str, hosts: Sequence[HostRequest]) -> list[HostGrant] | None:
        """Grant every host at once, or nothing (a job never starts with part of its hosts)."""
        reason = self.never_fits(hosts) if self.cpu_fallback else None
        picks = self._pick(self.free_gpus(), self._effective(hosts))
        if picks is None:
            return None
        claims = self._claims(hosts, picks)
        used_v, used_m = self.used()
        need_v = sum(v for v, _ in claims)
        need_m = sum(m for _, m in claims)
        if (
            used_v + need_v > self.vcpu_capacity + _EPS
            or used_m + need_m > self.memory_capacity + _EPS
        ):
            return None
        pinned = self._pin([v for v, _ in claims]) if self.cpu_affinity else [()] * len(hosts)
        grants = []
        for req, gpus, (claim_v, claim_m), cpus in zip(hosts, picks, claims, pinned, strict=True):
            fell_back = reason is not None and bool(req.gpus or req.accelerators)
            grants.append(
                HostGrant(
                    gpus,
                    req.vcpus,
                    req.memory_gib,
                    cpu_fallback=fell_back,
                    fallback_reason=reason if fell_back and reason else "",
                    cpus=cpus,
                    claim_vcpus=round(claim_v, 6),
                    claim_memory_gib=round(claim_m, 6),
                )
            )
        self._held[owner] = _Holding(
            {g.index for gpus in picks for g in gpus},
            need_v,
            need_m,
            [c for cpus in pinned for c in cpus],
        )
        return grants

    def _pin(self, claims: Sequence[float]) -> list[tuple[int, ...]]:
        """Logical CPUs per host: ``ceil(claim / cpu_overcommit)``, the least loaded first."""
        load = {c: 0 for c in self.cpu_ids}
        for holding in self._held.values():
            for c in holding.cpus:
                if c in load:
                    load[c] += 1
        out = []
        for claim in claims:
            count = min(len(self.cpu_ids), max(1, math.ceil(claim / self.cpu_overcommit - _EPS)))
            chosen = sorted(sorted(load, key=lambda c: (load[c], c))[:count])
            for c in chosen:
                load[c] += 1
            out.append(tuple(chosen))
        return out

    def grants_from_json(self, grants: Sequence[Mapping[str, Any]]) -> list[HostGrant]:
        """The grants a job record keeps (``HostGrant.to_json``), with this node's devices.

        GPUs are found by UUID (NVML indices can shift when a GPU drops off the bus), else by
        index. A GPU this node no longer has stays in the grant as a stand-in named
        :data:`LOST_GPU_NAME` (index -1, so ``CUDA_VISIBLE_DEVICES`` cannot point at another
        device): the job keeps the count it was promised, and nothing is dropped silently.
        """
        by_uuid = {g.uuid: g for g in self.gpus.values()}
        out = []
        for g in grants:
            indices = [int(i) for i in g.get("gpus", [])]
            uuids = list(g.get("gpu_uuids") or [])
            devices = []
            for pos, index in enumerate(indices):
                uuid = str(uuids[pos]) if pos < len(uuids) else ""
                device = by_uuid.get(uuid) if uuid else self.gpus.get(index)
                if device is None:
                    device = GpuDevice(-1, uuid or f"lost-{index}", LOST_GPU_NAME, 0, None)
                devices.append(device)
            out.append(
                HostGrant(
                    tuple(devices),
                    float(g.get("vcpus", 0.0)),
                    float(g.get("memory_gib", 0.0)),
                    bool(g.get("cpu_fallback")),
                    str(g.get("fallback_reason") or ""),
                    tuple(int(c) for c in g.get("cpus") or []),
                    _optional_float(g.get("claim_vcpus")),
                    _optional_float(g.get("claim_memory_gib")),
                )
            )
        return out

    def restore(self, owner: str, grants: Sequence[Mapping[str, Any]]) -> list[str]:
        """Re-register what a job held before a server restart.

        Returns one note per granted GPU this node no longer has (empty when all are there);
        the job keeps it on its books (see :meth:`lost_gpus`) and the caller says so.
        """
        restored = self.grants_from_json(grants)
        lost = [
            f"GPU {g.get('gpus', [])[pos]} ({d.uuid})"
            for g, grant in zip(grants, restored, strict=True)
            for pos, d in enumerate(grant.gpus)
            if d.name == LOST_GPU_NAME
        ]
        self._held[owner] = _Holding(
            {d.index for grant in restored for d in grant.gpus if d.index >= 0},
            sum(g.vcpus if g.claim_vcpus is None else g.claim_vcpus for g in restored),
            sum(
                g.memory_gib if g.claim_memory_gib is None else g.claim_memory_gib for g in restored
            ),
            [c for grant in restored for c in grant.cpus],
            lost,
        )
        return [
            f"{what} was granted to this job but is not on this machine any more (it may "
            "have fallen off the bus: check `nvidia-smi` and dmesg for Xid errors)"
            for what in lost
        ]

    def release(self, owner: str) -> None:
        self._held.pop(owner, None)

    def holders(self) -> dict[str, set[int]]:
        return {k: set(v.gpus) for k, v in self._held.items()}

    def lost_gpus(self, owner: str) -> list[str]:
        """GPUs ``owner`` was granted that were gone when its grant was restored."""
        holding = self._held.get(owner)
        return list(holding.lost) if holding else []

    def pinned(self, owner: str) -> list[int]:
        holding = self._held.get(owner)
        return list(holding.cpus) if holding else []


def _without_gpus(req: HostRequest) -> HostRequest:
    return HostRequest(req.instance_type, vcpus=req.vcpus, memory_gib=req.memory_gib)


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _s(count: int) -> str:
    return "" if count == 1 else "s"


_GIB_PER_GB = 1e9 / 2**30
_EPS = 1e-9
