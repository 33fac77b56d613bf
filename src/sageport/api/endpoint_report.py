"""``GET /_sageport/endpoints/<name>``: an endpoint's instances, GPUs and batch sizes.

SageMaker has no field for what ``sageport endpoints describe`` shows: which GPUs each
instance holds, its restarts, and the batch-size histogram that says whether dynamic
batching forms batches. The instances come from the endpoint's stored state
(``services.endpoints.instances_report``); the counters from each ready model server's
private ``GET /metrics``, asked over the loopback pool with a short timeout (an instance that
does not answer is listed without them). Per variant, the histograms are added up.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from starlette.concurrency import run_in_threadpool

from sageport.services.container import Services
from sageport.services.endpoints import instances_report
from sageport.serving.upstream import UpstreamError

METRICS_TIMEOUT_S = 2.0


async def endpoint_report(services: Services, name: str) -> dict[str, Any]:
    endpoint = await run_in_threadpool(services.endpoints.get, name)
    instances = instances_report(endpoint)
    metrics = await asyncio.gather(*(_metrics(services, i) for i in instances))
    for instance, found in zip(instances, metrics, strict=True):
        instance["Metrics"] = found
    variants: dict[str, dict[str, Any]] = {}
    for instance in instances:
        v = variants.setdefault(
            instance["VariantName"],
            {
                "VariantName": instance["VariantName"],
                "Instances": 0,
                "Gpus": [],
                "Invocations": 0,
                "Errors": 0,
                "Batching": None,
                "histogram": Counter(),
            },
        )
        if instance["Role"] != "serving":
            continue
        v["Instances"] += 1
        v["Gpus"] += instance["Gpus"]
        found = instance["Metrics"] or {}
        v["Invocations"] += int(found.get("invocations", 0))
        v["Errors"] += int(found.get("errors", 0))
        v["Batching"] = v["Batching"] or found.get("batching")
        v["histogram"].update(
            {int(k): int(n) for k, n in (found.get("batch_size_histogram") or {}).items()}
        )
    summaries = []
    for v in variants.values():
        histogram: Counter[int] = v.pop("histogram")
        batches = sum(histogram.values())
        v["BatchSizeHistogram"] = {str(k): n for k, n in sorted(histogram.items())}
        v["Batches"] = batches
        v["MeanBatchSize"] = (
            round(sum(k * n for k, n in histogram.items()) / batches, 3) if batches else 0.0
        )
        summaries.append(v)
    return {
        "EndpointName": endpoint.name,
        "EndpointStatus": endpoint.status,
        "Variants": summaries,
        "Instances": instances,
    }


async def _metrics(services: Services, instance: dict[str, Any]) -> dict[str, Any] | None:
    if not instance["Ready"] or not instance.get("Port"):
        return None
    import json

    try:
        resp = await services.upstream.request(
            "127.0.0.1", int(instance["Port"]), "GET", "/metrics", {}, b"", METRICS_TIMEOUT_S
        )
        data: dict[str, Any] = json.loads(resp.body)
    except (UpstreamError, TimeoutError, ValueError):
        return None
    if resp.status != 200:
        return None
    data.pop("per_worker", None)
    return data
