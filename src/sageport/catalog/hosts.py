"""What the hosts of a request ask for, from the catalog: one :class:`HostRequest` per host.

Shared by the API's create-time checks (``services.admission``) and the scheduler, which
both read a request's instance types the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sageport.catalog.catalog import Catalog
from sageport.domain.hosts import HostRequest
from sageport.errors import ValidationException


def host_request(catalog: Catalog, instance_type: str) -> HostRequest:
    """What one host of ``instance_type`` needs; unknown types raise with a did-you-mean.

    Neuron (Inferentia, Trainium) and Gaudi accelerators are requested as such: sageport can
    never provide them, so such a type is refused at create with the reason, or runs on the
    CPU with a warning where ``cpu_fallback`` is on, exactly like a GPU type on a machine
    without GPUs. A user who asks for an Inferentia endpoint has compiled for Neuron; quietly
    running that on the CPU would only fail later, or mislead.
    """
    row = catalog.get(instance_type)
    other = row.accelerator_kind not in ("gpu", "none", "unknown")
    return HostRequest(
        instance_type=instance_type,
        gpus=row.gpu_count,
        gpu_model=row.gpu_model or "",
        gpu_memory_gib=row.gpu_memory_gb or 0.0,
        vcpus=float(row.vcpus or 1),
        memory_gib=float(row.memory_gib or 1.0),
        accelerators=row.accelerator_count if other else 0,
        accelerator_kind=row.accelerator_kind if other else "",
        accelerator_model=(row.accelerator_model or "") if other else "",
    )


def training_hosts(catalog: Catalog, spec: Mapping[str, Any]) -> list[HostRequest]:
    """One request per host, in host order (``algo-1`` first), from ResourceConfig."""
    config = spec.get("ResourceConfig") or {}
    groups = config.get("InstanceGroups")
    if groups:
        pairs = [(g["InstanceType"], int(g["InstanceCount"])) for g in groups]
    else:
        if not config.get("InstanceType"):
            raise ValidationException("ResourceConfig must name an InstanceType or InstanceGroups.")
        pairs = [(config["InstanceType"], int(config.get("InstanceCount", 1)))]
    return [host_request(catalog, itype) for itype, count in pairs for _ in range(count)]


def processing_hosts(catalog: Catalog, spec: Mapping[str, Any]) -> list[HostRequest]:
    cluster = (spec.get("ProcessingResources") or {}).get("ClusterConfig") or {}
    return [
        host_request(catalog, cluster["InstanceType"])
        for _ in range(int(cluster.get("InstanceCount", 1)))
    ]
