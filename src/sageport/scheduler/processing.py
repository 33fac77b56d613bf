"""The processing kind of job: inputs at their LocalPaths in, outputs to their S3Uris out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sageport.backends.base import LaunchSpec
from sageport.catalog import Catalog
from sageport.catalog.hosts import processing_hosts
from sageport.domain.hosts import HostRequest
from sageport.domain.runtime import StoredOutputs
from sageport.scheduler.allocator import HostGrant
from sageport.scheduler.hosts import JobContext, host_dirs
from sageport.scheduler.processing_hosts import (
    no_sandbox_notes,
    processing_host_names,
    processing_launch_spec,
    stage_processing_host,
    upload_outputs,
)
from sageport.storage import folders
from sageport.storage.objectstore import ObjectStore

EXIT_MESSAGE_LIMIT = 1024


class ProcessingKind:
    label = "processing job"
    folder = "processing"
    log_group = "/aws/sagemaker/ProcessingJobs"

    def hosts(self, catalog: Catalog, spec: Mapping[str, Any]) -> list[HostRequest]:
        return processing_hosts(catalog, spec)

    def host_names(self, spec: Mapping[str, Any]) -> list[str]:
        return processing_host_names(spec)

    async def stage(self, ctx: JobContext, host: str, objects: ObjectStore) -> tuple[int, int]:
        return await stage_processing_host(ctx, host, objects)

    def launch(self, ctx: JobContext, host: str, grant: HostGrant) -> tuple[LaunchSpec, list[str]]:
        return processing_launch_spec(ctx, host, grant)

    async def progress(
        self, ctx: JobContext, objects: ObjectStore, seen: dict[str, list[float]]
    ) -> None:
        """``Continuous`` outputs: upload files as they appear or change."""
        await upload_outputs(ctx, objects, processing_host_names(ctx.spec), seen)

    async def store_outputs(
        self, ctx: JobContext, objects: ObjectStore, hosts: Sequence[str]
    ) -> StoredOutputs:
        skipped: list[str] = []
        await upload_outputs(ctx, objects, list(hosts), skipped=skipped)
        # /opt/ml/output/message: the container's own words, shown as ExitMessage (never
        # read through a link the job left there)
        message = host_dirs(ctx, hosts[0])[0] / "output" / "message"
        text = folders.read_inside(ctx.job_dir, message, 4 * EXIT_MESSAGE_LIMIT)
        exit_message = text[:EXIT_MESSAGE_LIMIT] if text is not None else None
        return StoredOutputs(exit_message=exit_message, log_lines=skipped)

    def metric_definitions(self, spec: Mapping[str, Any]) -> list[dict[str, str]]:
        return []

    def no_sandbox_notes(self, why: str, host_dir: Path) -> tuple[str, str]:
        return no_sandbox_notes(why, host_dir)

    @staticmethod
    def has_continuous_outputs(spec: Mapping[str, Any]) -> bool:
        outputs = (spec.get("ProcessingOutputConfig") or {}).get("Outputs") or []
        return any((o.get("S3Output") or {}).get("S3UploadMode") == "Continuous" for o in outputs)
