"""SageMaker Runtime (REST-JSON): ``POST /endpoints/<name>/invocations``.

The request is routed by the in-memory :class:`~sageport.serving.router.TrafficRouter` (variant by
weight or ``TargetVariant``, instance by least outstanding requests) and forwarded over a
keep-alive connection to that instance's model server. Errors are the ones real SageMaker
returns: ``ValidationError`` for an unknown endpoint, ``ModelNotReadyException`` while it
starts, ``ModelError`` (424) with "Received server error (500) from primary with message
..." when the model answers with an error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from sageport.api.auth import AuthFailure
from sageport.api.dispatch import RequestContext
from sageport.api.jsonproto import json_auth_error
from sageport.errors import AwsError
from sageport.serving.router import NoRoute, TrafficRouter
from sageport.serving.upstream import UpstreamError, UpstreamPool

MAX_BODY = 6 * 1024 * 1024
INVOCATION_TIMEOUT_S = 60.0
#: the InvokeEndpoint request headers of the botocore model, passed to the model server as
#: they came (SageMaker strips every other header).
FORWARDED = (
    "content-type",
    "accept",
    "x-amzn-sagemaker-custom-attributes",
    "x-amzn-sagemaker-target-model",
    "x-amzn-sagemaker-target-variant",
    "x-amzn-sagemaker-target-container-hostname",
    "x-amzn-sagemaker-inference-id",
    "x-amzn-sagemaker-enable-explanations",
    "x-amzn-sagemaker-inference-component",
    "x-amzn-sagemaker-session-id",
)
#: response headers the model may set that reach the client (InvokeEndpoint's output shape).
RETURNED = {
    "x-amzn-sagemaker-custom-attributes": "X-Amzn-SageMaker-Custom-Attributes",
    "x-amzn-sagemaker-new-session-id": "X-Amzn-SageMaker-New-Session-Id",
    "x-amzn-sagemaker-closed-session-id": "X-Amzn-SageMaker-Closed-Session-Id",
}


class RuntimeValidationError(AwsError):
    code = "ValidationError"


class ModelNotReady(AwsError):
    code = "ModelNotReadyException"
    status = 429


class ServiceUnavailable(AwsError):
    code = "ServiceUnavailable"
    status = 503


class ModelError(AwsError):
    code = "ModelError"
    status = 424
    fields: ClassVar[dict[str, Any]] = {}

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.fields = fields  # type: ignore[misc]


class RuntimeProtocol:
    signs_body = True

    def __init__(self, router: TrafficRouter, pool: UpstreamPool, endpoint_status: Any) -> None:
        self.router = router
        self.pool = pool
        #: name → status or None, for endpoints the router does not know (rare path)
        self._endpoint_status = endpoint_status

    def auth_error(self, failure: AuthFailure) -> AwsError:
        return json_auth_error(failure)

    async def handle(self, request: Request, ctx: RequestContext, body: bytes | None) -> Response:
        headers, payload = await self.invoke(
            request.url.path, request.headers, body or b"", ctx.region, ctx.account_id
        )
        return Response(payload, headers=headers)

    async def invoke(
        self, path: str, headers: Mapping[str, str], body: bytes, region: str, account_id: str
    ) -> tuple[dict[str, str], bytes]:
        """Forward one authenticated InvokeEndpoint; the answer's headers and body, or the
        AwsError SageMaker returns. ``headers``: the request's, by lower-case name."""
        parts = path.strip("/").split("/")
        name = parts[1] if len(parts) > 1 else ""
        if len(parts) != 3 or parts[2] != "invocations":
            raise RuntimeValidationError(f"Unsupported runtime operation {path}")
        if len(body) > MAX_BODY:
            raise RuntimeValidationError(
                f"Request payload of {len(body)} bytes exceeds the maximum of {MAX_BODY} bytes (6 MiB)."
            )
        target = headers.get("x-amzn-sagemaker-target-variant")
        try:
            variant, replica = self.router.pick(name, target)
        except NoRoute as exc:
            raise await self._no_route(name, account_id, exc) from None
        forward = {k: headers[k] for k in FORWARDED if k in headers}
        replica.outstanding += 1
        try:
            resp = await self.pool.request(
                replica.host,
                replica.port,
                "POST",
                "/invocations",
                forward,
                body,
                INVOCATION_TIMEOUT_S,
            )
        except TimeoutError:
            raise ModelError(
                "Your invocation timed out while waiting for a response from container primary. "
                "Review the latency metrics for each container in Amazon CloudWatch, resolve the issue, and try again.",
                OriginalStatusCode=504,
                LogStreamArn=self._log_arn(region, account_id, name),
            ) from None
        except UpstreamError as exc:
            raise ServiceUnavailable(
                f"The model server of variant {variant.name} is not answering ({exc}); it is being restarted."
            ) from None
        finally:
            replica.outstanding -= 1
        if resp.status >= 400:
            kind = "server" if resp.status >= 500 else "client"
            text = resp.body.decode("utf-8", "replace")
            raise ModelError(
                f'Received {kind} error ({resp.status}) from primary with message "{text}". '
                f"See {self._log_url(region, name)} in account {account_id} for more information.",
                OriginalStatusCode=resp.status,
                OriginalMessage=text,
                LogStreamArn=self._log_arn(region, account_id, name),
            )
        # The model's content type passes through as it is: Starlette's media_type would append
        # "; charset=utf-8" to text/* types, and clients compare ContentType exactly.
        out_headers = {
            "x-Amzn-Invoked-Production-Variant": variant.name,
            "content-type": resp.headers.get("content-type", "application/json"),
        }
        for key, header in RETURNED.items():
            value = resp.headers.get(key)
            if value is not None:
                out_headers[header] = value
        return out_headers, resp.body

    async def _no_route(self, name: str, account_id: str, exc: NoRoute) -> AwsError:
        if exc.kind == "variant":
            return RuntimeValidationError(exc.detail)
        status = (
            exc.detail
            if exc.kind == "not_ready"
            else await run_in_threadpool(self._endpoint_status, name)
        )
        if status is None:
            return RuntimeValidationError(f"Endpoint {name} of account {account_id} not found.")
        return ModelNotReady(
            f"Endpoint {name} is {status}: its model servers are not ready to serve requests. "
            "Retry when DescribeEndpoint says InService."
        )

    @staticmethod
    def _log_url(region: str, name: str) -> str:
        return (
            f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
            f"#logEventViewer:group=/aws/sagemaker/Endpoints/{name}"
        )

    @staticmethod
    def _log_arn(region: str, account_id: str, name: str) -> str:
        return f"arn:aws:logs:{region}:{account_id}:log-group:/aws/sagemaker/Endpoints/{name}"

    def error_response(self, err: AwsError, request: Request, request_id: str) -> Response:
        body: dict[str, Any] = {
            "ErrorCode": err.code,
            "Message": err.message,
            "message": err.message,
        }
        body.update(getattr(err, "fields", {}) or {})
        return Response(
            json.dumps(body),
            status_code=err.status,
            media_type="application/json",
            headers={"x-amzn-RequestId": request_id, "x-amzn-ErrorType": f"{err.code}:"},
        )
