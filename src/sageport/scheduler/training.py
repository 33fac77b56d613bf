"""The training kind of job: ``/opt/ml`` training contract in, ``model.tar.gz`` out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sageport.backends.base import LaunchSpec
from sageport.catalog import Catalog
from sageport.catalog.hosts import training_hosts
from sageport.domain.hosts import HostRequest
from sageport.domain.runtime import StoredOutputs
from sageport.runtime.config_files import all_hosts
from sageport.scheduler import artifacts
from sageport.scheduler.allocator import HostGrant
from sageport.scheduler.hosts import (
    JobContext,
    host_dirs,
    launch_spec,
    no_sandbox_notes,
    stage_host,
)
from sageport.storage.objectstore import ObjectStore


class TrainingKind:
    label = "training job"
    folder = "training"
    log_group = "/aws/sagemaker/TrainingJobs"

    def hosts(self, catalog: Catalog, spec: Mapping[str, Any]) -> list[HostRequest]:
        return training_hosts(catalog, spec)

    def host_names(self, spec: Mapping[str, Any]) -> list[str]:
        return all_hosts(spec)

    async def stage(self, ctx: JobContext, host: str, objects: ObjectStore) -> tuple[int, int]:
        return await stage_host(ctx, host, objects)

    def launch(self, ctx: JobContext, host: str, grant: HostGrant) -> tuple[LaunchSpec, list[str]]:
        return launch_spec(ctx, host, grant)

    async def progress(
        self, ctx: JobContext, objects: ObjectStore, seen: dict[str, list[float]]
    ) -> None:
        return None

    async def store_outputs(
        self, ctx: JobContext, objects: ObjectStore, hosts: Sequence[str]
    ) -> StoredOutputs:
        return await artifacts.store_outputs(ctx, objects, [host_dirs(ctx, h)[0] for h in hosts])

    def metric_definitions(self, spec: Mapping[str, Any]) -> list[dict[str, str]]:
        return list((spec.get("AlgorithmSpecification") or {}).get("MetricDefinitions") or [])

    def no_sandbox_notes(self, why: str, host_dir: Path) -> tuple[str, str]:
        return no_sandbox_notes(why, host_dir)
