"""What is checked before a job is accepted: can this machine ever run it?

Everything the API model allows but this machine cannot do is refused at create with a
specific message, so nobody waits for a job that would only fail: an instance type that is
not in the catalog (with a did-you-mean), GPUs no node here can provide
(``ResourceLimitExceeded``), an image with no local runtime, Pipe input mode.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from sageport.catalog import Catalog
from sageport.catalog.hosts import host_request, processing_hosts, training_hosts
from sageport.domain.hosts import HostRequest
from sageport.errors import ResourceLimitExceeded, ValidationException
from sageport.runtime.errors import UnknownImage
from sageport.runtime.images import resolve_image
from sageport.services.request_paths import check_processing_paths, check_training_paths

__all__ = ["Admission", "Capacity", "host_request", "processing_hosts", "training_hosts"]


class Capacity(Protocol):
    """What admission asks of the machine's capacity (the scheduler's ``Allocator``)."""

    def impossible(self, hosts: Sequence[HostRequest]) -> str | None:
        """Why no amount of waiting would let these hosts start here, or ``None``."""
        ...


class Admission:
    """Create-time checks shared by training and processing jobs."""

    def __init__(self, catalog: Catalog, allocator: Capacity, images: Mapping[str, str]) -> None:
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
