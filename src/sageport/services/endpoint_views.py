"""What DescribeEndpoint and sageport's endpoint report say, assembled in one place.

Pure functions of the stored endpoint (its spec and runtime state) and its configs.
"""

from __future__ import annotations

from typing import Any

from sageport.domain.endpoint import EndpointStatus
from sageport.domain.runtime import EndpointRuntime, ReplicaSlot
from sageport.errors import ValidationException
from sageport.services.endpoint_configs import EndpointConfigService
from sageport.store.resources import Resource

E = EndpointStatus


def endpoint_summary(endpoint: Resource) -> dict[str, Any]:
    return {
        "EndpointName": endpoint.name,
        "EndpointArn": endpoint.arn,
        "CreationTime": endpoint.created_at,
        "LastModifiedTime": endpoint.modified_at,
        "EndpointStatus": endpoint.status,
    }


def config_of(endpoint: Resource) -> str:
    """The endpoint configuration in service (the one it was created with until an update)."""
    return EndpointRuntime.from_json(endpoint.state).config or endpoint.spec["EndpointConfigName"]


def current_counts(endpoint: Resource, variants: list[dict[str, Any]]) -> dict[str, int]:
    counts = EndpointRuntime.from_json(endpoint.state).counts
    return {
        v["VariantName"]: int(counts.get(v["VariantName"], v.get("InitialInstanceCount", 1)))
        for v in variants
    }


def _note(entry: Any, status: str) -> dict[str, Any] | None:
    """A stored ``{"message", "since"}`` note as a ProductionVariantStatus."""
    if not entry:
        return None
    return {"Status": status, "StatusMessage": entry["message"][:1024], "StartTime": entry["since"]}


def describe_endpoint(endpoint: Resource, configs: EndpointConfigService) -> dict[str, Any]:
    """DescribeEndpoint: the spec, the status, per-variant counts/weights and what is going on.

    ``ProductionVariants[].VariantStatus`` says what a variant waits for (GPUs held by other
    work) while the endpoint is Creating, that counts are changing, and the last restart of a
    crashed instance (kept until the next deployment). During UpdateEndpoint,
    ``PendingDeploymentSummary`` describes the new configuration's variants with what they wait
    for, or that instances are replaced one at a time.
    """
    rt = EndpointRuntime.from_json(endpoint.state)
    status = endpoint.status
    out: dict[str, Any] = {
        **endpoint.spec,
        **endpoint_summary(endpoint),
        "EndpointConfigName": config_of(endpoint),
    }
    if rt.failure_reason:
        out["FailureReason"] = rt.failure_reason
    try:
        config = configs.get(out["EndpointConfigName"])
    except ValidationException:
        return out  # the config was deleted; SageMaker still describes the endpoint
    pending = rt.pending or {}
    same_config = pending.get("config") in (None, out["EndpointConfigName"])
    in_place = status == E.UPDATING and same_config
    replicas = rt.replicas
    weights = rt.weights
    desired_weights = {**weights, **(pending.get("weights") or {})} if in_place else weights
    variants_spec = config.spec.get("ProductionVariants", [])
    counts = current_counts(endpoint, variants_spec)
    desired_counts = {**counts, **(pending.get("counts") or {})} if in_place else counts
    notes = rt.variant_notes
    queue = _note(rt.queue_message, "Creating")
    variants = []
    for v in variants_spec:
        vname = v["VariantName"]
        initial = float(v.get("InitialVariantWeight", 1.0))
        live = [r for r in replicas if r.variant == vname and r.ready]
        summary: dict[str, Any] = {
            "VariantName": vname,
            "CurrentWeight": float(weights.get(vname, initial)),
            "DesiredWeight": float(desired_weights.get(vname, initial)),
            "CurrentInstanceCount": len(live),
            "DesiredInstanceCount": desired_counts[vname],
        }
        images = sorted({r.image for r in live if r.image})
        if images:
            summary["DeployedImages"] = [{"SpecifiedImage": i, "ResolvedImage": i} for i in images]
        status_list = []
        if vname in notes:
            status_list.append(
                {k: notes[vname][k] for k in ("Status", "StatusMessage", "StartTime")}
            )
        if status == E.CREATING and queue:
            status_list.append(queue)
        if in_place and desired_counts[vname] != counts[vname]:
            status_list.append(
                {
                    "Status": "Updating",
                    "StatusMessage": (queue or {}).get("StatusMessage")
                    or f"Changing the instance count from {counts[vname]} to {desired_counts[vname]}",
                    "StartTime": pending.get("since") or endpoint.modified_at,
                }
            )
        if status_list:
            summary["VariantStatus"] = status_list
        variants.append(summary)
    if status != E.CREATING or replicas or queue:
        out["ProductionVariants"] = variants
    if status in (E.UPDATING, E.ROLLING_BACK) and not same_config:
        out["PendingDeploymentSummary"] = _pending_summary(endpoint, configs, pending, queue)
    return out


def _pending_summary(
    endpoint: Resource, configs: EndpointConfigService, pending: dict[str, Any], queue: Any
) -> dict[str, Any]:
    rt = EndpointRuntime.from_json(endpoint.state)
    summary: dict[str, Any] = {"EndpointConfigName": pending["config"]}
    if pending.get("since"):
        summary["StartTime"] = pending["since"]
    try:
        spec = configs.get(pending["config"]).spec
    except ValidationException:
        return summary
    new = rt.pending_replicas
    rollout = _note(rt.rollout, "Updating")
    variants = []
    for v in spec.get("ProductionVariants", []):
        vname = v["VariantName"]
        item: dict[str, Any] = {
            "VariantName": vname,
            "CurrentWeight": 0.0,
            "DesiredWeight": float(v.get("InitialVariantWeight", 1.0)),
            "CurrentInstanceCount": len([r for r in new if r.variant == vname and r.ready]),
            "DesiredInstanceCount": int(
                (pending.get("counts") or {}).get(vname, v.get("InitialInstanceCount", 1))
            ),
            "InstanceType": v["InstanceType"],
        }
        notes = [n for n in (queue, rollout) if n]
        notes = notes or [
            {
                "Status": "Creating",
                "StatusMessage": "Starting the new configuration's model servers",
                "StartTime": pending.get("since") or endpoint.modified_at,
            }
        ]
        item["VariantStatus"] = notes
        variants.append(item)
    summary["ProductionVariants"] = variants
    return summary


def instances_report(endpoint: Resource) -> list[dict[str, Any]]:
    """sageport's own view of an endpoint's instances (``GET /_sageport/endpoints/<name>``):
    what SageMaker has no field for — per instance its GPUs, port, readiness and restarts."""
    rt = EndpointRuntime.from_json(endpoint.state)
    out = []
    for slot, role in ((ReplicaSlot.SERVING, "serving"), (ReplicaSlot.PENDING, "starting")):
        for r in rt.slot(slot):
            grant = r.grant
            out.append(
                {
                    "InstanceId": r.id,
                    "VariantName": r.variant,
                    "InstanceType": r.instance_type,
                    "Role": role,
                    "Ready": r.ready,
                    "Port": r.port,
                    "Gpus": list(grant.get("gpus") or []),
                    "GpuUuids": list(grant.get("gpu_uuids") or []),
                    "CpuFallback": bool(grant.get("cpu_fallback")),
                    "Restarts": r.restarts,
                    "LastRestart": r.last_restart,
                }
            )
    return out
