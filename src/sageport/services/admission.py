"""What is checked before a job is accepted: can this machine ever run it?

Everything the API model allows but this machine cannot do is refused at create with a
specific message, so nobody waits for a job that would only fail: an instance type that is
not in the catalog (with a did-you-mean), GPUs no node here can provide
(``ResourceLimitExceeded``), an image with no local runtime, Pipe input mode.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sageport.catalog import Catalog
from sageport.errors import ResourceLimitExceeded, ValidationException
from sageport.runtime.errors import UnknownImage
from sageport.runtime.images import resolve_image
from sageport.scheduler.allocator import Allocator, HostRequest
from sageport.services.request_paths import check_processing_paths, check_training_paths


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


class Admission:
    """Create-time checks shared by training and processing jobs."""

    def __init__(self, catalog: Catalog, allocator: Allocator, images: Mapping[str, str]) -> None:
        self.catalog = catalog
        self.allocator = allocator
        self.images = images

    def check_hosts(self, hosts: list[HostRequest]) -> None:
        reason = self.allocator.impossible(hosts)
        if reason:
            raise ResourceLimitExceeded(reason)

    def check_image(self, image: str | None, what: str) -> None:
        if not image:
            raise ValidationException(
                f"{what} must be given: sageport maps framework images to local runtimes and "
                "does not run marketplace algorithms (AlgorithmName)."
            )
        try:
            resolve_image(image, self.images)
        except UnknownImage as exc:
            raise ValidationException(str(exc)) from None

    def check_training(self, spec: Mapping[str, Any]) -> list[HostRequest]:
        algo = spec.get("AlgorithmSpecification") or {}
        hosts = training_hosts(self.catalog, spec)
        self.check_hosts(hosts)
        self.check_image(algo.get("TrainingImage"), "AlgorithmSpecification.TrainingImage")
        check_training_paths(spec)
        modes = [algo.get("TrainingInputMode")] + [
            c.get("InputMode") for c in spec.get("InputDataConfig") or []
        ]
        if "Pipe" in modes:
            raise ValidationException(
                "Pipe input mode is not supported by sageport yet; use File or FastFile "
                "(the data is then read from /opt/ml/input/data/<channel>)."
            )
        for channel in spec.get("InputDataConfig") or []:
            source = channel.get("DataSource") or {}
            if "S3DataSource" not in source:
                raise ValidationException(
                    f"Channel {channel.get('ChannelName')}: only S3DataSource channels are supported "
                    "(FileSystemDataSource needs EFS/FSx)."
                )
        return hosts

    def check_processing(self, spec: Mapping[str, Any]) -> list[HostRequest]:
        hosts = processing_hosts(self.catalog, spec)
        self.check_hosts(hosts)
        app = spec.get("AppSpecification") or {}
        self.check_image(app.get("ImageUri"), "AppSpecification.ImageUri")
        if not app.get("ContainerEntrypoint"):
            # A real container falls back to its image's ENTRYPOINT; a mapped runtime has none.
            raise ValidationException(
                'AppSpecification.ContainerEntrypoint must be given (e.g. ["python3", '
                '"/opt/ml/processing/input/code/process.py"]): sageport runs no container '
                "image, so there is no default command."
            )
        check_processing_paths(spec)
        for item in spec.get("ProcessingInputs") or []:
            s3 = item.get("S3Input")
            if item.get("DatasetDefinition"):
                raise ValidationException(
                    f"Input {item['InputName']}: DatasetDefinition (Athena/Redshift) is not supported by sageport."
                )
            if s3 and s3.get("S3InputMode") == "Pipe":
                raise ValidationException(
                    f"Input {item['InputName']}: Pipe input mode is not supported by sageport yet; use File."
                )
            if s3 and s3.get("S3CompressionType") == "Gzip":
                # As in SageMaker: Gzip only decompresses a Pipe-mode stream.
                raise ValidationException(
                    f"Input {item['InputName']}: S3CompressionType Gzip is only valid with "
                    "S3InputMode Pipe; use None with File mode."
                )
        return hosts


def processing_hosts(catalog: Catalog, spec: Mapping[str, Any]) -> list[HostRequest]:
    cluster = (spec.get("ProcessingResources") or {}).get("ClusterConfig") or {}
    return [
        host_request(catalog, cluster["InstanceType"])
        for _ in range(int(cluster.get("InstanceCount", 1)))
    ]
