"""Service quotas: how much one request, and everything at once, may ask of this machine.

Like an AWS account's SageMaker service quotas, and refused the same way: a create (or an
endpoint update) over a quota is a ``ResourceLimitExceeded`` in SageMaker's wording, naming
the ``sageport.toml`` setting that raises it. Every rule is here; the create use cases call it
before anything is built, so the answer takes the same milliseconds whatever the number asked
for (the allocator's checks build one record per instance and must never see an unbounded
count). The limits themselves are :class:`~sageport.settings.Settings` fields.

- **Instances per job / per endpoint** are checked from the request alone.
- **Jobs in progress, endpoints and model servers in total** count what is stored, in the
  same write transaction that stores the new resource (SQLite's writers take the lock at
  ``BEGIN IMMEDIATE``), so two creates racing for the last slot cannot both win.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sageport.domain import processing, training
from sageport.domain.endpoint import EndpointStatus
from sageport.domain.runtime import EndpointRuntime
from sageport.errors import ResourceLimitExceeded, ValidationException
from sageport.services.endpoint_configs import KIND as CONFIG_KIND
from sageport.settings import Settings
from sageport.store import resources
from sageport.store.database import Connection

#: Endpoint statuses whose model servers run or are about to: ``Deleting`` ones are going
#: (a delete-then-create must not be refused) and ``Failed`` ones run nothing.
LIVE_ENDPOINT = tuple(
    s.value for s in EndpointStatus if s not in (EndpointStatus.DELETING, EndpointStatus.FAILED)
)
#: Job statuses counted as "in progress": every non-terminal one, queued jobs included (AWS
#: counts InProgress, which includes a job waiting for capacity), and Stopping ones, which
#: still hold their hosts; per kind, from its table.
LIVE_JOB = {
    "TrainingJob": tuple(s.value for s in training.MACHINE.live()),
    "ProcessingJob": tuple(s.value for s in processing.MACHINE.live()),
}

_JOBS = {
    # kind → (setting, quota name as SageMaker's messages word it)
    "TrainingJob": ("max_training_jobs_in_progress", "number of concurrent training jobs"),
    "ProcessingJob": ("max_processing_jobs_in_progress", "number of concurrent processing jobs"),
}


def exceeded(
    settings: Settings, setting: str, quota: str, current: int, delta: int, unit: str
) -> ResourceLimitExceeded:
    """SageMaker's quota message, pointing at the setting instead of AWS Service Quotas."""
    limit = getattr(settings, setting)
    return ResourceLimitExceeded(
        f"The account-level service limit '{quota}' is {limit} {unit}, with current "
        f"utilization of {current} {unit} and a request delta of {delta} {unit}. To raise "
        f"this quota, set {setting} in {settings.settings_file} and restart the server."
    )


def _count(value: Any, field: str) -> int:
    """A count from a validated request; at least 1 (the model allows 0 for some)."""
    count = int(value)
    if count < 1:
        raise ValidationException(f"{field} must be at least 1, not {count}.")
    return count


def training_instances(spec: Mapping[str, Any]) -> int:
    """How many hosts a CreateTrainingJob asks for, over every instance group."""
    config = spec.get("ResourceConfig") or {}
    groups = config.get("InstanceGroups")
    if groups:
        return sum(
            _count(g.get("InstanceCount", 1), f"ResourceConfig.InstanceGroups[{i}].InstanceCount")
            for i, g in enumerate(groups)
        )
    return _count(config.get("InstanceCount", 1), "ResourceConfig.InstanceCount")


def check_training_job(settings: Settings, spec: Mapping[str, Any]) -> None:
    count = training_instances(spec)
    if count > settings.max_instances_per_training_job:
        raise exceeded(
            settings,
            "max_instances_per_training_job",
            "instances per training job",
            0,
            count,
            "Instances",
        )


def check_processing_job(settings: Settings, spec: Mapping[str, Any]) -> None:
    cluster = (spec.get("ProcessingResources") or {}).get("ClusterConfig") or {}
    count = _count(
        cluster.get("InstanceCount", 1), "ProcessingResources.ClusterConfig.InstanceCount"
    )
    if count > settings.max_instances_per_processing_job:
        raise exceeded(
            settings,
            "max_instances_per_processing_job",
            "instances per processing job",
            0,
            count,
            "Instances",
        )


def check_jobs_in_progress(conn: Connection, settings: Settings, kind: str) -> None:
    """Inside the create transaction: room for one more job of ``kind``?"""
    if kind not in _JOBS:
        return
    setting, quota = _JOBS[kind]
    limit: int = getattr(settings, setting)
    live = resources.list_resources(
        conn, kind, resources.ResourceFilter(statuses=LIVE_JOB[kind], limit=limit)
    )
    if len(live) >= limit:
        raise exceeded(settings, setting, quota, len(live), 1, "Jobs")


def variant_counts(
    variants: Iterable[Mapping[str, Any]], overrides: Mapping[str, Any] | None = None
) -> dict[str, int]:
    """Instances per variant: ``overrides`` (counts set later) over InitialInstanceCount."""
    chosen = overrides or {}
    return {
        v["VariantName"]: int(chosen.get(v["VariantName"], v.get("InitialInstanceCount", 1)))
        for v in variants
    }


def check_endpoint_instances(settings: Settings, counts: Mapping[str, int]) -> None:
    """One endpoint's instances, all its variants together (before any is built)."""
    total = sum(counts.values())
    if total > settings.max_instances_per_endpoint:
        raise exceeded(
            settings,
            "max_instances_per_endpoint",
            "instances per endpoint",
            0,
            total,
            "Instances",
        )


def _config_variants(conn: Connection, name: str) -> list[dict[str, Any]]:
    config = resources.get(conn, CONFIG_KIND, name)
    return list((config.spec.get("ProductionVariants") or []) if config else [])


def endpoint_instances(conn: Connection, endpoint: resources.Resource) -> int:
    """The model servers an endpoint runs or is about to: its configuration's counts, or the
    pending update's target where that is larger."""
    rt = EndpointRuntime.from_json(endpoint.state)
    current_name = rt.config or endpoint.spec.get("EndpointConfigName", "")
    kept = rt.counts
    current = sum(variant_counts(_config_variants(conn, current_name), kept).values())
    pending = rt.pending or {}
    if not pending.get("config"):
        return current
    same = pending["config"] == current_name
    overrides = {**kept, **pending.get("counts", {})} if same else pending.get("counts")
    target = sum(variant_counts(_config_variants(conn, pending["config"]), overrides).values())
    return max(current, target)


def check_endpoint_capacity(
    conn: Connection, settings: Settings, name: str, instances: int, *, new: bool
) -> None:
    """Inside the create/update transaction: room for endpoint ``name`` with ``instances``
    model servers (``new``: it is being created, so it also counts against ``max_endpoints``)."""
    live = resources.list_resources(
        conn, "Endpoint", resources.ResourceFilter(statuses=LIVE_ENDPOINT, limit=100_000)
    )
    others = [e for e in live if e.name != name]
    if new and len(others) >= settings.max_endpoints:
        raise exceeded(
            settings, "max_endpoints", "number of endpoints", len(others), 1, "Endpoints"
        )
    used = sum(endpoint_instances(conn, e) for e in others)
    if used + instances > settings.max_model_servers:
        raise exceeded(
            settings,
            "max_model_servers",
            "total number of instances across all endpoints",
            used,
            instances,
            "Instances",
        )
