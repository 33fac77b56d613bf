"""sageport's own read-only API, beside the AWS ones: what SageMaker has no field for.

``GET /_sageport/training-jobs/<name>/gpu`` answers a job's GPU telemetry summary (per GPU:
samples, mean and peak utilization, peak memory) and the idle-GPU warning, for
``sageport jobs describe``. ``GET /_sageport/endpoints/<name>`` answers an endpoint's
instances (GPUs, restarts) and per-variant batch-size histograms (``endpoint_report``), for
``sageport endpoints describe``. Requests are SigV4-signed like every other (service
``sagemaker``); errors are JSON 1.1 errors.
"""

from __future__ import annotations

import json

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from sageport.api.dispatch import RequestContext
from sageport.api.jsonproto import JsonProtocol
from sageport.errors import ValidationException
from sageport.services.gpu_report import gpu_report

PREFIX = "/_sageport/"


class ExtensionProtocol(JsonProtocol):
    """JSON errors and SigV4 like the control plane; a path instead of X-Amz-Target."""

    async def handle(self, request: Request, ctx: RequestContext, body: bytes | None) -> Response:
        parts = request.url.path[len(PREFIX) :].strip("/").split("/")
        if request.method == "GET" and len(parts) == 2 and parts[0] == "endpoints":
            from sageport.api.endpoint_report import endpoint_report

            report = await endpoint_report(ctx.services, parts[1])
            return Response(json.dumps(report), media_type="application/json")
        if (
            request.method != "GET"
            or len(parts) != 3
            or parts[0] != "training-jobs"
            or parts[2] != "gpu"
        ):
            raise ValidationException(f"Unknown sageport API path {request.url.path}")
        job = await run_in_threadpool(ctx.services.training.get, parts[1])
        return Response(json.dumps(gpu_report(job)), media_type="application/json")
